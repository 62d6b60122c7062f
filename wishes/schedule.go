// Package wishes holds a node's standing searches (wishlists): each is a
// search that runs again on a schedule and when the node attaches to a new
// supernode, and whose new matches the node downloads by itself, each
// content ID once and never a file it already holds.
//
// The schedule is the network cost, so it is bounded per node however many
// wishes a user keeps: wishes take turns, one search per Interval on
// average (the least recently run first), with at most Burst searches in
// any Burst × Interval window, so a new wish or a new supernode runs at
// once without letting a user flood the ring. Soulseek's server grants one
// wish every 12 minutes in rotation (ten wishes: each every two hours);
// Canopy's default of one every 2 minutes runs ten wishes each every 20
// minutes, at a cost docs/architecture.md states for 10^6 nodes.
package wishes

import (
	"fmt"
	"time"
)

// Defaults of the schedule.
const (
	// DefaultInterval is the average time between two wish searches of
	// one node.
	DefaultInterval = 2 * time.Minute
	// DefaultBurst is how many searches may run back to back (a new wish,
	// a new supernode) before the node waits for its budget.
	DefaultBurst = 3
)

// Params are the schedule's rules.
type Params struct {
	Interval time.Duration
	Burst    int
}

// DefaultParams returns the defaults.
func DefaultParams() Params { return Params{Interval: DefaultInterval, Burst: DefaultBurst} }

func (p Params) withDefaults() Params {
	if p.Interval <= 0 {
		p.Interval = DefaultInterval
	}
	if p.Burst <= 0 {
		p.Burst = DefaultBurst
	}
	return p
}

// Slot is one wish as the schedule sees it.
type Slot struct {
	ID      int64
	LastRun time.Time // zero: never run
	// Urgent: the wish is new, or the node attached to a new supernode
	// since it last ran; it runs as soon as the budget allows.
	Urgent bool
}

// Decision is what the runner does now: run the wish Run (0: none), or
// look again after Wait.
type Decision struct {
	Run    int64
	Wait   time.Duration
	Reason string
}

// Next decides which wish runs now, given the wishes, the times of the
// node's recent wish searches (any order) and the time. It is pure: the
// node and its tests call it with their own clocks.
func Next(p Params, wishes []Slot, runs []time.Time, now time.Time) Decision {
	p = p.withDefaults()
	if len(wishes) == 0 {
		return Decision{Wait: p.Interval, Reason: "no wishes"}
	}
	window := time.Duration(p.Burst) * p.Interval
	var inWindow int
	var oldest, last time.Time
	for _, r := range runs {
		if now.Sub(r) >= window {
			continue
		}
		inWindow++
		if oldest.IsZero() || r.Before(oldest) {
			oldest = r
		}
		if r.After(last) {
			last = r
		}
	}
	if inWindow >= p.Burst {
		return Decision{Wait: oldest.Add(window).Sub(now),
			Reason: fmt.Sprintf("budget spent: %d searches in the last %v", inWindow, window)}
	}
	// The urgent wish run longest ago (never run first); else the turn of
	// the wish run longest ago, once an interval has passed since the
	// last search.
	pick := func(urgent bool) (Slot, bool) {
		var best Slot
		found := false
		for _, w := range wishes {
			if urgent && !w.Urgent {
				continue
			}
			if !found || w.LastRun.Before(best.LastRun) || (w.LastRun.Equal(best.LastRun) && w.ID < best.ID) {
				best, found = w, true
			}
		}
		return best, found
	}
	if w, ok := pick(true); ok {
		return Decision{Run: w.ID, Reason: "new, or a new supernode since it last ran"}
	}
	if since := now.Sub(last); !last.IsZero() && since < p.Interval {
		return Decision{Wait: p.Interval - since, Reason: "waiting for the next turn"}
	}
	w, _ := pick(false)
	return Decision{Run: w.ID, Reason: "its turn: run longest ago"}
}
