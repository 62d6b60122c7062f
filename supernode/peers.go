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

// addPeer registers a link to a ring peer and starts its reader. Two links to
// the same peer can exist for a moment (both sides dialled); both are used.
func (s *Supernode) addPeer(c *link.Conn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close("supernode shutting down")
		return
	}
	set := s.peers[c.Peer()]
	if set == nil {
		set = make(map[*link.Conn]struct{})
		s.peers[c.Peer()] = set
	}
	set[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.servePeer(c)
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
	case wire.TypeQuery, wire.TypeQueryHit, wire.TypeSignal:
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
		c.Close("peer said bye: " + b.Reason)
		return nil
	default:
		return fmt.Errorf("unexpected %s from a ring peer", e.Type)
	}
}

// peerLink returns an open link to the peer, if any.
func (s *Supernode) peerLink(id identity.NodeID) *link.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.peers[id] {
		return c
	}
	return nil
}

// routingPeers describes the ring for the routing core: every member with a
// link or reachable through gossip metadata.
func (s *Supernode) routingPeers() []routing.Peer {
	members := s.ring.Members()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]routing.Peer, 0, len(members))
	for _, m := range members {
		if m.Self {
			continue
		}
		_, linked := s.peers[m.Meta.NodeID]
		out = append(out, routing.Peer{ID: m.Meta.NodeID, Load: m.Meta.Load, Linked: linked})
	}
	return out
}

// maintain keeps links to ring peers, refreshes the published metadata and
// pings links so that idle timeouts only fire on dead peers.
func (s *Supernode) maintain() {
	defer s.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastPing := time.Now()
	lastMeta := s.meta()
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
		if m := s.meta(); m.Leaves != lastMeta.Leaves || m.Slots != lastMeta.Slots {
			lastMeta = m
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
		if time.Since(lastPing) >= s.cfg.IdleTimeout/3 {
			lastPing = time.Now()
			s.pingAll()
		}
	}
}

// linkRing dials ring members that have no link yet. Of each pair, the member
// with the smaller ID dials, so that two supernodes do not race to link twice.
func (s *Supernode) linkRing() {
	for _, m := range s.ring.Members() {
		id := m.Meta.NodeID
		if m.Self || bytes.Compare(s.id[:], id[:]) > 0 {
			continue
		}
		s.mu.Lock()
		_, linked := s.peers[id]
		busy := s.dialing[id] || s.closed
		if !linked && !busy {
			s.dialing[id] = true
			s.wg.Add(1)
		}
		s.mu.Unlock()
		if linked || busy {
			continue
		}
		go func(m identity.NodeID, addr string) {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.dialing, m)
				s.mu.Unlock()
			}()
			c, err := link.Dial(s.ctx, addr, s.cfg.Creds, m, s.log)
			if err != nil {
				s.log.Debug("link to ring peer", zap.String("peer", m.Short()), zap.Error(err))
				return
			}
			if _, err := s.hello(c); err != nil {
				c.Close(err.Error())
				return
			}
			s.addPeer(c)
		}(id, m.Meta.Control)
	}
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
