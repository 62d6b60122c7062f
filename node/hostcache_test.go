package node

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/quarantine"
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
}

// TestHostCacheDamaged: a damaged host cache is moved aside, logged once at
// WARN with where it went, and the node starts without it; the next update
// writes a sound one.
func TestHostCacheDamaged(t *testing.T) {
	id, _ := identity.Generate()
	for name, content := range map[string][]byte{
		"garbage":   []byte("{garbage"),
		"truncated": []byte(`[{"id":"` + id.ID.String() + `","cont`),
		"bad ID":    []byte(`[{"id":"` + strings.Repeat("a", 5000) + `","control":"192.0.2.1:7373"}]`),
		"not array": []byte(`{"id":"x"}`),
		"too large": append([]byte(`[]`), bytes.Repeat([]byte(" "), maxHostCacheSize)...),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "hosts.json")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zapcore.InfoLevel)
			h := openHostCache(path, zap.New(core))
			if p := h.peers(); len(p) != 0 {
				t.Fatalf("a damaged cache gave %+v", p)
			}
			copies, err := quarantine.List(path)
			if err != nil || len(copies) != 1 {
				t.Fatalf("copies moved aside: %v, %v; want one", copies, err)
			}
			if b, _ := os.ReadFile(copies[0]); !bytes.Equal(b, content) {
				t.Fatal("the copy does not hold the damaged file")
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the damaged file is still in place: %v", err)
			}
			w := logs.All()
			if len(w) != 1 || w[0].Level != zapcore.WarnLevel {
				t.Fatalf("logged %v, want one WARN line", w)
			}
			f := w[0].ContextMap()
			if f["moved_to"] != copies[0] || f["path"] != path || len(f["reason"].(string)) > maxReasonLen+len("…") {
				t.Fatalf("the WARN line carries %v, want the path, where it went and a short reason", f)
			}
			h.update([]leaf.Peer{{ID: id.ID, Control: "192.0.2.1:7373"}})
			if p := openHostCache(path, zap.NewNop()).peers(); len(p) != 1 {
				t.Fatalf("after an update the cache holds %+v", p)
			}
		})
	}
}

func FuzzHostCache(f *testing.F) {
	id, _ := identity.Generate()
	f.Add([]byte(`[{"id":"` + id.ID.String() + `","control":"192.0.2.1:7373"}]`))
	f.Add([]byte(`[{"id":"aaaa","control":"192.0.2.1:7373"}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "hosts.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, decodeErr := decodeHostCache(b)
		for _, p := range openHostCache(path, zap.NewNop()).peers() {
			if p.ID.IsZero() || p.Control == "" {
				t.Fatalf("accepted an unusable entry %+v", p)
			}
		}
		// A file that decodes stays; one that does not is moved aside.
		_, statErr := os.Stat(path)
		copies, _ := quarantine.List(path)
		if decodeErr == nil && (statErr != nil || len(copies) != 0) {
			t.Fatalf("a sound cache was moved aside")
		}
		if decodeErr != nil && (!errors.Is(decodeErr, errHostCacheDamaged) || statErr == nil || len(copies) != 1) {
			t.Fatalf("a damaged cache (%v) was not moved aside", decodeErr)
		}
	})
}
