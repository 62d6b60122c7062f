package leaf

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/canopy-p2p/canopy/choice"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/wire"
)

// This file is the leaf's attachment decisions — which supernodes to dial,
// when to let go of one that is handing the leaf over, how long to wait
// before re-dialling one that failed, what to do when the last link goes,
// when the leaf counts as orphaned, and which candidate to forget when the
// candidate set is full — as pure functions. They read no clock, do no I/O,
// start no goroutine and take no lock: the live leaf copies what they need
// into their arguments while it holds Leaf.mu, calls them, and carries out
// what they return. That keeps the rules testable without a network.

// policy is the part of Config the decisions read.
type policy struct {
	// attach is how many links the leaf keeps (Config.Attach).
	attach int
	// choice ranks the candidates (Config.Choice).
	choice choice.Params
	// grace is Config.HandoverGrace.
	grace time.Duration
	// retryBackoff and maxBackoff bound the wait after a failed dial.
	retryBackoff, maxBackoff time.Duration
	// maxCandidates bounds the candidate set (Config.MaxCandidates).
	maxCandidates int
}

func policyOf(cfg *Config) policy {
	return policy{
		attach:        cfg.Attach,
		choice:        cfg.Choice,
		grace:         cfg.HandoverGrace,
		retryBackoff:  cfg.RetryBackoff,
		maxBackoff:    cfg.MaxBackoff,
		maxCandidates: cfg.MaxCandidates,
	}
}

// candView is what the decisions know of one candidate supernode: a copy of
// the leaf's candidate plus what the leaf is doing with it.
type candView struct {
	addr     string
	failures int
	next     time.Time
	lastFail time.Time
	seen     time.Time
	load     uint8
	slots    uint16
	known    bool
	rtt      time.Duration
	// successor, seed and tiebreak are as in candidate.
	successor bool
	seed      bool
	tiebreak  uint64
	// attached is true while the leaf holds a link to this supernode, being
	// handed over or not; dialing while a dial to its address is under way.
	attached, dialing bool
}

// linkView is what the decisions know of one attachment.
type linkView struct {
	// leavingSince is when its supernode started handing the leaf over;
	// zero while it is not.
	leavingSince time.Time
}

// attachState is the leaf's attachment state as the decisions see it.
type attachState struct {
	cands []candView
	links []linkView
	// dialing is how many dials are under way.
	dialing int
	// lostAll is when the leaf last lost its last link, or started.
	lostAll time.Time
}

// staying counts the links not being handed over.
func (s *attachState) staying() int {
	n := 0
	for _, l := range s.links {
		if l.leavingSince.IsZero() {
			n++
		}
	}
	return n
}

// step is one action of a plan: an index into attachState.cands (for a dial)
// or attachState.links (for a close), and why.
type step struct {
	index int
	why   string
}

// attachPlan is what the leaf should do now.
type attachPlan struct {
	// close are links to supernodes handing the leaf over that it may now
	// let go of.
	close []step
	// want is how many more links the leaf is short of, counting dials under
	// way as links; dial are the candidates to dial for them, best first.
	want int
	dial []step
	// idle says why nothing is dialled though links are wanting; empty
	// otherwise.
	idle string
	// orphaned and orphanedFor are as orphaned returns them.
	orphaned    bool
	orphanedFor time.Duration
}

// plan decides, from the leaf's state at now, which handed-over links to close
// and which candidates to dial so that the leaf keeps p.attach links.
//
// Handover is make-before-break: a link whose supernode is handing the leaf
// over does not count towards p.attach, so replacements are dialled while it
// is still up; it is closed once p.attach other links are up, or once it has
// been leaving for p.grace while at least one other link is up. With no other
// link it stays until the supernode closes it, so the leaf never orphans
// itself.
//
// Dials top the leaf up to p.attach links, counting dials under way. Only
// candidates out of their retry back-off, not being dialled and not attached
// are considered; choice.Choose ranks them (recent failures first, then load
// and round-trip time, then the random tiebreak). Failures older than
// p.choice.RetryAfter no longer count against a candidate. When every
// candidate looks full or overloaded by its last report, which may be stale,
// the best of them is dialled anyway rather than none. Successors (leaves
// named to step in if the ring dies) are dialled like supernodes.
func plan(p policy, s attachState, now time.Time) attachPlan {
	var out attachPlan
	out.orphaned, out.orphanedFor = orphaned(s, now)
	staying := s.staying()
	for i, l := range s.links {
		if l.leavingSince.IsZero() {
			continue
		}
		switch {
		case staying >= p.attach:
			out.close = append(out.close, step{i, fmt.Sprintf("replaced: %d other links are up", staying)})
		case staying > 0 && now.Sub(l.leavingSince) >= p.grace:
			out.close = append(out.close, step{i, fmt.Sprintf("handover grace of %v is over with %d other link(s) up", p.grace, staying)})
		}
	}
	out.want = p.attach - staying - s.dialing
	if out.want <= 0 {
		return out
	}
	var ready []int
	var cands []choice.Candidate
	for i := range s.cands {
		c := &s.cands[i]
		if c.dialing || now.Before(c.next) || c.attached {
			continue
		}
		ready = append(ready, i)
		cand := choice.Candidate{Load: 0, FreeSlots: 1, RTT: c.rtt, Tiebreak: c.tiebreak}
		if c.known {
			cand.Load, cand.FreeSlots = float64(c.load)/100, int(c.slots)
		}
		if now.Sub(c.lastFail) < p.choice.RetryAfter {
			cand.Failures = c.failures
		}
		cands = append(cands, cand)
	}
	if len(ready) == 0 {
		out.idle = "no candidate is ready: each is attached, being dialled or in its retry back-off"
		return out
	}
	cp := p.choice
	cp.K = out.want
	why := "best ranked"
	chosen := choice.Choose(cp, cands, nil)
	if len(chosen) == 0 {
		cp.MaxLoad = math.Inf(1)
		for i := range cands {
			cands[i].FreeSlots = max(cands[i].FreeSlots, 1)
		}
		chosen = choice.Choose(cp, cands, nil)
		why = "every candidate reported itself full: best ranked regardless"
	}
	for _, i := range chosen {
		w := why
		if s.cands[ready[i]].successor {
			w += " (a successor, which may have promoted)"
		}
		out.dial = append(out.dial, step{ready[i], w})
	}
	return out
}

// orphaned reports whether the leaf has lost every supernode it knows of: it
// holds no link and dials none, and every candidate that is not a successor
// has failed a dial since the leaf lost its last link (or started). since is
// how long it has had no link (zero while it has one). A leaf that knows no
// candidate at all is orphaned from the start: nobody is there to attach to.
// The candidate set is bounded (policy.maxCandidates), so the verdict comes
// after at most that many failed dials.
func orphaned(s attachState, now time.Time) (orphaned bool, since time.Duration) {
	if len(s.links) > 0 || s.dialing > 0 {
		return false, 0
	}
	for _, c := range s.cands {
		if c.successor {
			continue // a successor is a leaf until it promotes
		}
		if !c.lastFail.After(s.lostAll) {
			return false, now.Sub(s.lostAll)
		}
	}
	return true, now.Sub(s.lostAll)
}

// keptSuccessors is what a leaf keeps of the successors when a link goes:
// those it kept from the links lost since it last attached, with those the
// links up to now name (the one going included), by node ID.
//
// Keeping only the last link's list would leave each orphan with the ≤
// MaxSuccessors leaves of the one supernode it lost last. Supernodes name
// their own leaves, so when the whole ring dies the orphans of different
// supernodes would know disjoint successors, elect in disjoint groups and
// build rings that know nothing of each other (seen in the 30-node
// emulation: two rings of three, each with leaves attached only to it, that
// never merged). The union over the collapse is at most attach lists, and it
// is what every orphan of the same supernodes ranks the same way.
func keptSuccessors(kept, named []wire.PeerInfo) []wire.PeerInfo {
	out := slices.Clone(kept)
	for _, p := range named {
		if !slices.ContainsFunc(out, func(q wire.PeerInfo) bool { return q.ID == p.ID }) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b wire.PeerInfo) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return out
}

// retryBackoff is how long to wait before re-dialling a candidate whose dial
// has just failed for the failures-th time in a row: p.retryBackoff, doubling
// with each further failure up to p.maxBackoff. A successor is retried after
// p.retryBackoff while the leaf holds no link: it may promote any moment, and
// an orphaned leaf has nothing better.
func retryBackoff(p policy, failures int, successor, noLinks bool) time.Duration {
	if successor && noLinks {
		return p.retryBackoff
	}
	return min(p.retryBackoff<<min(max(failures-1, 0), 16), p.maxBackoff)
}

// keepLink reports whether a link that a dial has just set up should be kept:
// not when the leaf already holds one to that supernode, nor when p.attach
// links that are not being handed over are up already (another dial won).
func keepLink(p policy, s attachState, duplicate bool) bool {
	return !duplicate && s.staying() < p.attach
}

// lossPlan is what the leaf does when a link goes.
type lossPlan struct {
	// pause is how long to wait before re-dialling the supernode just lost,
	// so that a link that keeps failing is not re-dialled in a tight loop.
	pause time.Duration
	// orphaned is true when the link was the leaf's last.
	orphaned bool
	// retryNow are the candidates (indices) whose back-off ends at once.
	retryNow []int
	// successors are the named successors to add as candidates.
	successors []wire.PeerInfo
}

// lost decides what the leaf does when the link to the candidate at index lostIdx
// (-1 when it is no longer a candidate) has gone; s is the state after the
// link's removal and successors are those named by the links up to then.
// When it was the last link, every other candidate is retried at once rather
// than when its back-off ends, and the successors not yet known (but the leaf
// itself) become candidates, in case the ring has died with the supernode.
func lost(p policy, s attachState, lostIdx int, successors []wire.PeerInfo, self identity.NodeID) lossPlan {
	out := lossPlan{pause: p.retryBackoff}
	if len(s.links) > 0 {
		return out
	}
	out.orphaned = true
	for i := range s.cands {
		if i != lostIdx {
			out.retryNow = append(out.retryNow, i)
		}
	}
	for _, sp := range successors {
		if sp.ID == self {
			continue
		}
		known := false
		for _, c := range s.cands {
			if c.addr == sp.Control {
				known = true
				break
			}
		}
		if !known {
			out.successors = append(out.successors, sp)
		}
	}
	return out
}

// evict decides which candidate to forget so that a newly learned supernode
// fits in a candidate set bounded by p.maxCandidates. ok is false when the
// newcomer must be turned away instead; victim is -1 when there is room.
//
// Successors do not count towards the bound and are never evicted: they are
// leaves that may step in when every supernode is gone, and a successor that
// has not promoted yet fails every dial, so ranking it with the supernodes by
// failures would drop exactly the candidates an emergency election needs.
// The supernodes name at most a few each, so they bound themselves, and
// orphaned ignores them.
//
// A candidate the leaf is attached to or dialling is never evicted: it is in
// use. Nor is a seed: the operator named it, and it is the way back into the
// network after everything learned has gone stale. Among the others the one
// with the most consecutive failed dials goes first, since it is the
// likeliest dead; then the one the leaf has gone longest without attaching to
// or hearing named by a supernode, since the freshest knowledge of the ring is
// the likeliest still true; then the one with the highest tiebreak, which
// choice.Choose would try last; then the highest address, so that the result
// is fully determined. The newcomer is always preferred to an evictable
// candidate: it was named by a live supernode just now.
func evict(p policy, cands []candView) (victim int, ok bool) {
	n := 0
	for i := range cands {
		if !cands[i].successor {
			n++
		}
	}
	if n < p.maxCandidates {
		return -1, true
	}
	victim = -1
	for i := range cands {
		c := &cands[i]
		if c.attached || c.dialing || c.seed || c.successor {
			continue
		}
		if victim < 0 || evictBefore(c, &cands[victim]) {
			victim = i
		}
	}
	return victim, victim >= 0
}

// evictBefore reports whether a should be evicted before b.
func evictBefore(a, b *candView) bool {
	if a.failures != b.failures {
		return a.failures > b.failures
	}
	if c := a.seen.Compare(b.seen); c != 0 {
		return c < 0
	}
	if a.tiebreak != b.tiebreak {
		return a.tiebreak > b.tiebreak
	}
	return cmp.Compare(a.addr, b.addr) > 0
}
