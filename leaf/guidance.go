package leaf

import (
	"bytes"
	"slices"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/wire"
)

// Guidance is the latest view of the ring a supernode sent, with when it came.
type Guidance struct {
	wire.Guidance
	From identity.NodeID
	At   time.Time
}

// Guidance returns the most recent guidance from a supernode the leaf is
// still attached to; ok is false when there is none.
func (l *Leaf) Guidance() (g Guidance, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, a := range l.atts {
		a.mu.Lock()
		ag, at := a.guidance, a.guidanceAt
		a.mu.Unlock()
		if !at.IsZero() && at.After(g.At) {
			g, ok = Guidance{Guidance: ag, From: id, At: at}, true
		}
	}
	return g, ok
}

// guided records a guidance message and learns the supernodes and successors
// it names.
func (l *Leaf) guided(a *attachment, g wire.Guidance) {
	a.mu.Lock()
	a.guidance, a.guidanceAt = g, time.Now()
	a.mu.Unlock()
	l.learn(g.Peers)
	l.mu.Lock()
	a.successors = g.Successors
	l.mu.Unlock()
}

// Successors are the leaves the supernodes named to step in if every
// supernode vanishes, merged from the latest guidance of every attachment
// (or, with no attachment left, as they were when the last one went: that is
// when they matter), ordered by node ID so that every leaf that knows the
// same candidates ranks them the same way.
func (l *Leaf) Successors() []wire.PeerInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.successorsLocked()
}

func (l *Leaf) successorsLocked() []wire.PeerInfo {
	seen := make(map[identity.NodeID]wire.PeerInfo)
	for _, a := range l.atts {
		for _, p := range a.successors {
			seen[p.ID] = p
		}
	}
	if len(seen) == 0 {
		return slices.Clone(l.lastSuccessors)
	}
	out := make([]wire.PeerInfo, 0, len(seen))
	for _, p := range seen {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b wire.PeerInfo) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return out
}

// EmergencyRank is this leaf's place among the successors (0 first), or the
// number of successors when it is not one of them: how many candidates should
// step in before it in an emergency election.
func (l *Leaf) EmergencyRank() int {
	succ := l.Successors()
	for i, p := range succ {
		if p.ID == l.id {
			return i
		}
	}
	return len(succ)
}

// Orphaned reports whether the leaf has lost every supernode it knows of,
// and for how long it has had no attachment (see orphaned).
func (l *Leaf) Orphaned(now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, _, _ := l.stateLocked()
	return orphaned(s, now)
}

// handover handles a supernode's Handover: the leaf learns the supernodes it
// names and marks the attachment as leaving, so that maintain dials a
// replacement before it closes this link (plan).
func (l *Leaf) handover(a *attachment, h wire.Handover) {
	l.learn(h.Supernodes)
	l.mu.Lock()
	if a.leavingSince.IsZero() {
		a.leavingSince = time.Now()
	}
	l.mu.Unlock()
	l.log.Info("supernode is handing us over", zap.String("supernode", a.conn.Peer().Short()), zap.String("reason", h.Reason))
}

// Orphanings is how many times the leaf has lost its last attachment (a
// handover never causes one: the leaf attaches elsewhere first).
func (l *Leaf) Orphanings() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.orphanings
}

// RequestDialBack asks every attached supernode but the node's own to dial the
// leaf back at its control address, to learn whether it is reachable from
// outside; the answers reach Config.OnDialBack. It returns how many it asked,
// and does nothing without a Config.Control address.
func (l *Leaf) RequestDialBack() int {
	if l.cfg.Control == "" {
		return 0
	}
	n := 0
	for _, c := range l.links() {
		if c.Peer() == l.id {
			continue // the node's own supernode role proves nothing
		}
		if c.SendBody(wire.TypeDialBack, &wire.DialBack{Control: l.cfg.Control}) == nil {
			n++
		}
	}
	return n
}

// stepInLogInterval is the least time between two log lines about refused
// step-in requests: one a minute says what is going on without letting a
// misbehaving supernode fill the log.
const stepInLogInterval = time.Minute

// StepInRequest is a step-in request the leaf heeded: its supernode, the
// last one in the ring, is stopping and asked this node to take over.
type StepInRequest struct {
	From   identity.NodeID
	At     time.Time
	Reason string
}

// StepInStats counts the step-in requests the leaf received.
type StepInStats struct {
	// Heeded are those recorded for the role loop (StepInRequest).
	Heeded uint64
	// Refused are those from a supernode whose latest guidance showed a
	// ring of more than one supernode, or no guidance yet: with others in
	// the ring there is nobody to replace, and its leaves move to them.
	Refused uint64
}

// stepInCounters is StepInStats in atomics, updated by the attachments'
// readers.
type stepInCounters struct {
	heeded, refused atomic.Uint64
}

// Snapshot returns the counts.
func (c *stepInCounters) Snapshot() StepInStats {
	return StepInStats{Heeded: c.heeded.Load(), Refused: c.refused.Load()}
}

// StepInStats returns the counts of step-in requests received.
func (l *Leaf) StepInStats() StepInStats { return l.stepIns.Snapshot() }

// steppingIn handles a supernode's StepIn. It is heeded only when the
// sender's latest guidance showed a ring of one, itself: a supernode with
// peers has no reason to ask, and a request it should not have sent must not
// make the leaf promote outside the policy's rules. The leaf only records it;
// the role loop decides (promotion.Input.AskedToStepIn).
func (l *Leaf) steppingIn(a *attachment, m wire.StepIn) {
	a.mu.Lock()
	ring, at := a.guidance.Supernodes, a.guidanceAt
	a.mu.Unlock()
	from := a.conn.Peer()
	if at.IsZero() || ring != 1 {
		l.stepIns.refused.Add(1)
		l.stepInLog.Do(func() {
			l.log.Info("ignoring a step-in request: the supernode is not the last in its ring",
				zap.String("supernode", from.Short()), zap.Int("ring", ring), zap.Bool("guided", !at.IsZero()))
		})
		return
	}
	l.stepIns.heeded.Add(1)
	l.mu.Lock()
	l.stepIn = StepInRequest{From: from, At: time.Now(), Reason: m.Reason}
	l.mu.Unlock()
	l.log.Info("the last supernode asks us to step in", zap.String("supernode", from.Short()), zap.String("reason", m.Reason))
}

// StepInRequest returns the latest step-in request heeded, if it is no older
// than maxAge at now and the leaf is still attached to the supernode that
// sent it (a request from a supernode that has gone is stale: the emergency
// election takes over).
func (l *Leaf) StepInRequest(now time.Time, maxAge time.Duration) (StepInRequest, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.stepIn
	if r.At.IsZero() || now.Sub(r.At) > maxAge {
		return StepInRequest{}, false
	}
	if _, ok := l.atts[r.From]; !ok {
		return StepInRequest{}, false
	}
	return r, true
}
