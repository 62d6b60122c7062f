package sim

import (
	"time"

	"github.com/canopy-p2p/canopy/promotion"
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
	m.snData = append(m.snData, supernode{since: now, lastLeaf: now, viewBuilt: -1, viewEpoch: m.epoch()})
	m.st.Promotions++
	m.interval.promotions++
	m.refreshView(id)
	// Announce: a few ring members learn of the newcomer at once (gossip
	// reaches all within seconds; views are bounded, so only some keep it).
	d := &m.snData[n.snPos]
	for _, p := range d.peers {
		pd := &m.snData[m.nodes[p].snPos]
		if len(pd.peers) < m.sc.Network.PeerView {
			pd.peers = append(pd.peers, id)
		} else {
			pd.peers[m.rng.IntN(len(pd.peers))] = id
		}
		pd.viewBuilt = -1
	}
	if m.sc.Network.SupernodeLeafSide {
		m.attach(id)
	}
	m.observe()
}

// refreshView fills a supernode's peer view with random ring members and
// drops members that are no longer supernodes (memberlist reports them dead
// within seconds; not modelled below the evaluation period).
func (m *model) refreshView(id uint32) {
	d := &m.snData[m.nodes[id].snPos]
	live := d.peers[:0]
	for _, p := range d.peers {
		if m.nodes[p].role == roleSupernode && p != id {
			live = append(live, p)
		}
	}
	d.peers = live
	d.viewBuilt = -1
	want := min(m.sc.Network.PeerView, len(m.sns)-1)
	for tries := 0; len(d.peers) < want && tries < 4*want; tries++ {
		p := m.sns[m.rng.IntN(len(m.sns))]
		if p != id && !contains(d.peers, p) {
			d.peers = append(d.peers, p)
		}
	}
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
	last := uint32(len(m.sns) - 1)
	if pos != last {
		moved := m.sns[last]
		m.sns[pos] = moved
		m.snData[pos] = m.snData[last]
		m.nodes[moved].snPos = pos
	}
	m.sns = m.sns[:last]
	m.left = append(m.left, id)
	m.snData[last] = supernode{}
	m.snData = m.snData[:last]
	n.role = roleLeaf
	n.snPos = none
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

// epoch is how many supernodes have left the ring so far.
func (m *model) epoch() uint64 { return uint64(len(m.left)) }
