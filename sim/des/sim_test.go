package des

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// recorder is a Handler that appends every event it sees.
type recorder struct{ got []Event }

func (r *recorder) handle(_ *Sim, ev Event) { r.got = append(r.got, ev) }

// TestMatchesReference drives Sim and the container/heap engine (refSim,
// which orders by time and then an explicit sequence number) with the same
// random workload and requires the same events in the same order. The
// spreads make the radix heap take all its paths: bursts at one instant
// larger than a block, buckets of many blocks, times far apart (up to the
// horizon's high bits), and events scheduled at Now while Run is running.
func TestMatchesReference(t *testing.T) {
	cases := []struct {
		name   string
		spread int64 // new events land in [Now, Now+spread]
		start  int   // events scheduled before Run
	}{
		{name: "one instant", spread: 0, start: 3000},
		{name: "narrow", spread: 3, start: 5000},
		{name: "µs", spread: 100, start: 5000},
		{name: "second", spread: int64(Second), start: 20000},
		{name: "years", spread: int64(MaxTime >> 16), start: 2000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const seed = 7
			// Each event schedules 0–2 more until the budget is spent, so
			// the queue grows and then drains to empty.
			schedule := func(now Time, rng interface{ Int64N(int64) int64 }, at func(Time, uint8, uint32, uint32), budget *int) {
				for k := rng.Int64N(3); k > 0 && *budget > 0; k-- {
					*budget--
					at(now+Time(rng.Int64N(tc.spread+1)), uint8(rng.Int64N(256)), uint32(*budget), uint32(rng.Int64N(1<<32)))
				}
			}
			const total = 40000

			s := New(seed)
			budget := total
			for range tc.start {
				budget--
				s.At(Time(s.Rand().Int64N(tc.spread+1)), 1, uint32(budget), 0)
			}
			var got []Event
			s.Run(MaxTime, func(s *Sim, ev Event) {
				got = append(got, ev)
				schedule(s.Now(), s.Rand(), s.At, &budget)
			})

			r := newRefSim(seed)
			budget = total
			for range tc.start {
				budget--
				r.At(Time(r.rng.Int64N(tc.spread+1)), 1, uint32(budget), 0)
			}
			var want []Event
			r.Run(MaxTime, func(r *refSim, ev Event) {
				want = append(want, ev)
				schedule(r.now, r.rng, r.At, &budget)
			})

			if len(got) != len(want) {
				t.Fatalf("executed %d events, reference %d", len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("event %d = %+v, reference %+v", i, got[i], want[i])
				}
			}
			if s.Pending() != 0 || s.Executed() != uint64(len(got)) {
				t.Errorf("Pending = %d, Executed = %d after draining %d events", s.Pending(), s.Executed(), len(got))
			}
		})
	}
}

// TestFIFOAtOneInstant checks the tie rule directly: events at the same time
// run in the order they were scheduled, including those a handler schedules
// at Now, which run after everything already scheduled for Now.
func TestFIFOAtOneInstant(t *testing.T) {
	s := New(1)
	for i := range uint32(1000) {
		s.At(5, 0, i, 0)
	}
	s.At(4, 1, 0, 0)
	var order []uint32
	s.Run(10, func(s *Sim, ev Event) {
		switch ev.Kind {
		case 1: // at 4: add to the instant 5 behind the first 1000
			s.At(5, 0, 1000, 0)
		case 0:
			order = append(order, ev.Node)
			if ev.Node == 0 { // at 5, while 5 is running
				s.After(0, 0, 1001, 0)
			}
		}
	})
	want := make([]uint32, 1002)
	for i := range want {
		want[i] = uint32(i)
	}
	if !slices.Equal(order, want) {
		t.Errorf("order at one instant: got %v…, want 0…1001 in order", order[:min(len(order), 20)])
	}
}

// TestRunUntil checks Run's boundary: At <= until runs, later events stay,
// the clock ends at until, never goes back, and events scheduled after a
// Run between Now and the next pending event still come first.
func TestRunUntil(t *testing.T) {
	s := New(1)
	var r recorder
	for _, at := range []Time{10, 20, 30, 1 << 20, 1 << 40} {
		s.At(at, 0, uint32(at), 0)
	}
	step := func(until Time, wantN uint64, wantNow Time) {
		t.Helper()
		if n := s.Run(until, r.handle); n != wantN || s.Now() != wantNow {
			t.Fatalf("Run(%d) = %d events, Now %d; want %d, Now %d", until, n, s.Now(), wantN, wantNow)
		}
	}
	step(20, 2, 20)    // 10 and 20: until is inclusive
	step(25, 0, 25)    // nothing due: the clock still moves to until
	step(5, 0, 25)     // until before Now: the clock does not go back
	s.At(26, 0, 26, 0) // between Now and the next pending event (30)
	step(100, 2, 100)  // 26, 30
	s.At(1000, 0, 1000, 0)
	s.At(101, 0, 101, 0) // earlier than everything pending, after a boundary
	step(MaxTime, 4, MaxTime)
	var at []Time
	for _, ev := range r.got {
		at = append(at, ev.At)
	}
	want := []Time{10, 20, 26, 30, 101, 1000, 1 << 20, 1 << 40}
	if !slices.Equal(at, want) {
		t.Errorf("executed at %v, want %v", at, want)
	}
	if s.Executed() != uint64(len(want)) || s.Pending() != 0 {
		t.Errorf("Executed = %d, Pending = %d; want %d, 0", s.Executed(), s.Pending(), len(want))
	}
	if n := New(1).Run(Hour, r.handle); n != 0 {
		t.Errorf("Run on an empty queue executed %d events", n)
	}
}

// TestStop checks that Stop ends Run after the current event, leaves the
// clock at that event and the rest of the queue intact, and that the next
// Run resumes (a Stop outside Run has no effect).
func TestStop(t *testing.T) {
	s := New(1)
	for i := range Time(10) {
		s.At(i*Second, 0, uint32(i), 0)
	}
	var seen []uint32
	h := func(s *Sim, ev Event) {
		seen = append(seen, ev.Node)
		if ev.Node == 2 {
			s.Stop()
			s.After(0, 0, 100, 0) // scheduled by the stopping event: stays pending
		}
	}
	if n := s.Run(Hour, h); n != 3 || s.Now() != 2*Second || s.Pending() != 8 {
		t.Fatalf("stopped Run: %d events, Now %v, Pending %d; want 3, 2s, 8", n, s.Now(), s.Pending())
	}
	s.Stop()
	if n := s.Run(Hour, h); n != 8 || s.Now() != Hour {
		t.Fatalf("resumed Run: %d events, Now %v; want 8, 1h", n, s.Now())
	}
	want := []uint32{0, 1, 2, 100, 3, 4, 5, 6, 7, 8, 9}
	if !slices.Equal(seen, want) {
		t.Errorf("order %v, want %v", seen, want)
	}
}

// TestPanics checks that scheduling in the past or beyond the horizon, and
// calling Run from a handler, panic with a message naming the problem.
func TestPanics(t *testing.T) {
	atTen := func() *Sim {
		s := New(1)
		s.Run(10, nil)
		return s
	}
	cases := []struct {
		name string
		do   func()
		want string
	}{
		{"At before Now", func() { atTen().At(9, 0, 0, 0) }, "before now"},
		{"At negative", func() { New(1).At(-1, 0, 0, 0) }, "before now"},
		{"After negative", func() { atTen().After(-1, 0, 0, 0) }, "negative delay"},
		{"At beyond MaxTime", func() { New(1).At(MaxTime+1, 0, 0, 0) }, "horizon"},
		{"After beyond MaxTime", func() { atTen().After(MaxTime-9, 0, 0, 0) }, "horizon"},
		{"After overflowing int64", func() { atTen().After(math.MaxInt64, 0, 0, 0) }, "horizon"},
		{"Run from a handler", func() {
			s := New(1)
			s.At(0, 0, 0, 0)
			s.Run(1, func(s *Sim, _ Event) { s.Run(2, nil) })
		}, "from a handler"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				msg, _ := r.(string)
				if !strings.Contains(msg, tc.want) {
					t.Errorf("panic %v, want one containing %q", r, tc.want)
				}
			}()
			tc.do()
		})
	}
}

// TestHorizon checks that the last schedulable instant, MaxTime, works and
// keeps its kind, node and argument (time and kind share a word).
func TestHorizon(t *testing.T) {
	s := New(1)
	s.At(MaxTime, 255, math.MaxUint32, math.MaxUint32)
	s.At(MaxTime-1, 7, 1, 2)
	var r recorder
	s.Run(MaxTime, r.handle)
	want := []Event{
		{At: MaxTime - 1, Kind: 7, Node: 1, Arg: 2},
		{At: MaxTime, Kind: 255, Node: math.MaxUint32, Arg: math.MaxUint32},
	}
	if !slices.Equal(r.got, want) {
		t.Errorf("got %+v, want %+v", r.got, want)
	}
	if years := MaxTime.Hours() / 24 / 365.25; years < 2000 {
		t.Errorf("horizon %.0f years, documented as about 2,283", years)
	}
}

// traceHash runs a small churning gossip model and hashes every executed
// event and random draw, standing in for the simulator's outputs.
func traceHash(seed uint64) uint64 {
	const nodes = 2000
	h := fnv.New64a()
	var buf [8 * 3]byte
	s := New(seed)
	for i := range uint32(nodes) {
		s.At(Time(s.Rand().Int64N(int64(Second))), 0, i, 0)
	}
	s.Run(20*Second, func(s *Sim, ev Event) {
		r := s.Rand()
		binary.LittleEndian.PutUint64(buf[0:], uint64(ev.At))
		binary.LittleEndian.PutUint64(buf[8:], uint64(ev.Node)<<32|uint64(ev.Arg))
		binary.LittleEndian.PutUint64(buf[16:], uint64(ev.Kind))
		h.Write(buf[:])
		switch ev.Kind {
		case 0: // timer: gossip to a random peer, maybe go offline
			s.After(Second, 0, ev.Node, 0)
			s.After(Time(r.Int64N(int64(100*Millisecond))), 1, r.Uint32N(nodes), ev.Node)
			if r.IntN(100) == 0 {
				s.After(Time(r.ExpFloat64()*float64(Second)), 2, ev.Node, 0)
			}
		case 1: // message: reply at once, at Now (a tie with whatever else is due)
			if r.IntN(2) == 0 {
				s.After(0, 3, ev.Arg, ev.Node)
			}
		}
	})
	return h.Sum64()
}

// TestDeterminism checks that a run is a function of its seed: the same seed
// gives the same trace, another seed another trace.
func TestDeterminism(t *testing.T) {
	a, b, c := traceHash(42), traceHash(42), traceHash(43)
	if a != b {
		t.Errorf("same seed, different traces: %x, %x", a, b)
	}
	if a == c {
		t.Errorf("seeds 42 and 43 gave the same trace %x", a)
	}
}

// TestTime checks the conversions between Time and time.Duration.
func TestTime(t *testing.T) {
	if got := (90 * Minute).Duration(); got != 90*time.Minute {
		t.Errorf("(90 min).Duration() = %v", got)
	}
	if got := FromDuration(1500 * time.Nanosecond); got != Microsecond {
		t.Errorf("FromDuration(1.5µs) = %d, want 1 (truncated)", got)
	}
	if got := FromDuration(-time.Hour); got != -Hour {
		t.Errorf("FromDuration(-1h) = %d", got)
	}
	if got := (36 * Hour).Hours(); got != 36 {
		t.Errorf("(36 h).Hours() = %v", got)
	}
	if got := MaxTime.Duration(); got != math.MaxInt64 {
		t.Errorf("MaxTime.Duration() = %v, want saturated", got)
	}
	if got := (-MaxTime).Duration(); got != math.MinInt64 {
		t.Errorf("(-MaxTime).Duration() = %v, want saturated", got)
	}
	if got := (Hour + 500*Millisecond).String(); got != "1h0m0.5s" {
		t.Errorf("String() = %q", got)
	}
}
