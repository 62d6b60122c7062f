package supernode

import (
	"bytes"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/routing"
	"github.com/canopy-p2p/canopy/wire"
)

// peerLink is what a supernode knows of one control link to a ring peer.
type peerLink struct {
	// outbound says this supernode dialled it (it counts in the view).
	outbound bool
	since    time.Time
	// draining is set when the view rule dropped the link: it carries no new
	// queries and closes after viewDrain, once the hits of the queries
	// already sent over it are back.
	draining bool
	// signal marks a link dialled on demand to relay signals to a member
	// outside the view (see signalLink): it does not count in the view and
	// carries no queries from this side, and it closes after
	// signalLinkIdle without a signal.
	signal   bool
	lastUsed time.Time
}

// viewState is the peer-view rule's state between two runs of linkRing,
// guarded by Supernode.mu.
type viewState struct {
	epoch     uint64
	refreshed time.Time
	// failed are the members whose last dial failed or was refused.
	failed map[identity.NodeID]dialFailure
}

// dialFailure is when a member's dials last failed and how many failed in a
// row.
type dialFailure struct {
	at time.Time
	n  int
}

// backoff is how long the member is left out of the view after n failures
// in a row: a second at first, as when the supernode retried every tick (a
// member gossip announced may not take peer links for a moment), doubling up
// to dialRetry for a member that keeps failing.
func (f dialFailure) backoff() time.Duration {
	return min(time.Second<<min(f.n-1, 16), dialRetry)
}

// failedLocked records a failed or refused dial to id. s.mu must be held.
func (s *Supernode) failedLocked(id identity.NodeID) {
	if s.view.failed == nil {
		s.view.failed = make(map[identity.NodeID]dialFailure)
	}
	f := s.view.failed[id]
	s.view.failed[id] = dialFailure{at: time.Now(), n: f.n + 1}
}

const (
	// viewDrain is how long a link the view rule dropped stays open for the
	// hits of queries already sent over it: hits come back within a few hop
	// latencies, and no API search collects for longer than a minute.
	viewDrain = time.Minute
	// dialRetry is the longest a member whose dials keep failing or being
	// refused is left out of the view before it is tried again; the rule
	// picks another meanwhile.
	dialRetry = 30 * time.Second
)

// addPeer registers a link to a ring peer and starts its reader. When both
// sides dialled at once, the pair keeps the link the smaller ID dialled and
// closes the other, which both sides decide alike.
func (s *Supernode) addPeer(c *link.Conn, outbound bool) {
	s.addLink(c, &peerLink{outbound: outbound, since: time.Now()})
}

// addLink registers pl for the link c and starts its reader. Signalling
// links are left out of the duplicate rule: a view link and a signalling
// link to one member may coexist until the latter idles out.
func (s *Supernode) addLink(c *link.Conn, pl *peerLink) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close("supernode shutting down")
		return
	}
	dup := s.insertLinkLocked(c, pl)
	s.mu.Unlock()
	s.startLink(c, dup)
}

// insertLinkLocked registers pl for c and counts its reader in s.wg, and
// returns the link the duplicate rule retires, if any: the caller passes both
// to startLink once s.mu is released. s.mu must be held and s.closed false.
func (s *Supernode) insertLinkLocked(c *link.Conn, pl *peerLink) (dup []*link.Conn) {
	outbound := pl.outbound
	peer := c.Peer()
	set := s.peers[peer]
	if set == nil {
		set = make(map[*link.Conn]*peerLink)
		s.peers[peer] = set
	}
	smallerDialled := func(out bool) bool { return out == (bytes.Compare(s.id[:], peer[:]) < 0) }
	for old, opl := range set {
		if opl.draining || opl.signal || pl.signal {
			continue
		}
		if smallerDialled(opl.outbound) && !smallerDialled(outbound) {
			dup = append(dup, c) // the old link is the one to keep
		} else {
			opl.draining = true
			dup = append(dup, old)
		}
		break
	}
	set[c] = pl
	s.wg.Add(1)
	return dup
}

// startLink starts the reader of a link insertLinkLocked registered and
// retires the duplicate it found.
func (s *Supernode) startLink(c *link.Conn, dup []*link.Conn) {
	go s.servePeer(c)
	for _, d := range dup {
		s.retire(d, "duplicate link: the pair keeps the one the smaller ID dialled")
	}
}

// retire stops routing queries over a link and closes it after viewDrain.
func (s *Supernode) retire(c *link.Conn, reason string) {
	s.mu.Lock()
	if pl := s.peers[c.Peer()][c]; pl != nil {
		pl.draining = true
	}
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-time.After(viewDrain):
		case <-s.ctx.Done():
		}
		c.Close(reason)
	}()
}

func (s *Supernode) servePeer(c *link.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		if set := s.peers[c.Peer()]; set != nil {
			delete(set, c)
			if len(set) == 0 {
				delete(s.peers, c.Peer())
			}
		}
		s.mu.Unlock()
	}()
	c.Serve(s.cfg.IdleTimeout, func(e wire.Envelope) error { return s.peerMessage(c, e) })
}

func (s *Supernode) peerMessage(c *link.Conn, e wire.Envelope) error {
	switch e.Type {
	case wire.TypeQuery, wire.TypeQueryHit, wire.TypeSignal,
		wire.TypeParcel, wire.TypeParcelResult, wire.TypeMailAck, wire.TypeMailFetch,
		wire.TypePresenceSubscribe, wire.TypePresenceNotify, wire.TypeLocate:
		// Only ring members route: a node that merely said hello as a
		// supernode (or whose membership lapsed) may not inject queries,
		// hits or signals. A new member's first messages can arrive just
		// before gossip reports it; they are dropped, not fatal.
		if !s.isMember(c.Peer()) {
			s.count(func(st *Stats) { st.FromNonMembers++ })
			return nil
		}
	}
	switch e.Type {
	case wire.TypeQuery:
		s.count(func(st *Stats) { st.QueriesFromPeers++ })
		return s.query(e, route{peer: c.Peer()})
	case wire.TypeQueryHit:
		return s.routeHit(e)
	case wire.TypeSignal:
		var sig wire.Signal
		if err := e.Decode(&sig); err != nil {
			return err
		}
		s.signalFromPeer(sig)
		return nil
	case wire.TypeBye:
		var b wire.Bye
		_ = e.Decode(&b)
		s.mu.Lock()
		if pl := s.peers[c.Peer()][c]; pl != nil && pl.outbound && !pl.signal {
			// A peer that closes a link this supernode dialled refused it
			// or is leaving: the view rule picks another for a while.
			s.failedLocked(c.Peer())
		}
		s.mu.Unlock()
		c.Close("peer said bye: " + b.Reason)
		return nil
	default:
		if handled, err := s.peopleFromPeer(c, e); handled {
			return err
		}
		return fmt.Errorf("unexpected %s from a ring peer", e.Type)
	}
}

// peerLink returns an open link to the peer that is not being retired, if
// any.
func (s *Supernode) peerLink(id identity.NodeID) *link.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var retiring *link.Conn
	for c, pl := range s.peers[id] {
		if !pl.draining {
			return c
		}
		retiring = c
	}
	// Hits routed back to a peer may still use a retiring link.
	return retiring
}

// inboundFromLocked counts the links the member id dialled to this
// supernode that are open, retiring ones included. s.mu must be held.
func (s *Supernode) inboundFromLocked(id identity.NodeID) int {
	n := 0
	for _, pl := range s.peers[id] {
		if !pl.outbound {
			n++
		}
	}
	return n
}

// inboundLocked counts the live links other supernodes dialled. s.mu must
// be held.
func (s *Supernode) inboundLocked() int {
	n := 0
	for _, set := range s.peers {
		for _, pl := range set {
			if !pl.outbound && !pl.draining {
				n++
				break
			}
		}
	}
	return n
}

// routingPeers describes the ring for the routing core: the members this
// supernode holds a live link to, those it dialled (its view) and those that
// dialled it. Queries reach the rest of the ring through their views.
func (s *Supernode) routingPeers() []routing.Peer {
	members := s.ring.Members()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]routing.Peer, 0, min(len(members), len(s.peers)))
	for _, m := range members {
		if m.Self || !s.liveLocked(m.Meta.NodeID) {
			continue
		}
		out = append(out, routing.Peer{ID: m.Meta.NodeID, Load: m.Meta.Load, Linked: true})
	}
	return out
}

// liveLocked reports whether a view link to id is up and not retiring.
// s.mu must be held.
func (s *Supernode) liveLocked(id identity.NodeID) bool {
	for _, pl := range s.peers[id] {
		if !pl.draining && !pl.signal {
			return true
		}
	}
	return false
}

// maintain keeps links to ring peers, refreshes the published metadata and
// pings links so that idle timeouts only fire on dead peers.
func (s *Supernode) maintain() {
	defer s.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastPing := time.Now()
	lastMeta, lastMetaAt := s.meta(), time.Now()
	var lastGuidance wire.Guidance
	var lastGuidanceAt time.Time
	lastICE := time.Now()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		case <-s.ringChanged:
		}
		s.linkRing()
		// Leaves and slots are what leaves choose by: republished at once.
		// The file count alone waits DefaultFilesPublish (network.go).
		if m := s.meta(); m.Leaves != lastMeta.Leaves || m.Slots != lastMeta.Slots ||
			(m.Files != lastMeta.Files && time.Since(lastMetaAt) >= DefaultFilesPublish) {
			lastMeta, lastMetaAt = m, time.Now()
			if err := s.ring.UpdateMeta(2 * time.Second); err != nil {
				s.log.Debug("publish metadata", zap.Error(err))
			}
		}
		// Guidance goes out when what it tells the leaves changes, and
		// every GuidanceInterval regardless so that a lost one is replaced.
		if g := s.guidance(); !sameGuidance(g, lastGuidance) || time.Since(lastGuidanceAt) >= s.cfg.GuidanceInterval {
			lastGuidance, lastGuidanceAt = g, time.Now()
			s.sendGuidance(g, nil)
			s.count(func(st *Stats) { st.GuidanceSent++ })
		}
		if now := time.Now(); now.Sub(lastICE) >= s.cfg.ICERefresh {
			lastICE = now
			s.refreshICEServers(now)
		}
		s.closeIdleSignalLinks(time.Now())
		s.peopleTick(time.Now())
		if time.Since(lastPing) >= s.cfg.IdleTimeout/3 {
			lastPing = time.Now()
			s.pingAll()
		}
	}
}

// linkRing runs the peer-view rule (routing.View) over the ring and the
// links up now: it dials the members the rule picks and retires the links it
// drops. Draining links and members whose dial failed lately are given to
// the rule as members to avoid, so that it picks others meanwhile.
func (s *Supernode) linkRing() {
	members := s.ring.Members()
	ids := make([]identity.NodeID, 0, len(members))
	control := make(map[identity.NodeID]string, len(members))
	for _, m := range members {
		ids = append(ids, m.Meta.NodeID)
		control[m.Meta.NodeID] = m.Meta.Control
	}
	ring := routing.NewMembers(ids)
	now := time.Now()

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	st := routing.ViewState{Epoch: s.view.epoch, Refreshed: s.view.refreshed}
	conns := make(map[identity.NodeID]*link.Conn)
	for id, set := range s.peers {
		live, draining := false, false
		for c, pl := range set {
			if pl.signal {
				continue // outside the view
			}
			if pl.draining {
				draining = true
				continue
			}
			st.Links = append(st.Links, routing.ViewLink{ID: id, Outbound: pl.outbound, Since: pl.since})
			conns[id], live = c, true
			break
		}
		if !live && draining {
			st.Avoid = append(st.Avoid, id)
		}
	}
	for id := range s.dialing {
		// A dial in progress counts as a link it dialled, so the rule
		// neither dials it twice nor picks another in its place.
		st.Links = append(st.Links, routing.ViewLink{ID: id, Outbound: true, Since: now})
	}
	for id, f := range s.view.failed {
		if now.Sub(f.at) >= dialRetry {
			delete(s.view.failed, id) // a fresh start after a long quiet
		} else if now.Sub(f.at) < f.backoff() {
			st.Avoid = append(st.Avoid, id)
		}
	}
	d := routing.View(s.cfg.View, s.id, ring, st, now)
	s.view.epoch, s.view.refreshed = d.Epoch, d.Refreshed
	var dials []identity.NodeID
	for _, o := range d.Open {
		if _, ok := control[o.ID]; !ok {
			continue
		}
		s.dialing[o.ID] = true
		s.wg.Add(1)
		dials = append(dials, o.ID)
	}
	s.mu.Unlock()

	for _, c := range d.Drop {
		s.log.Debug("ring peer dropped from the view", zap.String("peer", c.ID.Short()), zap.String("reason", c.Reason))
		if conn := conns[c.ID]; conn != nil {
			if c.Reason == routing.ReasonNotMember {
				conn.Close(c.Reason) // nothing to wait for: it left
			} else {
				s.retire(conn, "dropped from the peer view: "+c.Reason)
			}
		}
	}
	for _, id := range dials {
		go s.dialPeer(id, control[id])
	}
}

// dialPeer links to a ring member the view rule picked.
func (s *Supernode) dialPeer(m identity.NodeID, addr string) {
	defer s.wg.Done()
	ok := false
	defer func() {
		s.mu.Lock()
		delete(s.dialing, m)
		if ok {
			delete(s.view.failed, m)
		} else {
			s.failedLocked(m)
		}
		s.mu.Unlock()
	}()
	c, err := link.Dial(s.ctx, addr, s.cfg.Creds, m, s.log)
	if err != nil {
		s.log.Debug("link to ring peer", zap.String("peer", m.Short()), zap.Error(err))
		return
	}
	if _, err := s.hello(c); err != nil {
		s.log.Debug("link to ring peer", zap.String("peer", m.Short()), zap.Error(err))
		c.Close(err.Error())
		return
	}
	ok = true
	s.addPeer(c, true)
}

func (s *Supernode) pingAll() {
	s.mu.Lock()
	conns := s.conns()
	s.mu.Unlock()
	for _, c := range conns {
		c.Ping()
	}
}

// conns lists every open link, to leaves and to peers. s.mu must be held.
func (s *Supernode) conns() []*link.Conn {
	var out []*link.Conn
	for _, l := range s.leaves {
		out = append(out, l.conn)
	}
	for _, set := range s.peers {
		for c := range set {
			out = append(out, c)
		}
	}
	return out
}
