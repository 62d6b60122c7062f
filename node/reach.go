package node

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// ReachConfig tunes the reachability verdict built from supernodes'
// dial-backs.
type ReachConfig struct {
	// Confirmations is how many distinct supernodes must have reached the
	// node, net of those that failed, for the verdict "reachable" (and the
	// reverse for "unreachable"). Default 2, libp2p AutoNAT v2's figure
	// (FIELD-NUMBERS.md); a node attached to fewer supernodes than that (a
	// network of one supernode) needs as many as it has.
	Confirmations int
	// Recheck is how often a settled verdict is checked again. Default
	// 20 min, gtk-gnutella's firewall re-check.
	Recheck time.Duration
	// Retry is how soon to ask again while there is no verdict. Default 1 min
	// (a supernode's per-leaf dial-back rate).
	Retry time.Duration
	// Expiry is how long one observation counts. Default 1 h (AutoNAT v2
	// re-probes hourly).
	Expiry time.Duration
}

func (c *ReachConfig) fill() {
	if c.Confirmations <= 0 {
		c.Confirmations = 2
	}
	if c.Recheck <= 0 {
		c.Recheck = 20 * time.Minute
	}
	if c.Retry <= 0 {
		c.Retry = time.Minute
	}
	if c.Expiry <= 0 {
		c.Expiry = time.Hour
	}
}

// observation is the latest dial-back result from one supernode.
type observation struct {
	at   time.Time
	ok   bool
	addr string
	err  string
}

// reachState is the node's reachability verdict: each supernode's latest
// dial-back counts once, old ones expire, and the verdict needs a margin of
// Confirmations between successes and failures, so one odd result cannot
// flip it. Safe for concurrent use: dial-back results arrive on link reader
// goroutines, the role loop and the status API read it.
type reachState struct {
	cfg ReachConfig

	mu        sync.Mutex
	obs       map[string]observation
	observers int // distinct supernodes the node could ask, at the last ask
	lastAsk   time.Time
	settled   bool // the last verdict was known
}

func newReachState(cfg ReachConfig) *reachState {
	cfg.fill()
	return &reachState{cfg: cfg, obs: make(map[string]observation)}
}

// observe records a dial-back result from the supernode from.
func (r *reachState) observe(now time.Time, from string, ok bool, addr, errText string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.obs[from] = observation{at: now, ok: ok, addr: addr, err: errText}
}

// asked records that the node asked observers supernodes for dial-backs.
func (r *reachState) asked(now time.Time, observers int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastAsk, r.observers = now, observers
}

// needsRecheck reports whether it is time to ask for dial-backs.
func (r *reachState) needsRecheck(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	wait := r.cfg.Retry
	if r.settled {
		wait = r.cfg.Recheck
	}
	return r.lastAsk.IsZero() || now.Sub(r.lastAsk) >= wait
}

// verdict returns whether there is a verdict and whether it is "reachable".
func (r *reachState) verdict(now time.Time) (known, reachable bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	known, reachable, _, _ = r.verdictLocked(now)
	r.settled = known
	return known, reachable
}

func (r *reachState) verdictLocked(now time.Time) (known, reachable bool, ok, fail int) {
	for from, o := range r.obs {
		if now.Sub(o.at) > r.cfg.Expiry {
			delete(r.obs, from)
			continue
		}
		if o.ok {
			ok++
		} else {
			fail++
		}
	}
	need := min(r.cfg.Confirmations, max(r.observers, 1))
	switch {
	case ok-fail >= need:
		return true, true, ok, fail
	case fail-ok >= need:
		return true, false, ok, fail
	}
	return false, false, ok, fail
}

// evidence describes the verdict and each observation, for the status.
func (r *reachState) evidence(now time.Time) (verdict string, lines []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	known, reachable, ok, fail := r.verdictLocked(now)
	need := min(r.cfg.Confirmations, max(r.observers, 1))
	switch {
	case !known && ok+fail == 0:
		verdict = "unknown: no supernode has dialled back yet"
	case !known:
		verdict = fmt.Sprintf("unknown: %d dial-backs succeeded and %d failed; %d more of one kind are needed", ok, fail, need-abs(ok-fail))
	case reachable:
		verdict = fmt.Sprintf("reachable: %d supernodes dialled back, %d could not", ok, fail)
	default:
		verdict = fmt.Sprintf("unreachable: %d supernodes could not dial back, %d could", fail, ok)
	}
	for from, o := range r.obs {
		res := "reached " + o.addr
		if !o.ok {
			res = fmt.Sprintf("could not reach %s: %s", o.addr, o.err)
		}
		lines = append(lines, fmt.Sprintf("%s ago, supernode %.10s %s", now.Sub(o.at).Round(time.Second), from, res))
	}
	slices.Sort(lines)
	return verdict, lines
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
