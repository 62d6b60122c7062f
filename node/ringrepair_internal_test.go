package node

import (
	"slices"
	"testing"
	"time"
)

func TestRepairTargetsHeardFirstThenBackOff(t *testing.T) {
	r := newRepairTargets()
	t0 := time.Unix(1_000_000, 0)
	heard := []string{"h1"}
	rest := []string{"a", "b", "c", "d", "h1"}

	got := r.pick(t0, heard, rest)
	if len(got) != maxRepairJoins || got[0] != "h1" {
		t.Fatalf("first round %v: want h1 first and %d in all", got, maxRepairJoins)
	}
	if slices.Index(got[1:], "h1") >= 0 {
		t.Fatalf("h1 twice: %v", got)
	}
	for _, a := range got {
		r.result(a, t0, false)
	}
	// The failed ones wait ringRepairInterval; the others come up at once.
	next := r.pick(t0.Add(time.Second), heard, rest)
	for _, a := range next {
		if slices.Contains(got, a) {
			t.Fatalf("%s tried again 1 s after it failed: %v", a, next)
		}
	}
	if len(next) != 5-maxRepairJoins {
		t.Fatalf("second round %v: want the %d not yet tried", next, 5-maxRepairJoins)
	}

	// Each further failure doubles the wait, up to repairBackoffMax.
	now := t0
	var waits []time.Duration
	for range 8 {
		r.result("h1", now, false)
		f := r.failed["h1"]
		waits = append(waits, f.next.Sub(now))
		now = f.next
	}
	want := []time.Duration{2 * ringRepairInterval, 4 * ringRepairInterval, 8 * ringRepairInterval,
		16 * ringRepairInterval, repairBackoffMax, repairBackoffMax, repairBackoffMax, repairBackoffMax}
	if !slices.Equal(waits, want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	// A success forgets the failures: the next round tries it again.
	r.result("h1", now, true)
	if got := r.pick(now, heard, nil); !slices.Equal(got, []string{"h1"}) {
		t.Fatalf("after a success: %v", got)
	}
}

func TestRepairTargetsForgetsWhatItNoLongerHears(t *testing.T) {
	r := newRepairTargets()
	t0 := time.Unix(1_000_000, 0)
	r.result("gone", t0, false)
	r.pick(t0, nil, []string{"other"})
	if _, ok := r.failed["gone"]; ok {
		t.Fatal("an address no longer heard of is still remembered")
	}
	// Heard of again later, it is tried at once.
	if got := r.pick(t0, nil, []string{"gone"}); !slices.Equal(got, []string{"gone"}) {
		t.Fatalf("got %v", got)
	}
}
