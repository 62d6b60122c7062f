package index

import (
	"errors"
	"fmt"
	"testing"
)

// Zero Limits mean the defaults.
func TestZeroLimitsWithDefaultsIsDefaultLimits(t *testing.T) {
	if got, want := (Limits{}).withDefaults(), DefaultLimits(); got != want {
		t.Errorf("Limits{}.withDefaults() = %+v, want DefaultLimits() = %+v", got, want)
	}
	if got, want := (Limits{MaxOwners: -1}).withDefaults().MaxOwners, DefaultMaxOwners; got != want {
		t.Errorf("negative MaxOwners became %d, want %d", got, want)
	}
}

// The byte limits take their defaults like the others, and every default
// is set.
func TestByteLimitsDefaults(t *testing.T) {
	got := (Limits{MaxBytes: -5, MaxBytesPerOwner: 7}).withDefaults()
	if got.MaxBytes != DefaultMaxBytes || got.MaxBytesPerOwner != 7 {
		t.Errorf("withDefaults = %+v", got)
	}
	d := DefaultLimits()
	if d.MaxBytesPerOwner <= 0 || d.MaxBytes < d.MaxBytesPerOwner || d.MaxNameBytes != 255 {
		t.Errorf("DefaultLimits = %+v", d)
	}
}

// The index limits of a full index: a new owner is refused for the total
// bytes, with ErrIndexFull, nothing added, and the refusal counted.
func TestIndexBytesLimit(t *testing.T) {
	x := New(Limits{MaxBytes: 4096})
	var err error
	n := 0
	for ; err == nil; n++ {
		err = x.Add(node(byte(n)), File{ID: cid(byte(n)), Name: fmt.Sprintf("word%d other%d", n, n)})
	}
	before := x.Stats()
	if !errors.Is(err, ErrIndexFull) || x.Bytes() > 4096 || before.Owners != n-1 {
		t.Fatalf("after %d owners: %v, %d bytes, stats %+v", n, err, x.Bytes(), before)
	}
	if c := x.Counters().Snapshot(); c.IndexFull != 1 || c.IndexBytes != 1 {
		t.Errorf("counters %+v", c)
	}
	checkInvariants(t, x)
}
