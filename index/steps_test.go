package index

import (
	"math/rand/v2"
	"slices"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/identity"
)

// bigOwner makes n files named from the words honest files use.
func bigOwner(n int) []File {
	r := rand.New(rand.NewPCG(11, 12))
	words := benchWords(r)
	z := rand.NewZipf(r, 1.07, 2, uint64(len(words)-1))
	return ordinaryFiles(r, words, z, 0xbb, n)
}

// searchWhile runs search from another goroutine and waits for it: a change
// that held the write lock while it called stepHook would never let it
// finish. The deadline only turns such a hang into a failure.
func searchWhile(t *testing.T, search func()) bool {
	done := make(chan struct{})
	go func() { search(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(10 * time.Second):
		t.Error("a search could not run between two steps of a change")
		return false
	}
}

// TestSearchDuringRemoval removes and replaces a large owner and searches
// between the steps: the searches complete while the change is under way,
// never see the owner's old files, and see the others'.
func TestSearchDuringRemoval(t *testing.T) {
	x := New(Limits{})
	honest, big := node(1), node(2)
	if err := x.Add(honest, File{ID: cid(1), Name: "Shared Song.mp3"}, File{ID: cid(2), Name: "Other Song.mp3"}); err != nil {
		t.Fatal(err)
	}
	files := bigOwner(20_000)
	files = append(files, File{ID: cid(1), Name: "Shared Song.mp3"})
	fill := func() {
		t.Helper()
		for i := 0; i < len(files); i += 1000 {
			if err := x.Add(big, files[i:min(i+1000, len(files))]...); err != nil {
				t.Fatal(err)
			}
		}
	}
	fill()
	check := func(what string) func() {
		return func() {
			hits := x.Search(Query{Words: "song mp3"})
			if len(hits) != 2 {
				t.Errorf("%s: %d hits, want the honest owner's 2: %+v", what, len(hits), hits)
				return
			}
			for _, h := range hits {
				if h.OwnerCount != 1 || h.Owners[0] != honest {
					t.Errorf("%s: hit %q from %d owners %v, want the honest one alone", what, h.Name, h.OwnerCount, h.Owners)
				}
			}
			if h, ok := x.Lookup(files[0].ID); ok {
				t.Errorf("%s: the old owner's file is still found by content: %+v", what, h)
			}
		}
	}

	var steps atomic.Int64
	x.stepHook = func() {
		if steps.Add(1) == 3 {
			searchWhile(t, check("during DropOwner"))
		}
	}
	if n := x.DropOwner(big); n != len(files) {
		t.Fatalf("DropOwner = %d, want %d", n, len(files))
	}
	if steps.Load() < 3 {
		t.Fatalf("a removal of %d files took %d steps", len(files), steps.Load())
	}
	checkInvariants(t, x)

	// Replacing the large owner with one file: the old ones are gone from
	// searches at once, and the new one is there when Replace returns.
	x.stepHook = nil
	fill()
	steps.Store(0)
	x.stepHook = func() {
		if steps.Add(1) == 3 {
			searchWhile(t, check("during Replace"))
		}
	}
	if err := x.Replace(big, []File{{ID: cid(3), Name: "new thing"}}); err != nil {
		t.Fatal(err)
	}
	if steps.Load() < 3 {
		t.Fatalf("a replacement of %d files took %d steps", len(files), steps.Load())
	}
	if hits := x.Search(Query{Words: "new thing"}); len(hits) != 1 || hits[0].Owners[0] != big {
		t.Fatalf("after Replace: %+v", hits)
	}
	checkInvariants(t, x)
	if c := x.Counters().Snapshot(); c.Steps == 0 {
		t.Errorf("counters %+v: no steps counted", c)
	}
}

// TestAddLetsSearchesIn adds one large batch and searches between its steps.
func TestAddLetsSearchesIn(t *testing.T) {
	x := New(Limits{})
	if err := x.Add(node(1), File{ID: cid(1), Name: "Quiet Morning.flac"}); err != nil {
		t.Fatal(err)
	}
	var steps atomic.Int64
	x.stepHook = func() {
		if steps.Add(1) == 2 {
			searchWhile(t, func() {
				if hits := x.Search(Query{Words: "quiet morning"}); len(hits) != 1 {
					t.Errorf("during Add: %+v", hits)
				}
			})
		}
	}
	files := bigOwner(5000)
	if err := x.Add(node(2), files...); err != nil {
		t.Fatal(err)
	}
	if steps.Load() < 2 || x.OwnerFiles(node(2)) != len(files) {
		t.Fatalf("%d steps, %d files", steps.Load(), x.OwnerFiles(node(2)))
	}
	checkInvariants(t, x)
}

// TestConcurrentChangesOfOneOwner runs adds, removals and replacements of
// the same large owner at once: their steps interleave, and the index must
// stay consistent whatever the order.
func TestConcurrentChangesOfOneOwner(t *testing.T) {
	x := New(Limits{})
	files := bigOwner(4000)
	who := node(7)
	done := make(chan struct{})
	for w := range 3 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 6 {
				switch (w + i) % 3 {
				case 0:
					_ = x.Add(who, files[i*400:i*400+1200]...)
				case 1:
					x.DropOwner(who)
				default:
					_ = x.Replace(who, files[i*300:i*300+600])
				}
				x.Remove(who, files[i].ID, "")
			}
		}()
	}
	for range 3 {
		<-done
	}
	checkInvariants(t, x)
}

// p99 returns the 99th percentile of ds.
func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)*99/100]
}

// BenchmarkSearchDuringChange measures the searches of the benchmark corpus
// (100,000 files) while nothing else happens, while an owner of 50,000
// files uploads them in batches of 1,000, and while it is removed, all in
// one process, and reports the p99 of each and the ratios (goal: at most 2).
func BenchmarkSearchDuringChange(b *testing.B) {
	c := loadCorpus(b)
	files := bigOwner(50_000)
	who := identity.NodeID{0xbb, 0xbb}
	var idle, upload, removal []time.Duration
	search := func(i int, into *[]time.Duration) {
		t0 := time.Now()
		c.idx.Search(Query{Words: c.queries[i%len(c.queries)]})
		*into = append(*into, time.Since(t0))
	}
	during := func(change func(), into *[]time.Duration) {
		done := make(chan struct{})
		go func() { change(); close(done) }()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
				search(i, into)
			}
		}
	}
	for b.Loop() {
		for i := range 500 {
			search(i, &idle)
		}
		during(func() {
			for i := 0; i < len(files); i += 1000 {
				if err := c.idx.Add(who, files[i:i+1000]...); err != nil {
					panic(err)
				}
			}
		}, &upload)
		during(func() { c.idx.DropOwner(who) }, &removal)
	}
	base := p99(idle)
	b.ReportMetric(float64(base.Microseconds()), "idle-p99-µs")
	b.ReportMetric(float64(p99(upload).Microseconds()), "upload-p99-µs")
	b.ReportMetric(float64(p99(removal).Microseconds()), "removal-p99-µs")
	b.ReportMetric(float64(p99(upload))/float64(max(base, 1)), "upload-ratio")
	b.ReportMetric(float64(p99(removal))/float64(max(base, 1)), "removal-ratio")
	b.ReportMetric(float64(len(removal))/float64(b.N), "searches/removal")
}
