package reach

// This file holds the reachability verdict: is this node reachable from the
// internet, as other nodes dialling back to it have found?
//
// Tracker is pure and damped. The caller asks other nodes
// (normally supernodes) to dial back to an address, feeds each outcome to
// Observe, and reads Verdict, which only becomes Reachable or Unreachable on
// agreeing evidence from more than one observer and does not flip on a
// single contrary result. It does no I/O and never reads the clock: time is
// an argument, so the node and the simulator run the same rules. The rules
// follow libp2p AutoNAT v2's address tracker (go-libp2p
// p2p/host/basic/addrs_reachability_tracker.go): keep the last few outcomes,
// call an address reachable when successes − failures ≥ 2, aim for 3, and
// re-probe periodically; to them this adds the requirement of two distinct
// observers and an explicit hysteresis. The re-check interval defaults to
// gtk-gnutella's 20 minutes for its firewall check (see
// docs/field-numbers.md).

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// State is a reachability verdict.
type State uint8

const (
	// Unknown means there is not enough agreeing, recent evidence.
	Unknown State = iota
	// Reachable means dial-backs from several observers got through.
	Reachable
	// Unreachable means dial-backs from several observers failed.
	Unreachable
)

// String returns "unknown", "reachable" or "unreachable".
func (s State) String() string {
	switch s {
	case Reachable:
		return "reachable"
	case Unreachable:
		return "unreachable"
	default:
		return "unknown"
	}
}

// Config sets the rules of a Tracker. The zero
// value of a field means its default (DefaultConfig).
type Config struct {
	// Window is how many of the most recent outcomes count (default 5,
	// libp2p's targetConfidence + 2: room for one bad result among enough
	// good ones).
	Window int
	// MinConfidence is the |successes − failures| over the window needed to
	// reach a verdict (default 2, libp2p's minConfidence).
	MinConfidence int
	// TargetConfidence is the confidence after which the tracker stops
	// asking for more dial-backs until the next re-check (default 3,
	// libp2p's targetConfidence).
	TargetConfidence int
	// MinObservers is how many distinct observers must have reported the
	// winning outcome before a verdict is reached (default 2), so that one
	// observer, mistaken or lying, cannot decide alone.
	MinObservers int
	// ResultTTL is how long an outcome counts (default 1 h, libp2p's
	// maxProbeInterval): a verdict nobody has re-checked for that long
	// lapses to unknown.
	ResultTTL time.Duration
	// RecheckInterval is how often a settled verdict is re-checked
	// (default 20 min, gtk-gnutella's firewall re-check): a home router
	// that reboots or drops a port mapping is noticed within about that.
	RecheckInterval time.Duration
	// RetryInterval is the least time between dial-back requests while the
	// evidence is still short of TargetConfidence or the newest outcome
	// contradicts the verdict (default 30 s), so that a caller polling
	// NeedsRecheck does not flood its observers.
	RetryInterval time.Duration
}

// Defaults of Config, each explained at its field.
const (
	DefaultWindow           = 5
	DefaultMinConfidence    = 2
	DefaultTargetConfidence = 3
	DefaultMinObservers     = 2
	DefaultResultTTL        = time.Hour
	DefaultRecheckInterval  = 20 * time.Minute
	DefaultRetryInterval    = 30 * time.Second
)

// DefaultConfig returns the defaults described on each field.
func DefaultConfig() Config {
	return Config{
		Window:           DefaultWindow,
		MinConfidence:    DefaultMinConfidence,
		TargetConfidence: DefaultTargetConfidence,
		MinObservers:     DefaultMinObservers,
		ResultTTL:        DefaultResultTTL,
		RecheckInterval:  DefaultRecheckInterval,
		RetryInterval:    DefaultRetryInterval,
	}
}

// withDefaults fills the zero (and negative) fields of c from DefaultConfig,
// and raises TargetConfidence to at least MinConfidence.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Window <= 0 {
		c.Window = d.Window
	}
	if c.MinConfidence <= 0 {
		c.MinConfidence = d.MinConfidence
	}
	if c.TargetConfidence < c.MinConfidence {
		c.TargetConfidence = max(d.TargetConfidence, c.MinConfidence)
	}
	if c.MinObservers <= 0 {
		c.MinObservers = d.MinObservers
	}
	if c.ResultTTL <= 0 {
		c.ResultTTL = d.ResultTTL
	}
	if c.RecheckInterval <= 0 {
		c.RecheckInterval = d.RecheckInterval
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = d.RetryInterval
	}
	return c
}

// Validate reports rules under which a Tracker, once its zero fields have
// their defaults, could never reach a verdict: more confidence or more
// observers than the window holds outcomes.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.MinConfidence > c.Window {
		errs = append(errs, fmt.Errorf("%w: MinConfidence: %d is more than the %d outcomes of the window", ErrConfig, c.MinConfidence, c.Window))
	}
	if c.MinObservers > c.Window {
		errs = append(errs, fmt.Errorf("%w: MinObservers: %d is more than the %d outcomes of the window", ErrConfig, c.MinObservers, c.Window))
	}
	return errors.Join(errs...)
}

// Verdict is a Tracker's verdict with the evidence behind it.
type Verdict struct {
	// State is the verdict.
	State State
	// Confidence is successes − failures over the outcomes that count.
	Confidence int
	// Successes and Failures count the outcomes that count.
	Successes, Failures int
	// Observers is the number of distinct observers among them.
	Observers int
	// Since is when State last changed; zero if it never has.
	Since time.Time
	// Evidence explains the verdict in sentences, for the user.
	Evidence []string
}

// reachOutcome is one dial-back result.
type reachOutcome struct {
	at   time.Time
	from string
	ok   bool
}

// Tracker tracks dial-back outcomes for one address (or one transport)
// and turns them into a damped verdict:
//
//   - Unknown becomes Reachable when successes − failures ≥ MinConfidence
//     over the last Window outcomes and at least MinObservers distinct
//     observers reported success; Unreachable likewise with failures.
//   - A verdict, once reached, holds while the outcomes still lean its way
//     (confidence ≥ 1 in its direction): a single contrary result never
//     flips it. When they stop leaning its way it becomes the opposite
//     verdict if that one's rule is met, else Unknown.
//   - Outcomes older than ResultTTL no longer count, so an unchecked
//     verdict lapses to Unknown.
//
// A single observer can therefore at worst make the verdict Unknown, never
// turn it into its opposite. A Tracker is not safe for concurrent use;
// its owner serialises calls.
type Tracker struct {
	cfg Config
	// available is how many distinct observers the caller can ask (0:
	// unlimited); MinObservers is capped by it (SetAvailableObservers).
	available int
	outcomes  []reachOutcome // time order, at most cfg.Window
	state     State
	since     time.Time
	why       string // how the current state was reached or held
}

// New returns a tracker with no evidence (Unknown) following
// cfg's rules.
func New(cfg Config) *Tracker {
	return &Tracker{cfg: cfg.withDefaults()}
}

// SetAvailableObservers tells the tracker how many distinct observers the
// caller can currently ask (0: no limit). MinObservers is capped by it, never
// below one: a network with a single supernode can only be checked by that
// supernode, and a verdict from it beats none. MinConfidence still applies,
// so one observer must then agree with itself several times.
func (r *Tracker) SetAvailableObservers(n int) { r.available = max(n, 0) }

// minObservers is MinObservers capped by the available observers.
func (r *Tracker) minObservers() int {
	if r.available <= 0 {
		return r.cfg.MinObservers
	}
	return min(r.cfg.MinObservers, r.available)
}

// Observe records that observer `from` (a node ID) tried to reach the node
// at time `at` and succeeded (ok) or failed: a dial-back it was asked for,
// or an authenticated connection it opened on its own, which is a success
// seen from the other end (the caller paces those, one per observer per
// RetryInterval, so that one chatty peer cannot fill the window). An
// outcome without an observer is ignored: the rules count observers, and an
// anonymous result cannot be told apart from another one. Outcomes may
// arrive out of order.
func (r *Tracker) Observe(at time.Time, from string, ok bool) {
	if from == "" {
		return
	}
	o := reachOutcome{at: at, from: from, ok: ok}
	i := sort.Search(len(r.outcomes), func(i int) bool { return r.outcomes[i].at.After(at) })
	r.outcomes = slices.Insert(r.outcomes, i, o)
	if n := len(r.outcomes) - r.cfg.Window; n > 0 {
		r.outcomes = slices.Delete(r.outcomes, 0, n)
	}
	r.update(r.outcomes[len(r.outcomes)-1].at)
}

// Verdict returns the verdict at time now, expiring outcomes older than
// ResultTTL first.
func (r *Tracker) Verdict(now time.Time) Verdict {
	t := r.update(now)
	v := Verdict{
		State:      r.state,
		Confidence: t.successes - t.failures,
		Successes:  t.successes,
		Failures:   t.failures,
		Observers:  len(t.observers),
		Since:      r.since,
	}
	switch {
	case len(r.outcomes) == 0:
		v.Evidence = append(v.Evidence, fmt.Sprintf("no dial-back result or inbound connection from the last %s", r.cfg.ResultTTL))
	default:
		v.Evidence = append(v.Evidence, fmt.Sprintf("of the last %d reachability checks (dial-backs, inbound connections), %d succeeded%s and %d failed%s",
			len(r.outcomes), t.successes, observerList(t.succeededFrom), t.failures, observerList(t.failedFrom)))
	}
	if r.why != "" {
		v.Evidence = append(v.Evidence, r.why)
	}
	return v
}

// observerList formats observers as " (a, b)", or nothing when empty.
func observerList(obs []string) string {
	if len(obs) == 0 {
		return ""
	}
	return " (" + strings.Join(obs, ", ") + ")"
}

// NeedsRecheck reports whether the caller should ask for another dial-back
// at time now: when there is no evidence, when it is still short of
// TargetConfidence or the newest outcome contradicts the verdict (at most
// once per RetryInterval), and when the newest outcome is RecheckInterval
// old.
func (r *Tracker) NeedsRecheck(now time.Time) bool {
	t := r.update(now)
	if len(r.outcomes) == 0 {
		return true
	}
	newest := r.outcomes[len(r.outcomes)-1]
	age := now.Sub(newest.at)
	if age >= r.cfg.RecheckInterval {
		return true
	}
	if age < r.cfg.RetryInterval {
		return false
	}
	conf := t.successes - t.failures
	if conf < 0 {
		conf = -conf
	}
	contradicts := (r.state == Reachable && !newest.ok) || (r.state == Unreachable && newest.ok)
	return conf < r.cfg.TargetConfidence || contradicts || r.state == Unknown
}

// reachTally summarises the outcomes that count.
type reachTally struct {
	successes, failures       int
	observers                 map[string]bool
	succeededFrom, failedFrom []string // distinct observers, in order
}

// update expires old outcomes, applies the transition rules at time now
// and returns the tally.
func (r *Tracker) update(now time.Time) reachTally {
	cutoff := now.Add(-r.cfg.ResultTTL)
	n := 0
	for n < len(r.outcomes) && !r.outcomes[n].at.After(cutoff) {
		n++
	}
	r.outcomes = slices.Delete(r.outcomes, 0, n)

	t := reachTally{observers: map[string]bool{}}
	for _, o := range r.outcomes {
		t.observers[o.from] = true
		if o.ok {
			t.successes++
			if !slices.Contains(t.succeededFrom, o.from) {
				t.succeededFrom = append(t.succeededFrom, o.from)
			}
		} else {
			t.failures++
			if !slices.Contains(t.failedFrom, o.from) {
				t.failedFrom = append(t.failedFrom, o.from)
			}
		}
	}
	conf := t.successes - t.failures
	minC, minO := r.cfg.MinConfidence, r.minObservers()
	reachable := conf >= minC && len(t.succeededFrom) >= minO
	unreachable := -conf >= minC && len(t.failedFrom) >= minO

	set := func(s State, why string) {
		if s != r.state {
			r.state, r.since = s, now
		}
		r.why = why
	}
	confirmRule := func(what string, count, observers int) string {
		return fmt.Sprintf("%s: confidence %d ≥ %d from %d observers ≥ %d", what, count, minC, observers, minO)
	}
	switch {
	case r.state == Reachable && conf >= 1:
		if reachable {
			r.why = confirmRule("reachable", conf, len(t.succeededFrom))
		} else {
			r.why = fmt.Sprintf("still reachable: a confirmed verdict holds while successes outnumber failures (confidence %d)", conf)
		}
	case r.state == Unreachable && -conf >= 1:
		if unreachable {
			r.why = confirmRule("unreachable", -conf, len(t.failedFrom))
		} else {
			r.why = fmt.Sprintf("still unreachable: a confirmed verdict holds while failures outnumber successes (confidence %d)", conf)
		}
	case reachable:
		set(Reachable, confirmRule("reachable", conf, len(t.succeededFrom)))
	case unreachable:
		set(Unreachable, confirmRule("unreachable", -conf, len(t.failedFrom)))
	case len(r.outcomes) == 0 && r.state != Unknown:
		set(Unknown, fmt.Sprintf("unknown: the last verdict lapsed, no dial-back in %s", r.cfg.ResultTTL))
	case r.state != Unknown:
		set(Unknown, fmt.Sprintf("unknown: the results no longer agree (confidence %d)", conf))
	case len(r.outcomes) > 0:
		r.why = fmt.Sprintf("unknown: a verdict needs confidence ≥ %d (now %d) from ≥ %d observers agreeing", minC, conf, minO)
	default:
		r.why = ""
	}
	return t
}
