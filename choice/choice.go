// Package choice is the pure decision core that picks which supernodes a leaf
// dials next. It works on indices into the caller's candidate list, so the node
// (with node IDs) and the simulator (with uint32 nodes) run the same rule; it
// does no I/O, reads no clock and, given a destination slice with capacity,
// allocates nothing.
//
// # The rule
//
// A leaf keeps links to K supernodes (LimeWire kept 3 ultrapeers per leaf,
// gtk-gnutella 4; docs/field-numbers.md). Choose tops it up: it returns at
// most K minus the number already attached, never a candidate already attached,
// never one without a free slot, and never one whose load is at or above
// MaxLoad (a supernode that full would refuse the leaf or be overloaded by it).
// The eligible candidates are ranked by, in order:
//
//  1. fewer recent dial failures: a supernode that just failed to answer is
//     the likeliest to fail again, so it is tried only when nothing better is
//     left, and never abandoned for good (the caller forgets failures after
//     Params.RetryAfter);
//  2. a lower Score, which weighs load against round-trip time;
//  3. a lower Tiebreak, a random number the caller draws per candidate, so
//     that leaves facing equal candidates spread over them instead of all
//     piling onto the first, while a seeded simulator stays deterministic;
//  4. the lower index, so the result is fully determined by the input.
package choice

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrInvalidParams is returned by Params.Validate for a parameter out of its
// range.
var ErrInvalidParams = errors.New("choice: invalid parameters")

// Params are the supernode choice's tunables.
type Params struct {
	// K is the number of supernodes a leaf keeps links to. Default 3, as
	// LimeWire (gtk-gnutella used 4): with 3, a leaf survives two supernode
	// failures without losing search, and each extra link costs a supernode
	// slot and an index upload.
	K int `toml:"k"`

	// MaxLoad skips candidates whose load (0–1) is at or above it. Default
	// 0.95: a supernode that full is about to refuse leaves, and the last
	// slots are better left to leaves orphaned by a failed supernode.
	MaxLoad float64 `toml:"max_load"`

	// LoadWeight multiplies the candidate's load (0–1) in Score. Default 1.
	LoadWeight float64 `toml:"load_weight"`

	// RTTWeight multiplies the candidate's round-trip time, in seconds, in
	// Score. Default 2.5, so that 100 ms of RTT weighs as much as 25 points
	// of load (50 of a supernode's 200 slots): spreading leaves evenly keeps
	// the ring healthy, while a leaf's RTT to its supernode is one hop of a
	// search that crosses several, so load counts for more.
	RTTWeight float64 `toml:"rtt_weight"`

	// UnknownRTT is the RTT Score assumes for a candidate never measured.
	// Default 100 ms, a typical continental round trip, so an unmeasured
	// supernode is neither preferred over a near one nor shunned for a far
	// one.
	UnknownRTT time.Duration `toml:"unknown_rtt"`

	// RetryAfter is how long the caller keeps counting a failed dial against
	// a candidate (Candidate.Failures). Choose has no clock; the value lives
	// here so that the node and the simulator share it. Default 10 min: long
	// enough that a leaf does not redial a dead supernode every few seconds
	// while memberlist takes ~11 s to declare it dead everywhere, short enough
	// that a supernode back from a restart is used again soon.
	RetryAfter time.Duration `toml:"retry_after"`
}

// DefaultMaxCandidates is how many supernodes a leaf keeps as candidates to
// choose its K from: the node's leaf.Config.MaxCandidates default and the
// simulator's network.candidates. It lives here, with the rule it feeds, so
// that both read the same value. The set is a host cache bounded the way
// Gnutella servents bounded theirs, forgetting the likeliest dead entries
// first: 16 is enough to find K = 3 supernodes with room for a dozen that
// fail or are full, is what one supernode's answer names (it lists up to 16
// others), and keeps the leaf's wait before it declares itself orphaned —
// every candidate must fail a dial first — to a few rounds of dials.
const DefaultMaxCandidates = 16

// DefaultK is how many supernodes a leaf attaches to: 3, as LimeWire's leaves
// did (gtk-gnutella used 4; docs/field-numbers.md). With 3 a leaf survives two
// supernode failures without losing search, while each extra link costs a
// supernode slot and an index upload. It is the node's leaf.DefaultAttach and
// the simulator's network.choice.k.
const DefaultK = 3

// DefaultParams returns the rule the node uses; the field docs give sources.
func DefaultParams() Params {
	return Params{
		K:          DefaultK,
		MaxLoad:    0.95,
		LoadWeight: 1,
		RTTWeight:  2.5,
		UnknownRTT: 100 * time.Millisecond,
		RetryAfter: 10 * time.Minute,
	}
}

// Validate reports every parameter out of its range, joined, each wrapping
// ErrInvalidParams.
func (p Params) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidParams}, args...)...))
	}
	if p.K < 1 {
		bad("k %d must be at least 1", p.K)
	}
	if !(p.MaxLoad > 0 && p.MaxLoad <= 1) {
		bad("max_load %v must be in (0, 1]", p.MaxLoad)
	}
	if !(p.LoadWeight >= 0) || math.IsInf(p.LoadWeight, 0) {
		bad("load_weight %v must be a finite number ≥ 0", p.LoadWeight)
	}
	if !(p.RTTWeight >= 0) || math.IsInf(p.RTTWeight, 0) {
		bad("rtt_weight %v must be a finite number ≥ 0", p.RTTWeight)
	}
	if p.UnknownRTT < 0 {
		bad("unknown_rtt %v is negative", p.UnknownRTT)
	}
	if p.RetryAfter < 0 {
		bad("retry_after %v is negative", p.RetryAfter)
	}
	return errors.Join(errs...)
}

// Candidate is a supernode the leaf knows of, as the leaf sees it.
type Candidate struct {
	// Load is the supernode's published load, 0–1.
	Load float64
	// FreeSlots is the number of free leaf slots it advertises.
	FreeSlots int
	// RTT is the measured round-trip time; 0 means unknown.
	RTT time.Duration
	// Failures is the number of recent failed dials (within RetryAfter).
	Failures int
	// Attached is true when the leaf already holds a link to it.
	Attached bool
	// Tiebreak is a random number the caller draws for this candidate, from a
	// seeded source in the simulator.
	Tiebreak uint64
}

// eligible reports whether c may be chosen. A NaN load is not eligible: the
// candidate's metadata is broken.
func eligible(p *Params, c *Candidate) bool {
	return !c.Attached && c.FreeSlots > 0 && c.Load < p.MaxLoad && c.Load == c.Load
}

// Score is the cost of attaching to c, lower is better:
//
//	LoadWeight·load + RTTWeight·rtt (seconds)
//
// with the load clamped to [0, 1] and an unknown RTT (0) counted as
// UnknownRTT. It does not include Failures, which rank before the score.
func Score(p Params, c Candidate) float64 { return score(&p, &c) }

func score(p *Params, c *Candidate) float64 {
	load := min(max(c.Load, 0), 1)
	rtt := c.RTT
	if rtt <= 0 {
		rtt = p.UnknownRTT
	}
	// One float division instead of Duration.Seconds, whose two integer
	// divisions dominated Choose's profile.
	return p.LoadWeight*load + p.RTTWeight*float64(rtt)/float64(time.Second)
}

// rank is a candidate's sort key, in the order of the package documentation.
type rank struct {
	failures int
	score    float64
	tiebreak uint64
	index    int
}

func rankOf(p *Params, cands []Candidate, i int) rank {
	c := &cands[i]
	return rank{failures: c.Failures, score: score(p, c), tiebreak: c.Tiebreak, index: i}
}

// before reports whether a ranks before b.
func (a rank) before(b rank) bool {
	if a.failures != b.failures {
		return a.failures < b.failures
	}
	if a.score != b.score {
		return a.score < b.score
	}
	if a.tiebreak != b.tiebreak {
		return a.tiebreak < b.tiebreak
	}
	return a.index < b.index
}

// Choose appends to dst the indices of the candidates the leaf should dial
// next, best first, so that attached plus chosen reaches K; it returns dst
// unchanged when K links are already held or nothing is eligible. See the
// package documentation for the ranking. It allocates only when dst lacks
// capacity for the result.
func Choose(p Params, cands []Candidate, dst []int) []int {
	attached := 0
	for i := range cands {
		if cands[i].Attached {
			attached++
		}
	}
	want := p.K - attached
	if want <= 0 {
		return dst
	}
	// Keep dst[base:] as the best candidates seen so far, sorted best first,
	// by insertion: want is small (K), so this is O(len(cands)·K) with no
	// scratch space. The rank of the worst kept one is cached, since most
	// candidates of a long list are compared with it and rejected.
	base := len(dst)
	var worst rank
	for i := range cands {
		if !eligible(&p, &cands[i]) {
			continue
		}
		r := rankOf(&p, cands, i)
		if len(dst)-base == want {
			if !r.before(worst) {
				continue
			}
			dst = dst[:len(dst)-1]
		}
		// Find the insertion point and shift the worse ones right.
		pos := len(dst)
		for pos > base && r.before(rankOf(&p, cands, dst[pos-1])) {
			pos--
		}
		dst = append(dst, 0)
		copy(dst[pos+1:], dst[pos:len(dst)-1])
		dst[pos] = i
		worst = rankOf(&p, cands, dst[len(dst)-1])
	}
	return dst
}
