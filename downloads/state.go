package downloads

import "fmt"

// State is where a job stands.
type State string

// The states of a job.
const (
	// Queued waits for one of the Config.MaxActive slots.
	Queued State = "queued"
	// Connecting looks up sources and connects to them.
	Connecting State = "connecting"
	// Downloading receives pieces from at least one source.
	Downloading State = "downloading"
	// Paused was stopped by the user; its part file and record are kept.
	Paused State = "paused"
	// Verifying checks the part file against the manifest: when a job
	// resumes, and once it is complete, before it is placed.
	Verifying State = "verifying"
	// Done: the verified file is in place (Job.Path).
	Done State = "done"
	// Failed: Job.Reason says why. The part file is kept unless the job
	// was cancelled, so that a retry resumes from it.
	Failed State = "failed"
)

// Active reports whether a job in state s holds a slot: it is running.
func (s State) Active() bool { return s == Connecting || s == Downloading || s == Verifying }

// Finished reports whether a job in state s is history: done or failed.
func (s State) Finished() bool { return s == Done || s == Failed }

func (s State) valid() bool {
	switch s {
	case Queued, Connecting, Downloading, Paused, Verifying, Done, Failed:
		return true
	}
	return false
}

// Action is what the user asks of a job.
type Action string

// The actions of Manager.Do.
const (
	// Pause stops a queued or running job, keeping what it has.
	Pause Action = "pause"
	// Resume queues a paused job again.
	Resume Action = "resume"
	// Cancel stops an unfinished job and deletes its part file; on a failed
	// job it deletes the part file a retry would have resumed from.
	Cancel Action = "cancel"
	// Retry queues a failed job again, resuming from its part file.
	Retry Action = "retry"
)

// ReasonCancelled is the Reason of a job the user cancelled.
const ReasonCancelled = "cancelled"

// transitions lists, for each state, the states a job may go to from it.
// Every state change of the manager passes this table (step), so a change
// it does not list is a bug that shows as an error, not a job in a state
// nobody planned for. Paused and Failed lead to Done only when a pause or a
// cancel came while the file was being placed: once linked, it is done.
var transitions = map[State][]State{
	Queued:      {Connecting, Paused, Failed},
	Connecting:  {Downloading, Verifying, Queued, Paused, Failed, Done},
	Downloading: {Verifying, Connecting, Queued, Paused, Failed},
	Verifying:   {Connecting, Downloading, Queued, Paused, Failed, Done},
	Paused:      {Queued, Failed, Done},
	Done:        {},
	Failed:      {Queued, Failed, Done},
}

// step checks the change from a job's state to another.
func step(from, to State) error {
	for _, s := range transitions[from] {
		if s == to {
			return nil
		}
	}
	return fmt.Errorf("%w: %s to %s", ErrTransition, from, to)
}

// apply says what action a does to a job in state s: the state it goes to,
// or why it cannot.
func apply(s State, a Action) (State, error) {
	var to State
	switch a {
	case Pause:
		switch {
		case s == Queued || s.Active():
			to = Paused
		case s == Paused:
			return s, fmt.Errorf("%w: the job is paused already", ErrAction)
		default:
			return s, fmt.Errorf("%w: the job is %s", ErrAction, s)
		}
	case Resume:
		if s != Paused {
			return s, fmt.Errorf("%w: only a paused job resumes (this one is %s; a failed one takes retry)", ErrAction, s)
		}
		to = Queued
	case Cancel:
		if s == Done {
			return s, fmt.Errorf("%w: the job is done; delete the file itself if you do not want it", ErrAction)
		}
		to = Failed
	case Retry:
		if s != Failed {
			return s, fmt.Errorf("%w: only a failed job is retried (this one is %s)", ErrAction, s)
		}
		to = Queued
	default:
		return s, fmt.Errorf("%w: unknown action %q", ErrAction, a)
	}
	return to, step(s, to)
}
