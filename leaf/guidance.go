package leaf

import (
	"bytes"
	"slices"
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
