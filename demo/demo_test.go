package demo

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/internal/testwait"
)

// TestCrossSupernodeDownload is the end-to-end test: two supernodes in a real
// memberlist ring, three leaves on real TLS links, and a leaf attached to one
// supernode that finds and downloads, over a real WebRTC data channel, a file
// shared by a leaf attached to the other supernode.
func TestCrossSupernodeDownload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	files := SampleFiles(3, 3<<20+12345) // not a whole number of pieces
	net, err := Start(ctx, dir, 2, 3, files, "-", zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)))
	if net != nil {
		defer net.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := net.WaitSettled(ctx); err != nil {
		t.Fatal(err)
	}
	searcher, source := net.Leaves[0], net.Leaves[1]
	if a, b := searcher.Status().Supernodes, source.Status().Supernodes; len(a) != 1 || len(b) != 1 || a[0].ID == b[0].ID {
		t.Fatalf("the two leaves must sit on different supernodes: %+v / %+v", a, b)
	}
	res, err := searcher.Search(ctx, api.SearchRequest{Words: "CAFE timelapse", TimeoutMS: 1500})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hits) != 1 || res.Hits[0].Sources != 1 || res.Hits[0].SourceNodes[0] != source.ID().String() {
		t.Fatalf("search hits: %+v (%s)", res.Hits, net.routingStats())
	}
	id, err := content.ParseID(res.Hits[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	src, err := searcher.Sources(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	r, err := searcher.Get(ctx, src, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(r.Path)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for name, data := range files[1] {
		if filepath.Base(r.Path) == name {
			want = data
		}
	}
	if want == nil || !bytes.Equal(got, want) {
		t.Fatalf("downloaded %s (%d bytes) is not byte-identical to the shared file", r.Path, len(got))
	}
	// Nothing but the finished file is left in the output directory.
	entries, _ := os.ReadDir(out)
	if len(entries) != 1 {
		t.Fatalf("output directory holds %d entries, want just the file", len(entries))
	}

	// A look-up by content ID alone (what `canopy get ID` does without a
	// prior search) finds the same source.
	other := net.Leaves[2]
	loc, err := other.Sources(ctx, id)
	if err != nil {
		t.Fatalf("look-up by content ID: %v", err)
	}
	if len(loc.Sources) != 1 || loc.Sources[0].Node != source.ID() {
		t.Fatalf("look-up sources: %+v", loc.Sources)
	}
}

// TestRunNarrates runs the demo as `canopy demo --once` does.
func TestRunNarrates(t *testing.T) {
	if testing.Short() {
		t.Skip("the full demo moves 16 MiB; skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	net, err := Run(ctx, Options{Dir: t.TempDir(), API: "127.0.0.1:0", Out: &out})
	if net != nil {
		defer net.Close()
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"1. Leaf 1 searches", "2. Leaf 1 downloads", "every piece verified"} {
		if !bytes.Contains(out.Bytes(), []byte(want)) {
			t.Errorf("narration lacks %q:\n%s", want, out.String())
		}
	}
}

// TestIndexFollowsLibrary checks the incremental index upload: a file added
// to a leaf's share becomes searchable from a leaf on the other supernode
// after a rescan, and disappears again when it is deleted.
func TestIndexFollowsLibrary(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	net, err := Start(ctx, dir, 2, 2, SampleFiles(2, 1024), "-", zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)))
	if net != nil {
		defer net.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := net.WaitSettled(ctx); err != nil {
		t.Fatal(err)
	}
	searcher, sharer := net.Leaves[0], net.Leaves[1]
	path := filepath.Join(dir, "leaf2", "shared", "Brand New Song.ogg")
	find := func() int {
		res, err := searcher.Search(ctx, api.SearchRequest{Words: "brand new song", TimeoutMS: 300})
		if err != nil {
			t.Fatal(err)
		}
		return len(res.Hits)
	}
	waitFor := func(what string, want int) {
		t.Helper()
		testwait.Until(t, 10*time.Second, func() bool { return find() == want }, "%s: the search never returned %d hit(s)", what, want)
	}
	if find() != 0 {
		t.Fatal("found the file before it existed")
	}
	if err := os.WriteFile(path, []byte("la la la"), 0o644); err != nil {
		t.Fatal(err)
	}
	if res, err := sharer.Rescan(ctx); err != nil || res.Added != 1 {
		t.Fatalf("rescan after adding: %+v %v", res, err)
	}
	waitFor("after adding", 1)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if res, err := sharer.Rescan(ctx); err != nil || res.Removed != 1 {
		t.Fatalf("rescan after removing: %+v %v", res, err)
	}
	waitFor("after removing", 0)
}
