package transfer

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/wire"
)

func TestUploadQueueOrder(t *testing.T) {
	q := uploadQueue{max: 4, maxPerPeer: 2, ttl: time.Minute}
	t0 := time.Unix(1_000_000, 0)
	var a, b, c identity.NodeID
	a[0], b[0], c[0] = 1, 2, 3
	f1, f2, f3 := [32]byte{1}, [32]byte{2}, [32]byte{3}

	ask := func(p identity.NodeID, f [32]byte, prio int, at time.Time) int {
		t.Helper()
		pos, ok := q.ask(p, f, prio, at)
		if !ok {
			t.Fatalf("ask refused with %d queued", len(q.entries))
		}
		return pos
	}
	if ask(a, f1, 0, t0) != 1 || ask(b, f1, 0, t0) != 2 {
		t.Fatal("arrival order")
	}
	// Asking again keeps the place.
	if ask(a, f1, 0, t0.Add(time.Second)) != 1 {
		t.Fatal("a lost its place by asking again")
	}
	// A higher priority goes before lower ones, after its equals.
	if pos := ask(c, f1, 5, t0); pos != 1 {
		t.Fatalf("priority request at %d, want 1", pos)
	}
	if pos := ask(c, f2, 5, t0); pos != 2 {
		t.Fatalf("second priority request at %d, want 2", pos)
	}
	// c holds its share (2) of the queue; the queue holds 4 of 4.
	if _, ok := q.ask(c, f3, 5, t0); ok {
		t.Fatal("a third request of c queued beyond its share")
	}
	if _, ok := q.ask(b, f2, 0, t0); ok {
		t.Fatal("queued beyond the queue's bound")
	}
	if got := q.ahead(b, f1); got != 3 {
		t.Fatalf("ahead of b: %d, want 3", got)
	}
	if got := q.ahead(b, f3); got != 4 {
		t.Fatalf("ahead of a newcomer: %d, want all 4", got)
	}
	q.remove(c, f1)
	if got := q.ahead(b, f1); got != 2 {
		t.Fatalf("ahead of b after one left: %d", got)
	}
	// Requests not asked for within the ttl leave; a asked again at t0+1s.
	if n := q.expire(t0.Add(time.Minute + 500*time.Millisecond)); n != 2 {
		t.Fatalf("expired %d, want b's and c's", n)
	}
	if len(q.entries) != 1 || q.entries[0].peer != a {
		t.Fatalf("left %+v, want a's only", q.entries)
	}
}

func TestParseQueued(t *testing.T) {
	for in, want := range map[string]int{"queued 1": 1, "queued 200": 200, "queued 0": 0, "queued -3": 0,
		"queued": 0, "queued x": 0, "busy": 0, "queued 3 ": 0} {
		got, ok := parseQueued(in)
		if got != want || ok != (want > 0) {
			t.Errorf("parseQueued(%q) = %d, %v", in, got, ok)
		}
	}
}

// TestUploadQueue: with the one upload slot held (an upload held to 1 MiB/s),
// a second downloader is queued first in line and told so, a third second;
// each is served in turn when the slot frees, the third never before the
// second, and the queue empties. With the defaults (one real re-ask of
// DefaultQueueReask) as well as a short re-ask.
func TestUploadQueue(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reask time.Duration
		third bool
	}{
		{"short re-ask", 300 * time.Millisecond, true},
		{"defaults", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.reask == 0 && testing.Short() {
				t.Skip("waits one real re-ask")
			}
			n := newTestNet()
			src := newMapSource()
			dir := t.TempDir()
			big := src.share(t, randomFile(t, dir, "big.bin", 1<<20))
			small := src.share(t, randomFile(t, dir, "small.bin", 64<<10))
			other := src.share(t, randomFile(t, dir, "other.bin", 64<<10))
			up := newTestEngine(t, n, testEngineOpts{source: src, config: func(c *Config) {
				c.MaxUploads = 1
				c.UpLimit = 1 << 20
				c.QueueReask = tc.reask
			}})
			cfg := func(c *Config) { c.QueueReask = tc.reask }
			first := newTestEngine(t, n, testEngineOpts{config: cfg})
			second := newTestEngine(t, n, testEngineOpts{config: cfg})
			third := newTestEngine(t, n, testEngineOpts{config: cfg})

			type outcome struct {
				end       time.Time
				err       error
				maxQueued int
			}
			var wg sync.WaitGroup
			run := func(e *Engine, id [32]byte, out *outcome) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mu sync.Mutex
					_, out.err = e.Download(context.Background(), Request{Content: id, OutDir: t.TempDir(),
						Sources: []wire.Source{up.asSource()},
						Progress: func(p Progress) {
							mu.Lock()
							defer mu.Unlock()
							for _, r := range p.Reports {
								out.maxQueued = max(out.maxQueued, r.Queued)
							}
						}})
					out.end = time.Now()
				}()
			}
			var o1, o2, o3 outcome
			run(first, big, &o1)
			testwait.Until(t, 20*time.Second, func() bool { up.mu.Lock(); defer up.mu.Unlock(); return up.uploads == 1 },
				"the first download never took the slot")
			run(second, small, &o2)
			testwait.Until(t, 20*time.Second, func() bool { return up.Refusals().Queued >= 1 }, "the second was never queued")
			if tc.third {
				run(third, other, &o3)
				testwait.Until(t, 20*time.Second, func() bool { up.mu.Lock(); defer up.mu.Unlock(); return len(up.queue.entries) == 2 },
					"the third never joined the queue")
				// The sharer's view: the first served, its bytes moving,
				// the second and third waiting in that order.
				var u Uploads
				testwait.Until(t, 20*time.Second, func() bool { u = up.Uploads(); return len(u.Active) == 1 && u.Active[0].Sent > 0 },
					"the sharer never saw the first upload's bytes: %+v", u)
				a := u.Active[0]
				if a.Peer != first.self || a.Content != big || a.Name != "big.bin" || a.Size != 1<<20 || a.Conn.Path != PathDirect {
					t.Errorf("active upload %+v, want big.bin to the first, direct", a)
				}
				if u.Slots != 1 || len(u.Queue) != 2 ||
					u.Queue[0] != (QueuedUpload{Peer: second.self, Content: small, Position: 1, Since: u.Queue[0].Since, LastAsked: u.Queue[0].LastAsked}) ||
					u.Queue[1].Peer != third.self || u.Queue[1].Content != other || u.Queue[1].Position != 2 ||
					u.Queue[0].Since.After(u.Queue[1].Since) {
					t.Errorf("uploads %+v, want one slot, the second then the third queued", u)
				}
			}
			wg.Wait()
			// The sharer's sessions end when it hears the downloaders close.
			var u Uploads
			testwait.Until(t, 20*time.Second, func() bool { u = up.Uploads(); return len(u.Active) == 0 && len(u.Queue) == 0 },
				"after every download: %+v", u)
			for i, o := range []outcome{o1, o2, o3} {
				if o.err != nil {
					t.Fatalf("download %d: %v", i+1, o.err)
				}
			}
			if o2.maxQueued != 1 {
				t.Errorf("the second was told place %d, want 1", o2.maxQueued)
			}
			if !o2.end.After(o1.end) {
				t.Error("the queued download ended before the one holding the slot")
			}
			if tc.third {
				if o3.maxQueued != 2 {
					t.Errorf("the third was told place %d, want 2", o3.maxQueued)
				}
				if !o3.end.After(o2.end) {
					t.Error("the third was served before the second")
				}
			}
			up.mu.Lock()
			left := len(up.queue.entries)
			up.mu.Unlock()
			if left != 0 {
				t.Errorf("%d requests left in the queue", left)
			}
			if r := up.Refusals(); r.Busy != 0 || r.BusyAtOpen != 0 {
				t.Errorf("refused as busy: %+v", r)
			}
			t.Logf("the queued second ended %v after the first", o2.end.Sub(o1.end).Round(time.Millisecond))
		})
	}
}
