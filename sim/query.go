package sim

import (
	"github.com/canopy-p2p/canopy/routing"
	"github.com/canopy-p2p/canopy/sim/des"
	"github.com/canopy-p2p/canopy/wire"
	"slices"
)

// Modelled message sizes, for supernode upstream load: a query envelope with
// a few words, and a hit batch with one hit and its sources.
const (
	queryBytes = 120
	hitBytes   = 200
)

// gossipRefresh is how old the peer loads a supernode routes by may get:
// memberlist spreads metadata updates within seconds (docs/field-numbers.md), and
// supernodes publish them when their leaf count changes.
const gossipRefresh = des.Minute

// holderScanAfterHit is how many more holders a query's evaluation looks at
// after its first hit, for a nearer one.
const holderScanAfterHit = 8

// query simulates one search by leaf id for a file drawn from the popularity
// distribution. The leaf sends it to each of its supernodes; each runs the
// node's routing core to pick the ring peers it forwards to, and so on while
// the TTL lasts. The search succeeds when an online holder of the file is
// attached to a supernode the query reached; its latency is the hops there
// and back.
func (m *model) query(id uint32) {
	n := &m.nodes[id]
	m.sim.After(m.nextQuery(), evQuery, id, n.gen)
	if n.role != roleLeaf {
		return // supernodes' own searches are not modelled
	}
	if m.sc.Files.Layout == "one-each" && !m.anyOtherOnline(id) {
		return // nothing to look for
	}
	m.st.Queries++
	m.interval.queries++
	if n.nAtt == 0 {
		return // an orphan's search fails: it has no supernode to ask
	}
	reached := &m.reached
	reached.reset()
	msgs := uint64(0)
	// Breadth-first over the ring, hop by hop, as the envelopes travel.
	frontier := m.atts[id][:n.nAtt]
	var next []uint32
	for _, sn := range frontier {
		reached.add(sn, 1)
		msgs++
	}
	ttl := routing.OriginTTL(m.sc.Network.Routing, m.viewParams(), len(m.sns))
	for depth := uint8(1); len(frontier) > 0; depth++ {
		if d := routing.Forward(m.sc.Network.Routing, routing.Query{TTL: ttl}, nil); d.TTL == 0 && len(d.Targets) == 0 {
			// The TTL is spent: every supernode at this depth answers
			// locally and forwards nothing, whatever its peers (the
			// routing core decides that from the TTL alone).
			break
		}
		next = next[:0]
		for _, sn := range frontier {
			targets := m.forward(sn, ttl)
			d := &m.snData[m.nodes[sn].snPos]
			for _, t := range targets {
				d.upBytes += queryBytes
				m.interval.queryBytes += queryBytes
				msgs++
				if !reached.add(t, depth+1) {
					continue // a duplicate, dropped by its message ID
				}
				next = append(next, t)
			}
		}
		frontier, ttl = next, ttl-1
		next = nil
	}

	// Holders of the file, searched in the supernodes the query reached.
	// The scan stops at a hit through the leaf's own supernodes (nothing is
	// faster), or a little after the first farther hit: the count of
	// answering supernodes then stops growing the result, and scanning every
	// holder of a popular file would cost more than the rest of the query.
	f := m.target(id)
	best := uint8(0)
	hitSNs := 0
	var source uint32 = none
	budget := -1 // holders still scanned after the first hit; -1: no hit yet
	for _, h := range m.holders[m.holderOff[f]:m.holderOff[f+1]] {
		if budget == 0 {
			break
		}
		if budget > 0 {
			budget--
		}
		if h == id {
			continue
		}
		// Offline holders have no attachments, nor do supernodes unless
		// they keep a leaf side (see atts).
		for _, sn := range m.atts[h] {
			if sn == none {
				break
			}
			dp := reached.depth(sn)
			if dp == 0 {
				continue
			}
			hitSNs++
			if best == 0 || dp < best {
				best, source = dp, h
			}
		}
		if best == 1 {
			break
		}
		if best > 0 && budget < 0 {
			budget = holderScanAfterHit
		}
	}
	if best > 0 {
		msgs += uint64(hitSNs) // one hit batch per answering supernode (routed back)
		m.st.Successes++
		m.interval.successes++
		m.st.HitHops += uint64(best)
		m.interval.hops += uint64(best)
		lat := 0.0
		for range 2 * int(best) {
			lat += m.hop.Sample(m.rng)
		}
		m.interval.latencyMS += lat
		m.st.latencies[min(int(lat), len(m.st.latencies)-1)]++
		for _, sn := range m.atts[id][:n.nAtt] {
			m.snData[m.nodes[sn].snPos].upBytes += hitBytes
			m.interval.queryBytes += hitBytes
		}
		if m.rng.Float64() < m.sc.Queries.DownloadShare {
			m.download(id, source)
		}
	}
	m.st.Messages += msgs
	m.interval.messages += msgs
}

// forward asks the routing core where supernode sn sends a query that
// arrived with ttl, given the peers it is linked to. The core's answer
// depends only on the view and, through the TTL, on whether the query goes
// on at all (the model never sends a query back to its sender's peer set by
// From), so it is asked once per view and its targets are kept: sorting
// the view for the fan-out cap at every hop would cost more than the rest
// of the search.
func (m *model) forward(sn uint32, ttl uint8) []uint32 {
	d := &m.snData[m.nodes[sn].snPos]
	now := m.sim.Now()
	if d.viewBuilt < 0 || now-d.viewBuilt > gossipRefresh {
		d.viewBuilt = now
		view := m.viewScratch[:0]
		for _, set := range [2][]uint32{d.peers, d.in} {
			for _, p := range set {
				pd := &m.snData[m.nodes[p].snPos]
				view = append(view, routing.Peer{
					ID:     nodeID(p),
					Load:   uint8(min(100, len(pd.leaves)*100/m.sc.Network.LeafSlots)),
					Linked: true,
				})
			}
		}
		// The routing core's answer depends only on the view: when no link
		// and no load changed since the last rebuild, its targets stand.
		// (Comparing the views costs far less than the core's sort.)
		if !slices.Equal(view, d.view) {
			dec := routing.Forward(m.sc.Network.Routing, routing.Query{TTL: wire.MaxTTL}, view)
			d.targets = d.targets[:0]
			for _, t := range dec.Targets {
				d.targets = append(d.targets, fromNodeID(t))
			}
			d.view, m.viewScratch = view, d.view
		} else {
			m.viewScratch = view
		}
	}
	if dec := routing.Forward(m.sc.Network.Routing, routing.Query{TTL: ttl}, nil); dec.TTL == 0 && len(dec.Targets) == 0 {
		return nil // the TTL is spent here
	}
	return d.targets
}

// download models the transfer that follows a successful search: direct when
// the two NATs allow it, otherwise relayed by one of the downloader's
// supernodes, which then carries the file on its uplink.
func (m *model) download(id, source uint32) {
	m.st.Downloads++
	a, b := &m.nodes[id], &m.nodes[source]
	if m.direct.direct(a.nat, b.nat) {
		return
	}
	m.st.Relayed++
	size := m.sc.Queries.FileSize
	m.st.RelayBytes += size
	m.interval.relayBytes += size
	m.snData[m.nodes[m.atts[id][0]].snPos].upBytes += size
}

// target draws the file leaf id searches for: from the popularity
// distribution, or with Files.Layout "one-each" the file of a uniformly
// chosen other online node.
// The caller checks that there is such a node.
func (m *model) target(id uint32) uint32 {
	if m.sc.Files.Layout != "one-each" {
		return uint32(m.popularity.Sample(m.rng))
	}
	for {
		j := uint32(m.rng.IntN(len(m.nodes)))
		if j != id && m.nodes[j].online {
			return j
		}
	}
}

// anyOtherOnline reports whether a node other than id is online.
func (m *model) anyOtherOnline(id uint32) bool {
	return m.st.online > 1 || (m.st.online == 1 && !m.nodes[id].online)
}
