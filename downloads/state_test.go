package downloads

import (
	"errors"
	"testing"
)

var allStates = []State{Queued, Connecting, Downloading, Paused, Verifying, Done, Failed}

// TestApply: every action in every state, against the table a user reads in
// the README: what it does, or that it is refused with ErrAction.
func TestApply(t *testing.T) {
	want := map[Action]map[State]State{
		Pause:  {Queued: Paused, Connecting: Paused, Downloading: Paused, Verifying: Paused},
		Resume: {Paused: Queued},
		Cancel: {Queued: Failed, Connecting: Failed, Downloading: Failed, Verifying: Failed, Paused: Failed, Failed: Failed},
		Retry:  {Failed: Queued},
	}
	for a, ok := range want {
		for _, s := range allStates {
			got, err := apply(s, a)
			to, allowed := ok[s]
			switch {
			case allowed && (err != nil || got != to):
				t.Errorf("%s on %s: %s, %v; want %s", a, s, got, err, to)
			case !allowed && !errors.Is(err, ErrAction):
				t.Errorf("%s on %s: %s, %v; want ErrAction", a, s, got, err)
			case !allowed && got != s:
				t.Errorf("%s on %s refused but changed the state to %s", a, s, got)
			}
		}
	}
	if _, err := apply(Queued, Action("frobnicate")); !errors.Is(err, ErrAction) {
		t.Errorf("unknown action: %v", err)
	}
}

// TestTransitions: the table's promises. Done is final; every state is
// reachable from Queued; a running state can always be stopped, failed and
// requeued (a node that stops mid-run), and every action's target passes
// step.
func TestTransitions(t *testing.T) {
	if err := step(Done, Queued); !errors.Is(err, ErrTransition) {
		t.Errorf("done → queued allowed: %v", err)
	}
	for _, s := range allStates {
		if !s.valid() {
			t.Errorf("%s not valid", s)
		}
		if s.Active() && s.Finished() {
			t.Errorf("%s both active and finished", s)
		}
		if s.Active() {
			for _, to := range []State{Paused, Failed, Queued} {
				if err := step(s, to); err != nil {
					t.Errorf("running %s cannot go to %s: %v", s, to, err)
				}
			}
		}
	}
	if State("lost").valid() {
		t.Error("an unknown state is valid")
	}
	seen := map[State]bool{Queued: true}
	for changed := true; changed; {
		changed = false
		for from := range seen {
			for _, to := range transitions[from] {
				if !seen[to] {
					seen[to], changed = true, true
				}
			}
		}
	}
	for _, s := range allStates {
		if !seen[s] {
			t.Errorf("%s unreachable from queued", s)
		}
	}
}
