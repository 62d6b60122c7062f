package node

import (
	"fmt"
	"sync"
	"time"

	"github.com/canopy-p2p/canopy/nat/reach"
)

// reachState is the node's reachability verdict: reach.Tracker (the pure,
// damped tracker of dial-back results), made safe for the goroutines that
// share it — dial-back results arrive on leaf link readers, the role loop
// decides from it, the status API explains it.
type reachState struct {
	mu      sync.Mutex
	t       *reach.Tracker
	retry   time.Duration
	lastAsk time.Time
}

func newReachState(cfg reach.Config) *reachState {
	retry := cfg.RetryInterval
	if retry <= 0 {
		retry = reach.DefaultConfig().RetryInterval
	}
	return &reachState{t: reach.New(cfg), retry: retry}
}

// observe records a dial-back result from the supernode from.
func (r *reachState) observe(now time.Time, from string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.t.Observe(now, from, ok)
}

// asked records that the node asked observers supernodes (all it is attached
// to, its own excepted) for dial-backs: a network with fewer supernodes than
// the tracker's MinObservers can only be checked by those it has.
func (r *reachState) asked(now time.Time, observers int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastAsk = now
	r.t.SetAvailableObservers(observers)
}

// needsRecheck reports whether it is time to ask for dial-backs: the tracker
// wants more evidence, and the last request is at least the retry interval
// old (a request that no supernode answered must not be repeated at every
// evaluation).
func (r *reachState) needsRecheck(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return now.Sub(r.lastAsk) >= r.retry && r.t.NeedsRecheck(now)
}

// verdict returns whether there is a verdict and whether it is "reachable".
func (r *reachState) verdict(now time.Time) (known, reachable bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.t.Verdict(now).State
	return s != reach.Unknown, s == reach.Reachable
}

// evidence describes the verdict and what it rests on, for the status.
func (r *reachState) evidence(now time.Time) (verdict string, lines []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := r.t.Verdict(now)
	return fmt.Sprintf("%s (%d of the recent dial-backs succeeded, %d failed)", v.State, v.Successes, v.Failures), v.Evidence
}
