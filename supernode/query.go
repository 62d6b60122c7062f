package supernode

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/index"
	"github.com/canopy-p2p/canopy/routing"
	"github.com/canopy-p2p/canopy/wire"
)

// maxHitsPerBatch and maxHitBytes keep one QueryHit well under the payload
// limit (wire.MaxPayload, 1 MiB): at most 200 hits, and at most about 256
// KiB of them. Every source of a hit carries its own name (up to 255
// bytes), so a hit of 32 sources of long names is about 10 KiB, and 100 of
// them (index.DefaultResultLimit) go out in four messages rather than one
// over the limit.
const (
	maxHitsPerBatch = 200
	maxHitBytes     = 256 << 10
)

// hitBytes is an upper bound of h's encoded size: its fields, each
// source's node, name and route, and CBOR's few bytes of framing per item.
func hitBytes(h wire.Hit) int {
	n := 16 + len(h.ID) + len(h.Name) + 9
	for _, src := range h.Sources {
		n += 16 + len(src.Node) + len(src.Name) + len(src.Via)*(len(identity.NodeID{})+2)
	}
	return n
}

// query handles a query from a leaf or a peer: it drops copies already seen,
// answers from the local index back along the arrival route, and forwards it
// to the peers the routing core picks.
func (s *Supernode) query(e wire.Envelope, from route) error {
	var q wire.Query
	if err := e.Decode(&q); err != nil {
		return err
	}
	if len(q.Words) > wire.MaxQueryWords {
		return fmt.Errorf("query of %d bytes exceeds %d", len(q.Words), wire.MaxQueryWords)
	}
	byContent := q.Content != [32]byte{}
	if !s.seen.add(e.ID, from, time.Now()) {
		s.count(func(st *Stats) { st.DuplicateQueries++ })
		return nil
	}
	limit := q.Limit
	if limit <= 0 || limit > index.DefaultResultLimit {
		limit = index.DefaultResultLimit
	}
	var hits []index.Hit
	if byContent {
		if h, ok := s.idx.Lookup(q.Content); ok {
			hits = []index.Hit{h}
		}
	} else {
		hits = s.idx.Search(index.Query{Words: q.Words, Limit: limit})
	}
	if len(hits) > 0 {
		s.answer(e.ID, from, hits)
	}
	d := routing.Forward(s.cfg.Routing, routing.Query{TTL: e.TTL, From: from.peer}, s.routingPeers())
	s.log.Debug("query", zap.String("id", e.ID.String()), zap.String("words", q.Words), zap.Int("forward", len(d.Targets)), zap.String("reason", d.Reason))
	for _, t := range d.Targets {
		c := s.peerLink(t)
		if c == nil {
			continue // not linked yet; linkRing will dial it
		}
		fwd := e
		fwd.TTL, fwd.Hops = d.TTL, e.Hops+1
		_ = c.Send(fwd)
	}
	return nil
}

// answer sends local hits for query id back along its route. Each source
// carries the name its owner shares the file under, so that a leaf shows the
// name of the source it downloads from rather than a count that sybils can
// win (docs/protocol.md, "Names in hits").
func (s *Supernode) answer(id wire.MsgID, to route, hits []index.Hit) {
	var batch []wire.Hit
	size := 0
	send := func() {
		if len(batch) == 0 {
			return
		}
		e, err := wire.New(wire.TypeQueryHit, &wire.QueryHit{From: s.id, Hits: batch})
		batch, size = nil, 0
		if err != nil {
			s.log.Warn("encode hits", zap.Error(err))
			return
		}
		e.ID = id
		s.sendBack(to, e)
	}
	for _, h := range hits {
		srcs := make([]wire.Source, len(h.Owners))
		for j, o := range h.Owners {
			srcs[j] = wire.Source{Node: o, Via: []identity.NodeID{s.id}, Name: h.Names[j]}
		}
		wh := wire.Hit{ID: h.ID, Name: h.Name, Size: h.Size, Sources: srcs}
		n := hitBytes(wh)
		if len(batch) == maxHitsPerBatch || len(batch) > 0 && size+n > maxHitBytes {
			send()
		}
		batch = append(batch, wh)
		size += n
	}
	send()
}

// routeHit passes hits from a peer one step back toward the query's origin.
func (s *Supernode) routeHit(e wire.Envelope) error {
	var qh wire.QueryHit
	if err := e.Decode(&qh); err != nil {
		return err
	}
	r, ok := s.seen.lookup(e.ID, time.Now())
	if !ok {
		return nil // the query expired here; late hits are dropped
	}
	s.count(func(st *Stats) { st.HitsRouted += uint64(len(qh.Hits)) })
	s.sendBack(r, e)
	return nil
}

func (s *Supernode) sendBack(r route, e wire.Envelope) {
	if !r.leaf.IsZero() {
		s.mu.Lock()
		l := s.leaves[r.leaf]
		s.mu.Unlock()
		if l != nil {
			_ = l.conn.Send(e)
		}
		return
	}
	if c := s.peerLink(r.peer); c != nil {
		_ = c.Send(e)
	}
}

// logEvery is how often a line about one kind of refusal is let through.
const logEvery = 10 * time.Second
