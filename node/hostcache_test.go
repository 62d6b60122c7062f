package node

import (
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/leaf"
)

func TestHostCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts.json")
	h := openHostCache(path, zap.NewNop())
	if len(h.peers()) != 0 {
		t.Fatal("a missing cache is not empty")
	}
	id, _ := identity.Generate()
	h.update([]leaf.Peer{{ID: id.ID, Control: "192.0.2.1:7373"}, {Control: "no id"}})
	again := openHostCache(path, zap.NewNop())
	if p := again.peers(); len(p) != 1 || p[0].ID != id.ID {
		t.Fatalf("reloaded %+v; entries without an ID must be dropped", p)
	}
	if err := os.WriteFile(path, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if p := openHostCache(path, zap.NewNop()).peers(); len(p) != 0 {
		t.Fatalf("a damaged cache gave %+v", p)
	}
}

func FuzzHostCache(f *testing.F) {
	f.Add([]byte(`[{"id":"aaaa","control":"192.0.2.1:7373"}]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "hosts.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, p := range openHostCache(path, zap.NewNop()).peers() {
			if p.ID.IsZero() || p.Control == "" {
				t.Fatalf("accepted an unusable entry %+v", p)
			}
		}
	})
}
