package supernode

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/promotion"
	"github.com/canopy-p2p/canopy/wire"
)

// MaxSuccessors is how many successor candidates a supernode names in its
// guidance: enough that some survive whatever took the supernodes down, few
// enough that the emergency election's stagger (rank × EmergencyStagger)
// stays short.
const MaxSuccessors = 8

// ErrDemoting is returned by AcceptLeaf while the supernode hands its leaves
// over.
var ErrDemoting = errors.New("supernode: demoting, not accepting leaves")

// RingView is the ring as this supernode sees it through gossip metadata,
// itself included, in the form the promotion policy takes.
func (s *Supernode) RingView() promotion.RingView {
	v := promotion.RingView{Known: true}
	var load float64
	for _, m := range s.ring.Members() {
		v.Supernodes++
		v.Leaves += int(m.Meta.Leaves)
		v.FreeSlots += int(m.Meta.Slots)
		load += float64(m.Meta.Load) / 100
	}
	if v.Supernodes == 0 {
		// The ring always holds this node; an empty table means gossip has
		// not started, which is no view at all.
		return promotion.RingView{}
	}
	v.Load = load / float64(v.Supernodes)
	return v
}

// SinceLastLeaf feeds the promotion policy's idle rule: the number of
// attached leaves, and when there are none, how long ago the last one left
// (or the supernode started, if none ever came). The node's own leaf side,
// attached to its own supernode role, does not count: a supernode that
// serves only itself is idle, and would otherwise never demote as surplus.
func (s *Supernode) SinceLastLeaf(now time.Time) (leaves int, since time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.othersLocked(); n > 0 {
		return n, 0
	}
	return 0, now.Sub(s.lastLeaf)
}

// othersLocked counts the attached leaves other than the node's own leaf
// side; s.mu is held.
func (s *Supernode) othersLocked() int {
	n := len(s.leaves)
	if _, self := s.leaves[s.id]; self {
		n--
	}
	return n
}

// maxHeard bounds the supernodes a leaf's hello may name that are kept.
const maxHeard = 16

// HeardOf returns supernodes this supernode's leaves say they are attached
// to that are not in its ring: the ring is split, and the caller should join
// them (memberlist merges two rings once one member of each has joined the
// other).
func (s *Supernode) HeardOf() []wire.PeerInfo {
	in := make(map[identity.NodeID]bool)
	for _, m := range s.ring.Members() {
		in[m.Meta.NodeID] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []wire.PeerInfo
	for _, l := range s.leaves {
		for _, p := range l.heard {
			if !in[p.ID] && p.ID != s.id && p.Control != "" {
				in[p.ID] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// DefaultHintTTL is how long a leaf's successor hints stay on offer after
// it attached: an emergency election is over within seconds (rank ×
// EmergencyStagger), so a successor that has not promoted within minutes
// will not, and probing it would only cost a dial.
const DefaultHintTTL = 5 * time.Minute

// RingHints returns the successors this supernode's leaves named in their
// hellos (Hello.Successors) within DefaultHintTTL that are not in its ring:
// nodes that may have stepped in during an emergency election and be
// running a ring of their own that no one has joined. The orphans that
// ranked such a successor first know of it, and it knows of no one; if they
// attached elsewhere before it promoted, this is the only trace of it.
func (s *Supernode) RingHints(now time.Time) []wire.PeerInfo {
	in := make(map[identity.NodeID]bool)
	for _, m := range s.ring.Members() {
		in[m.Meta.NodeID] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []wire.PeerInfo
	for _, l := range s.leaves {
		if now.Sub(l.since) > DefaultHintTTL {
			continue
		}
		for _, p := range l.hints {
			if !in[p.ID] && p.ID != s.id && p.Control != "" {
				in[p.ID] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// guidance builds the message this supernode sends its leaves.
func (s *Supernode) guidance() wire.Guidance {
	v := s.RingView()
	need, why := promotion.Needed(s.cfg.Policy, v)
	g := wire.Guidance{
		Supernodes:   v.Supernodes,
		Leaves:       v.Leaves,
		FreeSlots:    v.FreeSlots,
		LoadPermille: int(v.Load * 1000),
		Needed:       need,
		Why:          why.String(),
		Peers:        s.others(16),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.successorsLocked() {
		g.Successors = append(g.Successors, wire.PeerInfo{ID: l.conn.Peer(), Control: l.reachable})
	}
	return g
}

// successorsLocked returns the leaves that may step in if this supernode
// goes, best first: the longest-attached candidates whose last dial-back
// succeeded, the likeliest to still be there when they are needed; at most
// MaxSuccessors. s.mu is held.
func (s *Supernode) successorsLocked() []*leafSlot {
	var succ []*leafSlot
	for id, l := range s.leaves {
		// A leaf that is itself a supernode (its leaf side, or this node's
		// own) cannot step in.
		if l.candidate && l.reachable != "" && !s.members[id] && id != s.id {
			succ = append(succ, l)
		}
	}
	slices.SortFunc(succ, func(a, b *leafSlot) int { return a.since.Compare(b.since) })
	return succ[:min(len(succ), MaxSuccessors)]
}

// sameGuidance reports whether two guidance messages say the same to a leaf,
// ignoring the peers' exact load (which changes with every attachment and
// would make the supernode resend on every tick).
func sameGuidance(a, b wire.Guidance) bool {
	if a.Supernodes != b.Supernodes || a.Needed != b.Needed || a.Why != b.Why ||
		len(a.Successors) != len(b.Successors) || len(a.Peers) != len(b.Peers) {
		return false
	}
	for i := range a.Successors {
		if a.Successors[i] != b.Successors[i] {
			return false
		}
	}
	for i := range a.Peers {
		if a.Peers[i].ID != b.Peers[i].ID {
			return false
		}
	}
	return true
}

// sendGuidance sends g to every leaf, or to the one given.
func (s *Supernode) sendGuidance(g wire.Guidance, only *leafSlot) {
	s.mu.Lock()
	var conns []*link.Conn
	if only != nil {
		conns = append(conns, only.conn)
	} else {
		for _, l := range s.leaves {
			conns = append(conns, l.conn)
		}
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.SendBody(wire.TypeGuidance, &g)
	}
}

// sendICEServers sends one leaf its STUN/TURN services and credentials.
func (s *Supernode) sendICEServers(l *leafSlot, now time.Time) {
	if s.cfg.ICEServers == nil {
		return
	}
	ice := s.cfg.ICEServers(l.conn.Peer(), now)
	_ = l.conn.SendBody(wire.TypeICEServers, &ice)
}

// RefreshICEServers sends every leaf its STUN/TURN services again now, for
// a node whose services moved (its advertised address changed), rather
// than at the next credential refresh.
func (s *Supernode) RefreshICEServers() { s.refreshICEServers(time.Now()) }

// refreshICEServers re-sends every leaf its credentials before they expire.
func (s *Supernode) refreshICEServers(now time.Time) {
	s.mu.Lock()
	slots := make([]*leafSlot, 0, len(s.leaves))
	for _, l := range s.leaves {
		slots = append(slots, l)
	}
	s.mu.Unlock()
	for _, l := range slots {
		s.sendICEServers(l, now)
	}
}

// dialBack answers a leaf's DialBack request: it dials the leaf's control
// port on the address the leaf's link comes from, checks that the node
// answering holds the leaf's key, and reports the result. It runs on its own
// goroutine so that a slow dial does not stall the leaf's link; the per-leaf
// limiter bounds how many a leaf can start.
func (s *Supernode) dialBack(l *leafSlot, req wire.DialBack) {
	defer s.wg.Done()
	res := wire.DialBackResult{}
	addr, err := dialBackAddr(l.conn.RemoteAddr(), req.Control)
	if err == nil {
		res.Addr = addr
		err = s.probe(s.ctx, l.conn.Peer(), addr)
	}
	if err != nil {
		res.Error = err.Error()
	} else {
		res.OK = true
	}
	s.mu.Lock()
	if s.leaves[l.conn.Peer()] == l {
		l.reachable = ""
		if res.OK {
			l.reachable = addr
		}
	}
	s.stats.DialBacks++
	s.mu.Unlock()
	s.log.Debug("dial-back", zap.String("leaf", l.conn.Peer().Short()), zap.String("addr", addr), zap.Bool("ok", res.OK), zap.String("error", res.Error))
	_ = l.conn.SendBody(wire.TypeDialBackResult, &res)
}

// dialBackAddr is the address a dial-back goes to: the host the leaf's link
// comes from and the port the leaf says it listens on. Only the port is the
// leaf's to choose, so a dial-back cannot be aimed at a third party.
func dialBackAddr(remote net.Addr, control string) (string, error) {
	host, _, err := net.SplitHostPort(remote.String())
	if err != nil {
		return "", fmt.Errorf("leaf address %q: %w", remote, err)
	}
	_, port, err := splitHostPort(control)
	if err != nil || port <= 0 || port > 65535 {
		return "", fmt.Errorf("bad control address %q", control)
	}
	return net.JoinHostPort(host, fmt.Sprint(port)), nil
}

// probe dials addr, expects the node id there, and says hello as a probe,
// within ctx and DialBackTimeout.
func (s *Supernode) probe(ctx context.Context, id identity.NodeID, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialBackTimeout)
	defer cancel()
	c, err := link.Dial(ctx, addr, s.cfg.Creds, id, s.log)
	if err != nil {
		return err
	}
	defer c.Close("dial-back done")
	// Recv does not watch ctx: a cancelled probe (the ring shutting down)
	// aborts the link instead of waiting out DialBackTimeout.
	defer context.AfterFunc(ctx, func() { c.Abort("probe cancelled") })()
	if err := c.SendBody(wire.TypeHello, &wire.Hello{Role: wire.RoleProbe, Software: s.cfg.Software}); err != nil {
		return err
	}
	e, err := c.Recv(s.cfg.DialBackTimeout)
	if err != nil {
		return fmt.Errorf("no answer to the probe: %w", err)
	}
	if e.Type != wire.TypeWelcome {
		return fmt.Errorf("probe answered with %s", e.Type)
	}
	return nil
}

// Handover makes the supernode stop taking leaves and asks every attached
// leaf to move to other supernodes (wire.Handover): first, then the other
// ring members with free slots, up to 16 in all (first names a successor
// whose free slots gossip may not have spread yet). It returns when the last
// leaf has gone, or with ctx's error when time runs out, in which case the
// remaining links are closed. The caller leaves the ring afterwards: leaves
// attach elsewhere before they detach, so none is left without a supernode.
func (s *Supernode) Handover(ctx context.Context, reason string, first ...wire.PeerInfo) error {
	s.mu.Lock()
	s.demoting = true
	s.mu.Unlock()
	peers := slices.Clone(first)
	for _, p := range s.others(16) {
		if len(peers) < 16 && !slices.ContainsFunc(peers, func(q wire.PeerInfo) bool { return q.ID == p.ID }) {
			peers = append(peers, p)
		}
	}
	msg := wire.Handover{Reason: reason, Supernodes: peers}
	s.mu.Lock()
	for _, l := range s.leaves {
		_ = l.conn.SendBody(wire.TypeHandover, &msg)
	}
	s.mu.Unlock()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		left := len(s.leaves)
		var conns []*link.Conn
		if ctx.Err() != nil {
			for _, l := range s.leaves {
				conns = append(conns, l.conn)
			}
		}
		s.mu.Unlock()
		if left == 0 {
			return nil
		}
		if ctx.Err() != nil {
			for _, c := range conns {
				c.Close("handover timed out")
			}
			return fmt.Errorf("supernode: %d leaves had not moved when the handover ended: %w", left, ctx.Err())
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
}

// ErrNotLast is returned by StepDown when the ring has other members: they
// take the leaves in when this supernode goes, and nobody needs to step in.
var ErrNotLast = errors.New("supernode: not the last supernode in the ring")

// ErrNoSuccessor is returned by StepDown when no leaf could be made to step
// in: none is a candidate that passed a dial-back, none passed a fresh one,
// or none joined the ring in time. The leaves are then left to the
// emergency election.
var ErrNoSuccessor = errors.New("supernode: no successor stepped in")

// StepDown hands the network over before the last supernode of the ring
// stops gracefully, so that its leaves are never without a supernode. It
// takes the successors in the order its guidance names them (the
// longest-attached candidates whose dial-back succeeded), and for each:
// dials it back afresh (a leaf that stopped listening is passed over), sends
// it the result, which is the second observation a single-supernode network
// can give for the leaf's reachability verdict, and a wire.StepIn; then
// waits up to wait for it to join the ring (it promotes by its own policy,
// promotion.Input.AskedToStepIn, and joins through this supernode). It
// returns the first that joined; the caller hands the leaves over to it
// (Handover, naming it first) and then leaves the ring. ctx bounds the
// asking. With other ring members it does nothing and returns ErrNotLast.
func (s *Supernode) StepDown(ctx context.Context, reason string, wait time.Duration) (wire.PeerInfo, error) {
	for _, m := range s.ring.Members() {
		if !m.Self {
			return wire.PeerInfo{}, ErrNotLast
		}
	}
	s.mu.Lock()
	cands := s.successorsLocked()
	s.mu.Unlock()
	var errs []error
	for _, l := range cands {
		if ctx.Err() != nil {
			break
		}
		p, err := s.askToStepIn(ctx, l, reason, wait)
		if err != nil {
			s.count(func(st *Stats) { st.StepInsFailed++ })
			s.log.Info("successor did not step in", zap.String("leaf", l.conn.Peer().Short()), zap.Error(err))
			errs = append(errs, fmt.Errorf("%s: %w", l.conn.Peer().Short(), err))
			continue
		}
		s.count(func(st *Stats) { st.StepInsJoined++ })
		s.log.Info("successor stepped in", zap.String("successor", p.ID.Short()), zap.String("control", p.Control))
		return p, nil
	}
	if len(cands) == 0 {
		errs = append(errs, errors.New("no leaf is a candidate that passed a dial-back"))
	}
	return wire.PeerInfo{}, errors.Join(append([]error{ErrNoSuccessor}, append(errs, ctx.Err())...)...)
}

// askToStepIn asks one successor to step in and waits up to wait (within
// ctx) until it is a ring member.
func (s *Supernode) askToStepIn(ctx context.Context, l *leafSlot, reason string, wait time.Duration) (wire.PeerInfo, error) {
	id := l.conn.Peer()
	s.mu.Lock()
	addr := l.reachable
	s.mu.Unlock()
	res := wire.DialBackResult{Addr: addr}
	err := s.probe(ctx, id, addr)
	s.mu.Lock()
	if s.leaves[id] == l {
		l.reachable = ""
		if err == nil {
			l.reachable = addr
		}
	}
	s.stats.DialBacks++
	s.mu.Unlock()
	if err != nil {
		res.Error = err.Error()
		_ = l.conn.SendBody(wire.TypeDialBackResult, &res)
		return wire.PeerInfo{}, fmt.Errorf("fresh dial-back to %s: %w", addr, err)
	}
	res.OK = true
	if err := l.conn.SendBody(wire.TypeDialBackResult, &res); err != nil {
		return wire.PeerInfo{}, err
	}
	if err := l.conn.SendBody(wire.TypeStepIn, &wire.StepIn{Reason: reason}); err != nil {
		return wire.PeerInfo{}, err
	}
	s.count(func(st *Stats) { st.StepInsAsked++ })
	s.log.Info("asked a successor to step in", zap.String("leaf", id.Short()), zap.String("control", addr))
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, m := range s.ring.Members() {
			if m.Meta.NodeID == id {
				return wire.PeerInfo{ID: id, Control: m.Meta.Control, Load: m.Meta.Load, Slots: m.Meta.Slots, Known: true}, nil
			}
		}
		select {
		case <-l.conn.Done():
			return wire.PeerInfo{}, fmt.Errorf("its link closed: %s", l.conn.Reason())
		case <-ctx.Done():
			return wire.PeerInfo{}, fmt.Errorf("not in the ring after %v: %w", wait, ctx.Err())
		case <-tick.C:
		}
	}
}
