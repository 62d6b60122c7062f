package sim

import (
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/promotion"
	"github.com/canopy-p2p/canopy/routing"
	"github.com/canopy-p2p/canopy/sim/des"
)

// ringView is what gossip tells a node about the ring. The simulator gives
// the current totals: memberlist converges in seconds (docs/field-numbers.md),
// far below the evaluation period, so the delay is not modelled.
//
// Leaves counts the leaf links the ring is asked for — K per online leaf —
// not only those it holds: a ring without room refuses leaves, and the
// refusals are how its supernodes see the demand they do not serve. Counting
// only held links would hide a starved network from the policy (the first
// version of this model did, and a network of 87,000 leaves sat with 7
// supernodes for minutes).
//
// With Network.SupernodeLeafSide, supernodes' leaf sides ask for K links each
// too, as in the node.
func (m *model) liveRingView() promotion.RingView {
	slots := len(m.sns) * m.sc.Network.LeafSlots
	load := 0.0
	if slots > 0 {
		load = float64(m.st.attached) / float64(slots)
	}
	return promotion.RingView{
		Supernodes: len(m.sns),
		Leaves:     m.sc.Network.Choice.K * m.leafSides(),
		FreeSlots:  slots - m.st.attached,
		Load:       load,
		Known:      true,
	}
}

// input builds the promotion policy's input for node id, as the real node
// builds it from its measurements.
func (m *model) input(id uint32) promotion.Input {
	n := &m.nodes[id]
	now := m.sim.Now()
	c := m.sc.Capacity[n.class]
	cur := now - n.sessionStart
	in := promotion.Input{
		Role:          promotion.RoleLeaf,
		Consent:       promotion.ConsentAuto,
		Reachable:     n.reachable,
		ReachKnown:    true,
		Uptime:        cur.Duration(),
		AvgUptime:     avgUptime(n),
		UpBandwidth:   c.Up,
		DownBandwidth: c.Down,
		CPUHeadroom:   c.Headroom,
		MemHeadroom:   c.Headroom,
		FreeFDs:       4096,
		SinceSwitch:   1 << 62,
		Demotions:     int(n.demotions),
		Draw:          m.rng.Float64(),
	}
	if n.role == roleLeaf && m.sc.Network.ViewRefresh.Duration > 0 {
		in.Ring = m.leafRingView(id, &in)
	} else {
		in.Ring = m.liveRingView()
	}
	if n.role == roleLeaf && in.Ring.Known && in.Ring.Supernodes == 0 {
		m.emergencyInput(id, &in)
	}
	if n.never {
		in.Consent = promotion.ConsentNever
	}
	if n.lastSwitch >= 0 {
		in.SinceSwitch = (now - n.lastSwitch).Duration()
	}
	if n.role == roleSupernode {
		d := &m.snData[n.snPos]
		in.Role = promotion.RoleSupernode
		in.Leaves = len(d.leaves)
		if len(d.leaves) == 0 {
			in.SinceLastLeaf = (now - max(d.lastLeaf, d.since)).Duration()
		}
	}
	return in
}

// evaluate runs the promotion policy for a reachable node and acts on it.
func (m *model) evaluate(id uint32) {
	n := &m.nodes[id]
	in := m.input(id)
	d := promotion.Decide(m.policy, in)
	switch d.Action {
	case promotion.Promote:
		if in.Ring.Supernodes == 0 {
			m.st.EmergencyPromotions++
		}
		m.promote(id)
	case promotion.Demote:
		m.demote(id)
	}
	// Jitter keeps a million nodes from evaluating in lockstep.
	period := des.FromDuration(m.sc.Network.Evaluate.Duration)
	m.sim.After(period-period/10+des.Time(m.rng.Int64N(int64(period/5)+1)), evEvaluate, id, n.gen)
}

// promote makes a leaf a supernode: it leaves its own supernodes, joins the
// ring, and opens its leaf slots.
//
// With Network.SupernodeLeafSide the node's leaf side stays attached, as the
// node's does, and may take its own new role as one of its supernodes.
func (m *model) promote(id uint32) {
	n := &m.nodes[id]
	if !m.sc.Network.SupernodeLeafSide {
		if n.nAtt == 0 {
			m.setOrphan(false)
		}
		m.detachAll(id)
	}
	m.st.leaves--
	now := m.sim.Now()
	n.role = roleSupernode
	n.lastSwitch = now
	n.switches++
	n.snPos = uint32(len(m.sns))
	m.sns = append(m.sns, id)
	m.snData = append(m.snData, supernode{since: now, lastLeaf: now, viewBuilt: -1})
	m.st.Promotions++
	m.interval.promotions++
	// The newcomer dials its view; the others link to it as their own rule
	// picks it. While the ring fits in a view, every member's view is the
	// whole ring, so every member links it now.
	m.linkView(id)
	m.relinkSmallRing()
	m.fillShortViews()
	m.schedulePeerView(id)
	if m.sc.Network.SupernodeLeafSide {
		m.attach(id)
	}
	m.observe()
}

// demote hands a supernode's leaves to other supernodes, leaves the ring,
// and attaches the node as a leaf.
func (m *model) demote(id uint32) {
	n := &m.nodes[id]
	// A flap is a supernode that gives its role up soon after taking it.
	if tenure := m.sim.Now() - m.snData[n.snPos].since; tenure < 2*des.FromDuration(m.policy.MinDwell) {
		m.st.Flaps++
	}
	m.dropSupernode(id, 0)
	n.demotions = min(n.demotions+1, 255)
	n.lastSwitch = m.sim.Now()
	n.switches++
	m.st.Demotions++
	m.interval.demotions++
	m.st.leaves++
	if !m.sc.Network.SupernodeLeafSide {
		// Without a leaf side it had no link; with one, dropSupernode
		// counted it an orphan if its last link was to itself.
		m.setOrphan(true)
	}
	m.attach(id)
}

// dropSupernode removes a supernode from the ring. Its leaves look for
// another supernode after delay: zero for a hand-over, the idle timeout for
// a crash.
func (m *model) dropSupernode(id uint32, delay des.Time) {
	n := &m.nodes[id]
	pos := n.snPos
	d := &m.snData[pos]
	for len(d.leaves) > 0 {
		leaf := d.leaves[len(d.leaves)-1]
		ln := &m.nodes[leaf]
		for j, a := range m.atts[leaf][:ln.nAtt] {
			if a == id {
				m.unlink(leaf, uint8(j))
				break
			}
		}
		if ln.nAtt == 0 {
			m.setOrphan(true)
		}
		if !ln.attaching {
			ln.attaching = true
			m.sim.After(delay, evAttach, leaf, ln.gen)
		}
	}
	// Its links go at once, on both sides (a goodbye, or the idle timeout
	// of a crash; the difference is not modelled for ring links).
	for _, p := range d.peers {
		pd := &m.snData[m.nodes[p].snPos]
		pd.in = remove(pd.in, id)
		pd.viewBuilt = -1
	}
	lost := d.in
	for _, q := range lost {
		qd := &m.snData[m.nodes[q].snPos]
		qd.peers = remove(qd.peers, id)
		qd.viewBuilt = -1
	}
	last := uint32(len(m.sns) - 1)
	if pos != last {
		moved := m.sns[last]
		m.sns[pos] = moved
		m.snData[pos] = m.snData[last]
		m.nodes[moved].snPos = pos
	}
	m.sns = m.sns[:last]
	m.snData[last] = supernode{}
	m.snData = m.snData[:last]
	n.role = roleLeaf
	n.snPos = none
	// Those that had dialled it fill their views again.
	for _, q := range lost {
		m.linkView(q)
	}
	m.relinkSmallRing()
	m.fillShortViews()
	if len(m.sns) == 0 {
		m.ringEmptied(delay)
	}
}

// avgUptime is the mean length of a node's completed sessions (zero before
// the first one ends), as the node persists it across restarts.
func avgUptime(n *node) time.Duration {
	if n.sessions <= 1 {
		return 0
	}
	return (n.upTotal / des.Time(n.sessions-1)).Duration()
}

// viewParams are the peer-view bounds the scenario gives the node's rule.
func (m *model) viewParams() routing.ViewParams {
	nw := &m.sc.Network
	return routing.ViewParams{PeerView: nw.PeerView, Refresh: nw.PeerViewRefresh.Duration, Rotate: nw.PeerViewRotate, MaxInbound: nw.PeerInbound}
}

// simRing is the supernode table as the view rule reads the ring.
type simRing struct{ m *model }

func (r simRing) Len() int                     { return len(r.m.sns) }
func (r simRing) Member(i int) identity.NodeID { return nodeID(r.m.sns[i]) }
func (r simRing) Has(id identity.NodeID) bool {
	n := fromNodeID(id)
	return int(n) < len(r.m.nodes) && r.m.nodes[n].role == roleSupernode
}

// wall is the simulated time as the view rule takes it.
func (m *model) wall() time.Time { return time.Unix(0, 0).Add(m.sim.Now().Duration()) }

// linkView runs the node's peer-view rule for supernode id and applies it:
// links it drops close on both sides, and the members it picks accept the
// link unless their inbound links are full (routing.AcceptInbound), in which
// case the rule is asked again with them avoided, as the node does after a
// refusal.
func (m *model) linkView(id uint32) {
	d := &m.snData[m.nodes[id].snPos]
	p := m.viewParams()
	var avoid []identity.NodeID
	for round := 0; round < 4; round++ {
		links := m.viewLinks[:0]
		for _, q := range d.peers {
			links = append(links, routing.ViewLink{ID: nodeID(q), Outbound: true})
		}
		for _, q := range d.in {
			links = append(links, routing.ViewLink{ID: nodeID(q)})
		}
		m.viewLinks = links
		dec := routing.View(p, nodeID(id), simRing{m}, routing.ViewState{Links: links, Epoch: d.viewEpoch, Refreshed: d.refreshed, Avoid: avoid}, m.wall())
		d.viewEpoch, d.refreshed = dec.Epoch, dec.Refreshed
		for _, c := range dec.Drop {
			q := fromNodeID(c.ID)
			if c.Outbound {
				m.unlinkPeer(id, q)
			} else {
				m.unlinkPeer(q, id)
			}
		}
		refused := false
		for _, c := range dec.Open {
			q := fromNodeID(c.ID)
			qd := &m.snData[m.nodes[q].snPos]
			if ok, _ := routing.AcceptInbound(p, len(qd.in)); !ok {
				avoid, refused = append(avoid, c.ID), true
				continue
			}
			d.peers = append(d.peers, q)
			qd.in = append(qd.in, id)
			qd.viewBuilt = -1
		}
		d.viewBuilt = -1
		if !refused {
			return
		}
	}
}

// unlinkPeer closes the link supernode from dialled to supernode to.
func (m *model) unlinkPeer(from, to uint32) {
	fd, td := &m.snData[m.nodes[from].snPos], &m.snData[m.nodes[to].snPos]
	fd.peers, td.in = remove(fd.peers, to), remove(td.in, from)
	fd.viewBuilt, td.viewBuilt = -1, -1
}

// relinkSmallRing runs the view rule for every supernode while the ring
// fits in a view or has just outgrown one: the node runs it every second,
// and in a ring that small every membership change changes every view.
func (m *model) relinkSmallRing() {
	if len(m.sns) > m.sc.Network.PeerView+2 {
		return
	}
	for _, s := range m.sns {
		m.linkView(s)
	}
}

// fillShortViews runs the view rule for the supernodes that dialled fewer
// members than their view holds (every member free to dial was linked or
// full): the node retries every second, so a member that joins or a slot
// that frees is taken at once. It is a scan of the ring, at role changes
// only; short views are rare once the ring is a few views large.
func (m *model) fillShortViews() {
	if len(m.sns) <= m.sc.Network.PeerView+2 {
		return // relinkSmallRing ran every rule
	}
	for i := 0; i < len(m.sns); i++ {
		if len(m.snData[i].peers) < m.sc.Network.PeerView {
			m.linkView(m.sns[i])
		}
	}
}

// schedulePeerView schedules supernode id's next view refresh.
func (m *model) schedulePeerView(id uint32) {
	d := &m.snData[m.nodes[id].snPos]
	d.viewDue = m.sim.Now() + des.FromDuration(m.viewParams().WithDefaults().Refresh)
	m.sim.At(d.viewDue, evPeerView, id, 0)
}

// peerViewDue refreshes supernode id's view if the event is of its current
// tenure.
func (m *model) peerViewDue(id uint32) {
	n := &m.nodes[id]
	if !n.online || n.role != roleSupernode || m.snData[n.snPos].viewDue != m.sim.Now() {
		return
	}
	m.linkView(id)
	if len(m.snData[n.snPos].peers) < m.sc.Network.PeerView {
		// Nothing but the member it rotated out was free: the node takes
		// it back a moment later, as soon as it is no longer excluded.
		m.linkView(id)
	}
	m.schedulePeerView(id)
}

// remove deletes the first v from s, not keeping the order.
func remove(s []uint32, v uint32) []uint32 {
	for i, x := range s {
		if x == v {
			s[i] = s[len(s)-1]
			return s[:len(s)-1]
		}
	}
	return s
}
