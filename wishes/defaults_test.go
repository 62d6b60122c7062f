package wishes_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/demo"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/wishes"
)

// TestWishAtDefaults: the default schedule, unscaled, on a loopback
// network of two supernodes: a wish added before its match exists runs at
// once and finds nothing; the match, shared by a leaf of the other
// supernode, is downloaded at the wish's next turn, within one
// DefaultInterval (plus a search) of being shared.
func TestWishAtDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("waits one real wish interval (2 min)")
	}
	ctx := context.Background()
	dir := t.TempDir()
	net, err := demo.Start(ctx, dir, 2, 2, []map[string][]byte{{"mine.txt": []byte("mine")}, {"theirs.txt": []byte("theirs")}}, "", nil)
	t.Cleanup(func() { net.Close() })
	if err != nil {
		t.Fatal(err)
	}
	if err := net.WaitSettled(ctx); err != nil {
		t.Fatal(err)
	}
	me, them := net.Leaves[0], net.Leaves[1]
	if _, err := me.AddWish(api.WishAdd{Words: "aurora"}); err != nil {
		t.Fatal(err)
	}
	wish := func() api.Wish { return me.Wishes().Wishes[0] }
	testwait.Until(t, 30*time.Second, func() bool { return wish().Runs == 1 }, "the new wish did not run at once")
	if w := wish(); len(w.Found) != 0 {
		t.Fatalf("found before anything matched: %+v", w)
	}

	song := []byte("northern lights, in a file")
	if err := os.WriteFile(filepath.Join(dir, "leaf2", "shared", "aurora.flac"), song, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := them.Rescan(ctx); err != nil {
		t.Fatal(err)
	}
	shared := time.Now()
	var w api.Wish
	testwait.Until(t, wishes.DefaultInterval+wishes.DefaultSearchTime+30*time.Second, func() bool {
		w = wish()
		return len(w.Found) == 1
	}, "the wish never found aurora.flac: %+v", w)
	t.Logf("found %v after it was shared (default interval %v, %d runs)", time.Since(shared).Round(time.Second), wishes.DefaultInterval, w.Runs)
	if w.Found[0].Name != "aurora.flac" || w.Runs != 2 {
		t.Fatalf("wish %+v: want aurora.flac at its second run", w)
	}
	testwait.Until(t, 30*time.Second, func() bool {
		j, err := me.Downloads().Get(w.Found[0].Job)
		return err == nil && j.State == "done"
	}, "the wish's download never finished")
}
