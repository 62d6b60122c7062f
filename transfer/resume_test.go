package transfer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/wire"
)

// TestResume: a resumable download leaves its complete part file for the
// caller, reports the manifest before any piece and every piece once it is
// synced, and a second run with pieces held fetches only the others.
func TestResume(t *testing.T) {
	n := newTestNet()
	src := newMapSource()
	path := randomFile(t, t.TempDir(), "r.bin", 5<<20)
	id := src.share(t, path)
	up := newTestEngine(t, n, testEngineOpts{source: src})
	down := newTestEngine(t, n, testEngineOpts{})
	out := t.TempDir()
	part := filepath.Join(out, "r.part")

	var manifests []content.Manifest
	var synced []int
	var last Progress
	res, err := down.Download(context.Background(), Request{
		Content: id, Name: "r.bin", OutDir: out, Sources: []wire.Source{up.asSource()},
		Progress: func(p Progress) { last = p },
		Resume: &Resume{
			Part: part,
			OnManifest: func(m content.Manifest) error {
				if len(synced) > 0 {
					t.Error("manifest reported after pieces")
				}
				manifests = append(manifests, m)
				return nil
			},
			Synced: func(p []int) error { synced = append(synced, p...); return nil },
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != part || res.Name != "r.bin" {
		t.Fatalf("result %s named %q, want the part file named r.bin", res.Path, res.Name)
	}
	sameFile(t, path, part)
	if _, err := os.Stat(filepath.Join(out, "r.bin")); err == nil {
		t.Fatal("a resumable download placed the file itself")
	}
	slices.Sort(synced)
	if len(manifests) != 1 || len(synced) != 20 || synced[0] != 0 || synced[19] != 19 || slices.Compact(synced)[19] != 19 {
		t.Fatalf("%d manifests, synced %v", len(manifests), synced)
	}
	if len(last.Reports) != 1 || last.Reports[0].Conn.Path != PathDirect || last.Reports[0].Bytes != 5<<20 {
		t.Fatalf("last progress reports %+v", last.Reports)
	}

	// Pieces 0-9 held, the rest of the part file zero: only 10 are fetched.
	m := manifests[0]
	f, _ := os.OpenFile(part, os.O_RDWR, 0)
	f.Truncate(m.PieceOffset(10))
	f.Truncate(m.Size)
	f.Close()
	held := make([]bool, 20)
	for i := range 10 {
		held[i] = true
	}
	served := up.Stats().PiecesServed
	synced = nil
	if _, err := down.Download(context.Background(), Request{
		Content: id, OutDir: out, Sources: []wire.Source{up.asSource()},
		Progress: func(p Progress) { last = p },
		Resume:   &Resume{Part: part, Manifest: &m, Held: held, Synced: func(p []int) error { synced = append(synced, p...); return nil }},
	}); err != nil {
		t.Fatal(err)
	}
	sameFile(t, path, part)
	slices.Sort(synced)
	if got := up.Stats().PiecesServed - served; got != 10 || len(synced) != 10 || synced[0] != 10 {
		t.Fatalf("served %d pieces, synced %v; want pieces 10-19 only", got, synced)
	}
	if last.Have != m.Size || last.Reports[0].Bytes != m.Size/2 {
		t.Fatalf("last progress %+v", last)
	}

	// Every piece held: nothing to fetch, no source needed.
	for i := range held {
		held[i] = true
	}
	if _, err := down.Download(context.Background(), Request{Content: id, OutDir: out,
		Resume: &Resume{Part: part, Manifest: &m, Held: held}}); err != nil {
		t.Fatalf("all held: %v", err)
	}
	if _, err := down.Download(context.Background(), Request{Content: id, OutDir: out,
		Resume: &Resume{Part: part, Manifest: &m, Held: held[:3]}}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("held of the wrong length: %v", err)
	}

	// A failed resumable download keeps its part file.
	gone := wire.Source{Node: identity.NodeID{7}}
	if _, err := down.Download(context.Background(), Request{Content: id, OutDir: out, Sources: []wire.Source{gone},
		Resume: &Resume{Part: part, Manifest: &m, Held: make([]bool, 20)}}); !errors.Is(err, ErrNoSources) {
		t.Fatalf("unreachable source: %v", err)
	}
	sameFile(t, path, part)
}
