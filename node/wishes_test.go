package node_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/downloads"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/node"
)

// TestWishFetchesWhatAppearsLater: a wish added before anyone shares a
// match finds nothing; once a source shares one, the wish downloads it
// within an interval, exactly once, however often it runs again and
// across a restart of the node; a file of the wrong type is left alone.
func TestWishFetchesWhatAppearsLater(t *testing.T) {
	const interval = 400 * time.Millisecond
	n := startJobNet(t, []map[string][]byte{{"unrelated.bin": randomFile(1000, 3)}}, func(c *node.Config) { c.WishInterval = interval })
	c := n.client()
	ctx := context.Background()
	out := t.TempDir()
	w, err := c.AddWish(ctx, api.WishAdd{Words: "sunrise", Ext: []string{".OGG"}, To: out})
	if err != nil {
		t.Fatal(err)
	}
	if w.ID == 0 || w.Words != "sunrise" || len(w.Ext) != 1 || w.Ext[0] != "ogg" || w.To != out {
		t.Fatalf("added %+v", w)
	}
	wish := func() api.Wish {
		t.Helper()
		l, err := c.Wishes(ctx)
		if err != nil || len(l.Wishes) != 1 {
			t.Fatalf("wishes: %+v %v", l, err)
		}
		return l.Wishes[0]
	}
	testwait.Until(t, 20*time.Second, func() bool { return wish().Runs >= 2 }, "the wish never ran twice")
	if got := wish(); len(got.Found) != 0 || got.LastError != "" {
		t.Fatalf("before anyone shares a match: %+v", got)
	}

	// The source shares a match, and a file of the wrong type.
	song := randomFile(300<<10, 4)
	share := filepath.Join(n.dir, "src1", "shared")
	for name, data := range map[string][]byte{"sunrise-song.ogg": song, "sunrise-notes.txt": []byte("words")} {
		if err := os.WriteFile(filepath.Join(share, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.sources[0].Rescan(ctx); err != nil {
		t.Fatal(err)
	}
	shared := time.Now()
	var got api.Wish
	testwait.Until(t, 30*time.Second, func() bool { got = wish(); return len(got.Found) == 1 }, "the wish never found the song: %+v", got)
	t.Logf("the wish found the song %v after it was shared (interval %v)", time.Since(shared).Round(time.Millisecond), interval)
	if f := got.Found[0]; f.Name != "sunrise-song.ogg" || f.Content != idOf(t, song).String() || f.Job == 0 {
		t.Fatalf("found %+v", f)
	}
	j := waitJob(t, n.dl.Downloads(), got.Found[0].Job, 30*time.Second, "the wish's download done", isDone)
	if j.State != downloads.Done || filepath.Dir(j.Path) != out {
		t.Fatalf("the wish's job: %+v", j)
	}
	checkFile(t, j.Path, song)

	// It runs on, and finds nothing new.
	runs := wish().Runs
	testwait.Until(t, 20*time.Second, func() bool { return wish().Runs >= runs+1 }, "the wish stopped running")
	// A restart: the wish is kept, runs at once, and fetches nothing twice.
	runs = wish().Runs
	n.dl.Close()
	n.startDownloader()
	c = n.client()
	testwait.Until(t, 20*time.Second, func() bool { return wish().Runs > runs }, "the wish did not run after the restart")
	if got := wish(); len(got.Found) != 1 {
		t.Fatalf("after the restart: %+v", got)
	}
	jobs := 0
	for _, j := range n.dl.Downloads().List() {
		if j.Content == idOf(t, song) {
			jobs++
		}
	}
	if jobs != 1 {
		t.Fatalf("%d download jobs of the song, want 1", jobs)
	}

	if err := c.RemoveWish(ctx, got.ID); err != nil {
		t.Fatal(err)
	}
	if l, err := c.Wishes(ctx); err != nil || len(l.Wishes) != 0 {
		t.Fatalf("after remove: %+v %v", l, err)
	}
	var se *api.StatusError
	if err := c.RemoveWish(ctx, got.ID); !errors.As(err, &se) || se.Code != 404 {
		t.Fatalf("removing it again: %v", err)
	}
}

// TestWishBadInput: a wish without words, with a bad extension, bad size
// bounds or a relative directory is refused with 400 and keeps nothing.
func TestWishBadInput(t *testing.T) {
	n := startJobNet(t, nil, nil)
	c := n.client()
	ctx := context.Background()
	for _, add := range []api.WishAdd{
		{Words: "  "},
		{Words: "x", Ext: []string{"a/b"}},
		{Words: "x", MinSize: 10, MaxSize: 5},
		{Words: "x", To: "relative/dir"},
		{Words: string(make([]byte, 300))},
	} {
		var se *api.StatusError
		if _, err := c.AddWish(ctx, add); !errors.As(err, &se) || se.Code != 400 {
			t.Errorf("AddWish(%+v) = %v, want 400", add, err)
		}
	}
	if l, err := c.Wishes(ctx); err != nil || len(l.Wishes) != 0 || l.IntervalS != 120 || l.Burst != 3 {
		t.Fatalf("wishes after bad input: %+v %v", l, err)
	}
}
