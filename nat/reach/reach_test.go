package reach

import (
	"strings"
	"testing"
	"time"
)

func TestReachabilityRules(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	type obs struct {
		after time.Duration // since t0
		from  string
		ok    bool
	}
	s := func(after time.Duration, from string) obs { return obs{after, from, true} }
	f := func(after time.Duration, from string) obs { return obs{after, from, false} }
	m := time.Minute
	for _, c := range []struct {
		name   string
		obs    []obs
		at     time.Duration // when the verdict is read
		want   State
		conf   int
		reason string // a phrase the evidence must contain
	}{
		{"no evidence", nil, 0, Unknown, 0, "no dial-back"},
		{"one success", []obs{s(0, "a")}, m, Unknown, 1, "needs confidence"},
		{"two successes, one observer", []obs{s(0, "a"), s(m, "a")}, 2 * m, Unknown, 2, "observers agreeing"},
		{"two successes, two observers", []obs{s(0, "a"), s(m, "b")}, 2 * m, Reachable, 2, "reachable: confidence 2"},
		{"two failures, two observers", []obs{f(0, "a"), f(m, "b")}, 2 * m, Unreachable, -2, "unreachable: confidence 2"},
		{"one failure does not flip", []obs{s(0, "a"), s(m, "b"), f(2*m, "c")}, 3 * m, Reachable, 1, "still reachable"},
		{"one success does not flip", []obs{f(0, "a"), f(m, "b"), s(2*m, "c")}, 3 * m, Unreachable, -1, "still unreachable"},
		{"strong reachable absorbs a failure", []obs{s(0, "a"), s(m, "b"), s(2*m, "c"), f(3*m, "d")}, 4 * m, Reachable, 2, "reachable: confidence 2"},
		{"balanced results make it unknown", []obs{s(0, "a"), s(m, "b"), f(2*m, "c"), f(3*m, "d")}, 4 * m, Unknown, 0, "needs confidence ≥ 2 (now 0)"},
		{"flips when the opposite is confirmed", []obs{s(0, "a"), s(m, "b"), f(2*m, "c"), f(3*m, "d"), f(4*m, "e"), f(5*m, "a")}, 6 * m, Unreachable, -3, "unreachable"},
		{"only the window counts", []obs{s(0, "a"), s(m, "b"), s(2*m, "c"), s(3*m, "a"), s(4*m, "b"), f(5*m, "a"), f(6*m, "b"), f(7*m, "c"), f(8*m, "a"), f(9*m, "b")}, 10 * m, Unreachable, -5, "unreachable"},
		{"a single observer cannot flip it", []obs{s(0, "a"), s(m, "b"), f(2*m, "x"), f(3*m, "x"), f(4*m, "x"), f(5*m, "x"), f(6*m, "x")}, 7 * m, Unknown, -5, "5 failed (x); unknown"},
		{"results expire", []obs{s(0, "a"), s(m, "b")}, 62 * m, Unknown, 0, "lapsed"},
		{"out of order", []obs{s(5*m, "b"), f(0, "c"), s(3*m, "a")}, 6 * m, Unknown, 1, "needs confidence"},
		{"anonymous results ignored", []obs{s(0, ""), s(m, ""), s(2*m, "a")}, 3 * m, Unknown, 1, "needs confidence"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := New(Config{})
			for _, o := range c.obs {
				r.Observe(t0.Add(o.after), o.from, o.ok)
			}
			v := r.Verdict(t0.Add(c.at))
			ev := strings.Join(v.Evidence, "; ")
			if v.State != c.want || v.Confidence != c.conf || !strings.Contains(ev, c.reason) {
				t.Errorf("verdict %v confidence %d, want %v %d with %q\nevidence: %s", v.State, v.Confidence, c.want, c.conf, c.reason, ev)
			}
		})
	}
}

func TestReachabilitySince(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	r := New(Config{})
	r.Observe(t0, "a", true)
	r.Observe(t0.Add(time.Minute), "b", true)
	r.Observe(t0.Add(2*time.Minute), "c", false)
	v := r.Verdict(t0.Add(3 * time.Minute))
	if v.State != Reachable || !v.Since.Equal(t0.Add(time.Minute)) || v.Observers != 3 || v.Successes != 2 || v.Failures != 1 {
		t.Errorf("verdict %+v", v)
	}
	if v := r.Verdict(t0.Add(3 * time.Hour)); v.State != Unknown || !v.Since.Equal(t0.Add(3*time.Hour)) {
		t.Errorf("after expiry %+v", v)
	}
}

func TestReachabilityNeedsRecheck(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	r := New(Config{})
	if !r.NeedsRecheck(t0) {
		t.Error("no evidence: no recheck wanted")
	}
	r.Observe(t0, "a", true)
	if r.NeedsRecheck(t0.Add(10 * time.Second)) {
		t.Error("recheck wanted within RetryInterval")
	}
	if !r.NeedsRecheck(t0.Add(31 * time.Second)) {
		t.Error("short of evidence, but no recheck wanted after RetryInterval")
	}
	r.Observe(t0.Add(time.Minute), "b", true)
	r.Observe(t0.Add(2*time.Minute), "c", true)
	if v := r.Verdict(t0.Add(2 * time.Minute)); v.State != Reachable || v.Confidence != 3 {
		t.Fatalf("verdict %+v", v)
	}
	for _, c := range []struct {
		after time.Duration
		want  bool
	}{{3 * time.Minute, false}, {21 * time.Minute, false}, {22 * time.Minute, true}} {
		if got := r.NeedsRecheck(t0.Add(c.after)); got != c.want {
			t.Errorf("at confidence 3, %s after the start: NeedsRecheck = %v", c.after, got)
		}
	}
	// A contrary result asks for a prompt (but paced) recheck.
	r.Observe(t0.Add(30*time.Minute), "d", false)
	if r.NeedsRecheck(t0.Add(30*time.Minute + time.Second)) {
		t.Error("recheck wanted within RetryInterval of the failure")
	}
	if !r.NeedsRecheck(t0.Add(31 * time.Minute)) {
		t.Error("a contradicting result asks for no recheck")
	}
	if v := r.Verdict(t0.Add(31 * time.Minute)); v.State != Reachable {
		t.Errorf("one failure flipped the verdict: %+v", v)
	}
}

func TestReachStateString(t *testing.T) {
	for s, want := range map[State]string{Unknown: "unknown", Reachable: "reachable", Unreachable: "unreachable", 9: "unknown"} {
		if s.String() != want {
			t.Errorf("%d: %q", s, s.String())
		}
	}
}

func TestReachabilityAvailableObservers(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	r := New(Config{})
	r.Observe(t0, "a", true)
	r.Observe(t0.Add(time.Minute), "a", true)
	if v := r.Verdict(t0.Add(2 * time.Minute)); v.State != Unknown {
		t.Fatalf("one observer decided alone with others available: %+v", v)
	}
	// A network of one supernode: its agreement with itself is enough.
	r.SetAvailableObservers(1)
	if v := r.Verdict(t0.Add(2 * time.Minute)); v.State != Reachable {
		t.Fatalf("with one observer available, two agreeing results: %+v", v)
	}
	// Confidence still applies: one result from the only observer is not enough.
	r2 := New(Config{})
	r2.SetAvailableObservers(1)
	r2.Observe(t0, "a", true)
	if v := r2.Verdict(t0.Add(time.Minute)); v.State != Unknown {
		t.Fatalf("one result decided: %+v", v)
	}
}
