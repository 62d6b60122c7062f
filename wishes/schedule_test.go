package wishes

import (
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	p := DefaultParams()
	min := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
	for _, tc := range []struct {
		name   string
		wishes []Slot
		runs   []time.Time
		now    time.Time
		run    int64
		wait   time.Duration
	}{
		{"none", nil, nil, t0, 0, DefaultInterval},
		{"a new wish runs at once", []Slot{{ID: 1, Urgent: true}}, nil, t0, 1, 0},
		{"the urgent one first", []Slot{{ID: 1, LastRun: min(-60)}, {ID: 2, Urgent: true, LastRun: min(-1)}}, []time.Time{min(-1)}, t0, 2, 0},
		{"the turn waits an interval after the last search", []Slot{{ID: 1, LastRun: min(-1)}, {ID: 2, LastRun: min(-5)}},
			[]time.Time{min(-1)}, t0, 0, time.Minute},
		{"then the one run longest ago", []Slot{{ID: 1, LastRun: min(-2)}, {ID: 2, LastRun: min(-5)}},
			[]time.Time{min(-2)}, t0, 2, 0},
		{"never run counts as longest ago", []Slot{{ID: 1, LastRun: min(-30)}, {ID: 2}}, []time.Time{min(-30)}, t0, 2, 0},
		{"ties go to the lower ID", []Slot{{ID: 7}, {ID: 3}}, nil, t0, 3, 0},
		{"the burst is spent", []Slot{{ID: 4, Urgent: true}}, []time.Time{min(-1), min(-2), min(-3)}, t0, 0, 3 * time.Minute},
		{"a run older than the window no longer counts", []Slot{{ID: 4, Urgent: true}}, []time.Time{min(-1), min(-2), min(-6)}, t0, 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Next(p, tc.wishes, tc.runs, tc.now)
			if d.Run != tc.run || d.Wait != tc.wait || d.Reason == "" {
				t.Fatalf("Next = %+v, want run %d, wait %v", d, tc.run, tc.wait)
			}
		})
	}
}

// TestNextBoundsTheCost: however many wishes, urgent or not, a simulated
// day of the schedule runs at most one search per interval on average and
// never more than the burst in a window; and every wish gets its turn.
func TestNextBoundsTheCost(t *testing.T) {
	p := DefaultParams()
	t0 := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	for _, n := range []int{1, 10, 500} {
		wishes := make([]Slot, n)
		for i := range wishes {
			wishes[i] = Slot{ID: int64(i + 1), Urgent: true}
		}
		var runs []time.Time
		ran := map[int64]int{}
		now := t0
		for now.Before(t0.Add(24 * time.Hour)) {
			d := Next(p, wishes, runs, now)
			if d.Run == 0 {
				if d.Wait <= 0 {
					t.Fatalf("%d wishes: no run and no wait at %v: %+v", n, now, d)
				}
				now = now.Add(d.Wait)
				continue
			}
			ran[d.Run]++
			runs = append(runs, now)
			for i := range wishes {
				if wishes[i].ID == d.Run {
					wishes[i].LastRun, wishes[i].Urgent = now, false
				}
			}
			// Every hour the node attaches to a new supernode.
			if now.Minute() == 0 && now.Second() == 0 {
				for i := range wishes {
					wishes[i].Urgent = true
				}
			}
			now = now.Add(time.Second)
		}
		limit := int(24*time.Hour/p.Interval) + p.Burst
		if len(runs) > limit {
			t.Errorf("%d wishes: %d searches in a day, more than %d", n, len(runs), limit)
		}
		window := time.Duration(p.Burst) * p.Interval
		for i := p.Burst; i < len(runs); i++ {
			if runs[i].Sub(runs[i-p.Burst]) < window {
				t.Fatalf("%d wishes: %d searches within %v at %v", n, p.Burst+1, window, runs[i])
			}
		}
		if n <= 10 && len(ran) != n {
			t.Errorf("%d wishes: only %d got a turn", n, len(ran))
		}
		t.Logf("%d wishes: %d searches in 24 h, %d wishes run", n, len(runs), len(ran))
	}
}
