package node

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/canopy-p2p/canopy/nat/reach"
)

// reachState is the node's reachability verdict: reach.Tracker (the pure,
// damped tracker of dial-back results and inbound connections), made safe
// for the goroutines that share it — dial-back results arrive on leaf link
// readers, inbound connections on accept goroutines, the role loop decides
// from it, the status API explains it.
type reachState struct {
	mu      sync.Mutex
	t       *reach.Tracker
	retry   time.Duration
	lastAsk time.Time
	// inboundAt is when an inbound connection from each observer last
	// counted (inbound), at most DefaultMaxInboundObservers entries.
	inboundAt map[string]time.Time
	inboundN  inboundCounters
}

// DefaultMaxInboundObservers bounds the peers whose last counted inbound
// connection the node remembers, to pace each of them. The tracker's window
// holds reach.DefaultWindow (5) outcomes, so a few hundred distinct recent
// observers are already far more than any verdict reads; the figure is one
// supernode's leaf slots (supernode.DefaultMaxLeaves, 200) with room to
// spare, since a supernode's leaves are most of the peers that dial it.
const DefaultMaxInboundObservers = 256

func newReachState(cfg reach.Config) *reachState {
	retry := cfg.RetryInterval
	if retry <= 0 {
		retry = reach.DefaultConfig().RetryInterval
	}
	return &reachState{t: reach.New(cfg), retry: retry, inboundAt: make(map[string]time.Time)}
}

// InboundStats counts the inbound connections offered to the reachability
// verdict as evidence (Node.InboundStats).
type InboundStats struct {
	// Counted are those recorded as a success observed by their dialler.
	Counted uint64
	// Paced are those not recorded because the same peer's last one counted
	// less than the tracker's RetryInterval ago.
	Paced uint64
	// TableFull are those not recorded because DefaultMaxInboundObservers
	// other peers had counted within the last RetryInterval.
	TableFull uint64
}

// inboundCounters is InboundStats in atomics.
type inboundCounters struct {
	counted, paced, tableFull atomic.Uint64
}

// Snapshot returns the counts.
func (c *inboundCounters) Snapshot() InboundStats {
	return InboundStats{Counted: c.counted.Load(), Paced: c.paced.Load(), TableFull: c.tableFull.Load()}
}

// inbound records that peer from opened an authenticated control link to
// this node: a success of the reachability check, observed by from (see
// Node.inboundFrom for what it proves). One per peer per retry interval
// counts, the pace at which the node asks its supernodes for dial-backs, so
// that a leaf re-dialling a successor every second, or a supernode's many
// leaves, cannot fill the tracker's window on their own.
func (r *reachState) inbound(now time.Time, from string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if last, ok := r.inboundAt[from]; ok && now.Sub(last) < r.retry && !now.Before(last) {
		r.inboundN.paced.Add(1)
		return
	}
	if _, ok := r.inboundAt[from]; !ok && len(r.inboundAt) >= DefaultMaxInboundObservers {
		for id, at := range r.inboundAt {
			if now.Sub(at) >= r.retry || now.Before(at) {
				delete(r.inboundAt, id)
			}
		}
		if len(r.inboundAt) >= DefaultMaxInboundObservers {
			r.inboundN.tableFull.Add(1)
			return
		}
	}
	r.inboundAt[from] = now
	r.inboundN.counted.Add(1)
	r.t.Observe(now, from, true)
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
	lines = v.Evidence
	if n := r.inboundN.counted.Load(); n > 0 {
		lines = append(lines, fmt.Sprintf("%d connections other nodes opened to this node counted as successful checks (one per node per %s)", n, r.retry))
	}
	return fmt.Sprintf("%s (%d of the recent reachability checks succeeded, %d failed)", v.State, v.Successes, v.Failures), lines
}
