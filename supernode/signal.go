package supernode

import (
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/wire"
)

// maxVia bounds the return routes a signal carries.
const maxVia = 4

// signalFromLeaf relays a leaf's signal toward the recipient's supernode. The
// supernode stamps the authenticated sender and puts itself first in the return
// route, so an answer comes back through a supernode the sender is attached to.
func (s *Supernode) signalFromLeaf(l *leafSlot, sig wire.Signal) {
	sig.From = l.conn.Peer()
	via := []identity.NodeID{s.id}
	for _, v := range sig.FromVia {
		if v != s.id && len(via) < maxVia {
			via = append(via, v)
		}
	}
	sig.FromVia = via
	if sig.Via == s.id || sig.Via.IsZero() {
		s.deliverSignal(sig)
		return
	}
	if c := s.peerLink(sig.Via); c != nil {
		s.sendSignal(c, sig)
		return
	}
	s.signalLink(sig)
}

// sendSignal sends sig to a ring peer over c and counts the outcome.
func (s *Supernode) sendSignal(c *link.Conn, sig wire.Signal) {
	s.mu.Lock()
	if pl := s.peers[c.Peer()][c]; pl != nil && pl.signal {
		pl.lastUsed = time.Now()
	}
	s.mu.Unlock()
	if err := c.SendBody(wire.TypeSignal, &sig); err != nil {
		s.count(func(st *Stats) { st.SignalsDropped++ })
		return
	}
	s.count(func(st *Stats) { st.SignalsRelayed++ })
}

// Signalling links. With a bounded peer view a leaf's supernode is usually
// not linked to the supernode a source is attached to (the hit came over
// several hops), yet the offer, answer and candidates of a download must
// reach it. The supernode then dials that ring member on demand: a link
// outside the view, carrying signals both ways, closed after signalLinkIdle
// without one. The signals that arrive while it is dialled wait in a bounded
// queue.
const (
	// signalLinkIdle is how long a signalling link stays open after its last
	// signal: a download's ICE exchange takes seconds, and a second download
	// between the same leaves soon after reuses the link.
	signalLinkIdle = 2 * time.Minute
	// maxSignalLinks bounds the signalling links (open and being dialled) a
	// supernode holds at once, so that its leaves cannot make it dial the
	// whole ring.
	maxSignalLinks = 32
	// maxPendingSignals bounds the signals queued for one member while the
	// link to it is dialled: an offer and a burst of trickled candidates.
	maxPendingSignals = 32
)

// signalLink relays sig over a signalling link to sig.Via, dialling one if
// none is up. Signals beyond the bounds, or for a supernode that is not a
// ring member, are dropped and counted.
func (s *Supernode) signalLink(sig wire.Signal) {
	addr := ""
	for _, m := range s.ring.Members() {
		if m.Meta.NodeID == sig.Via && !m.Self {
			addr = m.Meta.Control
		}
	}
	drop := func(why string) {
		s.count(func(st *Stats) { st.SignalsDropped++ })
		s.log.Debug("signal dropped", zap.String("via", sig.Via.Short()), zap.String("reason", why))
	}
	if addr == "" {
		drop("not a ring member")
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		drop("supernode shutting down")
		return
	}
	if q, ok := s.sigDialing[sig.Via]; ok {
		if len(q) >= maxPendingSignals {
			s.mu.Unlock()
			drop("too many signals waiting for the link")
			return
		}
		s.sigDialing[sig.Via] = append(q, sig)
		s.mu.Unlock()
		return
	}
	if s.signalLinksLocked()+len(s.sigDialing) >= maxSignalLinks {
		s.mu.Unlock()
		drop("too many signalling links")
		return
	}
	s.sigDialing[sig.Via] = []wire.Signal{sig}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.dialSignalLink(sig.Via, addr)
}

// dialSignalLink dials a signalling link to the ring member id and sends the
// signals queued for it.
func (s *Supernode) dialSignalLink(id identity.NodeID, addr string) {
	defer s.wg.Done()
	c, err := link.Dial(s.ctx, addr, s.cfg.Creds, id, s.log)
	if err == nil {
		if _, err = s.hello(c); err != nil {
			c.Close(err.Error())
		}
	}
	s.mu.Lock()
	queued := s.sigDialing[id]
	delete(s.sigDialing, id)
	s.mu.Unlock()
	if err != nil {
		s.log.Debug("signalling link", zap.String("peer", id.Short()), zap.Error(err))
		s.count(func(st *Stats) { st.SignalsDropped += uint64(len(queued)) })
		return
	}
	now := time.Now()
	s.addLink(c, &peerLink{outbound: true, since: now, signal: true, lastUsed: now})
	for _, sig := range queued {
		s.sendSignal(c, sig)
	}
}

// signalLinksLocked counts the open signalling links. s.mu must be held.
func (s *Supernode) signalLinksLocked() int {
	n := 0
	for _, set := range s.peers {
		for _, pl := range set {
			if pl.signal {
				n++
			}
		}
	}
	return n
}

// closeIdleSignalLinks closes the signalling links unused for
// signalLinkIdle.
func (s *Supernode) closeIdleSignalLinks(now time.Time) {
	var idle []*link.Conn
	s.mu.Lock()
	for _, set := range s.peers {
		for c, pl := range set {
			if pl.signal && now.Sub(pl.lastUsed) >= signalLinkIdle {
				idle = append(idle, c)
			}
		}
	}
	s.mu.Unlock()
	for _, c := range idle {
		c.Close("signalling link idle")
	}
}

// signalFromPeer delivers a signal another supernode relayed to one of our
// leaves. The sender was stamped by that supernode, which TLS authenticated.
func (s *Supernode) signalFromPeer(sig wire.Signal) {
	s.deliverSignal(sig)
}

func (s *Supernode) deliverSignal(sig wire.Signal) {
	s.mu.Lock()
	l := s.leaves[sig.To]
	s.mu.Unlock()
	if l == nil {
		s.count(func(st *Stats) { st.SignalsDropped++ })
		s.log.Debug("signal for an unknown leaf dropped", zap.String("to", sig.To.Short()))
		return
	}
	if err := l.conn.SendBody(wire.TypeSignal, &sig); err != nil {
		s.count(func(st *Stats) { st.SignalsDropped++ })
		return
	}
	s.count(func(st *Stats) { st.SignalsRelayed++ })
}
