package supernode

import (
	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/identity"
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
	c := s.peerLink(sig.Via)
	if c == nil {
		s.count(func(st *Stats) { st.SignalsDropped++ })
		s.log.Debug("signal for an unlinked supernode dropped", zap.String("via", sig.Via.Short()))
		return
	}
	if err := c.SendBody(wire.TypeSignal, &sig); err != nil {
		s.count(func(st *Stats) { st.SignalsDropped++ })
		return
	}
	s.count(func(st *Stats) { st.SignalsRelayed++ })
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
