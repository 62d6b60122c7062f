package sim

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/canopy-p2p/canopy/choice"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/nat"
	"github.com/canopy-p2p/canopy/promotion"
	"github.com/canopy-p2p/canopy/routing"
	"github.com/canopy-p2p/canopy/sim/des"
	"github.com/canopy-p2p/canopy/sim/dist"
)

// maxK is the most supernodes a simulated leaf attaches to.
const maxK = 4

// none marks an empty attachment or position.
const none = ^uint32(0)

// Event kinds.
const (
	evArrive uint8 = iota + 1
	evDepart
	evEvaluate
	evQuery
	evAttach
	evSample
	evScript    // scripted event Node (an index in Scenario.Events)
	evScriptMid // half-way to scripted event Node
	evView      // the leaves' view of the ring is refreshed
	evPeerView  // a supernode's peer view is refreshed (Network.PeerViewRefresh)
)

const (
	roleLeaf = iota
	roleSupernode
)

// node is one simulated node: about 100 bytes, flat, so that a million of
// them fit in cache-friendly slices and the garbage collector scans nothing.
type node struct {
	sessionStart des.Time
	upTotal      des.Time     // online time of finished sessions
	lastSwitch   des.Time     // last role change; negative: never
	slot         [maxK]uint32 // position in the supernode's leaf list (see model.atts)
	files        uint32       // offset of the node's files in model.shared
	snPos        uint32       // position in model.sns while a supernode
	gen          uint32       // session number; events of older sessions are stale
	nfiles       uint16
	sessions     uint16
	switches     uint16
	nAtt         uint8
	role         uint8
	class        uint8
	nat          nat.Kind
	demotions    uint8
	online       bool
	reachable    bool
	never        bool  // the user said --supernode never
	attaching    bool  // an evAttach is scheduled
	retries      uint8 // attach attempts in a row that left the leaf an orphan
}

// attachments are a leaf's supernodes, none-padded.
type attachments [maxK]uint32

// supernode is what a node holds while it is a supernode.
type supernode struct {
	leaves []uint32
	// peers are the supernodes it dialled (its view, routing.View) and in
	// those that dialled it: a link carries queries both ways, so the
	// routing core sees both.
	peers, in []uint32
	// viewEpoch and refreshed are the view rule's state; viewDue is when
	// its next refresh event is due (an event due at another time is of an
	// earlier tenure).
	viewEpoch uint64
	refreshed time.Time
	viewDue   des.Time
	// view is peers and in as the routing core sees them, with the loads their
	// gossip metadata published. It is rebuilt when peers change or its
	// loads are older than gossipRefresh, as a real supernode's view of
	// memberlist metadata is only as fresh as the last gossip.
	view      []routing.Peer
	targets   []uint32 // the routing core's targets for view
	viewBuilt des.Time // -1: rebuild at next use
	since     des.Time
	lastLeaf  des.Time // last time it had at least one leaf
	upBytes   float64  // upstream bytes sent (queries, hits, relaying)
}

// model is the simulated network. All of it is owned by the one goroutine
// that runs the engine.
type model struct {
	sc     Scenario
	sim    *des.Sim
	rng    *rand.Rand
	policy promotion.Params
	nodes  []node
	// atts holds each node's supernodes (none-padded) apart from the rest
	// of its state: a search checks the attachments of many scattered file
	// holders, and 16 bytes a node stay in cache where the whole node would
	// not. Only online leaves have attachments, so an entry of nones also
	// says "not a leaf that can answer".
	atts []attachments
	// kinds is the nat.Kind of each entry of sc.NAT, and direct the
	// table of which pairs of kinds connect directly.
	kinds  []nat.Kind
	direct directTable

	sns    []uint32 // supernode node IDs
	snData []supernode

	shared     []uint32 // every node's files, by node offset
	holderOff  []uint32 // catalog → first index in holders
	holders    []uint32 // node IDs holding each file
	popularity *dist.Zipf
	session    dist.Sampler
	offline    dist.Sampler
	hop        dist.Sampler
	classes    *dist.Discrete
	nats       *dist.Discrete

	// reached is the set of supernodes the current query reached.
	reached reachSet
	// viewScratch is scratch space for a supernode's routing view while it
	// is compared with the one the routing core last answered for.
	viewScratch []routing.Peer
	// viewLinks is scratch space for the view rule's input.
	viewLinks []routing.ViewLink

	// leafView is the ring as the leaves last heard of it, when the
	// scenario models the guidance's refresh (Network.ViewRefresh).
	leafView promotion.RingView
	// trk follows scripted events and emergency elections.
	trk eventTracker

	st       stats
	interval intervalStats
	series   *seriesRecorder
}

// stats are the run's totals.
type stats struct {
	Promotions, Demotions, Flaps, EmergencyPromotions uint64
	Queries, Successes, Messages                      uint64
	HitHops                                           uint64
	Downloads, Relayed                                uint64
	RelayBytes, QueryBytes                            float64
	OrphanLeafTime                                    float64 // leaf-seconds with no supernode
	orphans                                           int
	orphanMark                                        des.Time
	latencies                                         []uint64 // histogram of first-hit latency, 1 ms buckets up to 10 s
	online, leaves, attached                          int
}

type intervalStats struct {
	promotions, demotions, queries, successes, messages, hops uint64
	latencyMS                                                 float64
	relayBytes, queryBytes                                    float64
}

func newModel(sc Scenario, policy promotion.Params) (*model, error) {
	if sc.Files.Layout == "one-each" {
		sc.Files.Catalog = sc.Nodes // file i is node i's
	}
	m := &model{sc: sc, policy: policy, sim: des.New(sc.Seed)}
	m.rng = m.sim.Rand()
	m.trk.cur = -1
	var err error
	if m.session, err = sc.Churn.Session.Sampler(); err != nil {
		return nil, fmt.Errorf("churn.session: %w", err)
	}
	if m.offline, err = sc.Churn.Offline.Sampler(); err != nil {
		return nil, fmt.Errorf("churn.offline: %w", err)
	}
	if m.hop, err = sc.Network.HopLatency.Sampler(); err != nil {
		return nil, fmt.Errorf("network.hop_latency: %w", err)
	}
	w := make([]float64, len(sc.Capacity))
	for i, c := range sc.Capacity {
		w[i] = c.Share
	}
	if m.classes, err = dist.NewDiscrete(w); err != nil {
		return nil, fmt.Errorf("capacity: %w", err)
	}
	w = make([]float64, len(sc.NAT))
	for i, n := range sc.NAT {
		w[i] = n.Share
	}
	if m.nats, err = dist.NewDiscrete(w); err != nil {
		return nil, fmt.Errorf("nat: %w", err)
	}
	m.kinds = make([]nat.Kind, len(sc.NAT))
	for i, n := range sc.NAT {
		if m.kinds[i], err = nat.ParseKind(n.Kind); err != nil {
			return nil, fmt.Errorf("nat: %w", err)
		}
	}
	m.direct = newDirectTable()
	if m.popularity, err = dist.NewZipf(sc.Files.Catalog, sc.Files.ZipfS); err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	m.nodes = make([]node, sc.Nodes)
	m.atts = make([]attachments, sc.Nodes)
	m.st.latencies = make([]uint64, 10_001)
	m.populate()
	return m, nil
}

// populate draws every node's capacity, NAT, consent and files, and
// schedules its first arrival.
func (m *model) populate() {
	sc := &m.sc
	counts := make([]uint32, sc.Files.Catalog+1)
	for i := range m.nodes {
		n := &m.nodes[i]
		if sc.CapacityAssign == "stratified" {
			n.class = m.stratum(i)
		} else {
			n.class = uint8(m.classes.Sample(m.rng))
		}
		k := m.nats.Sample(m.rng)
		nk := sc.NAT[k]
		n.nat = m.kinds[k]
		n.reachable = !n.nat.NATed() || m.rng.Float64() < nk.Mapped
		n.never = m.rng.Float64() < sc.Network.NeverConsent
		n.lastSwitch = -1
		// Nodes come with the history a real node persists: past sessions
		// drawn from the same distribution, so that the policy's average
		// uptime means at t = 0 what it means later.
		for range sc.Churn.History {
			n.upTotal += minutes(m.session.Sample(m.rng))
			n.sessions++
		}
		for j := range n.slot {
			m.atts[i][j], n.slot[j] = none, none
		}
		n.snPos = none
		n.files = uint32(len(m.shared))
		if sc.Files.Layout == "one-each" {
			m.shared = append(m.shared, uint32(i))
			counts[i+1]++
			n.nfiles = 1
		} else if m.rng.Float64() >= sc.Files.FreeRiders && sc.Files.PerNode > 0 {
			// Geometric-ish spread around the mean: most share a little,
			// a few share a lot.
			k := min(int(m.rng.ExpFloat64()*float64(sc.Files.PerNode))+1, 65535)
			for range k {
				f := uint32(m.popularity.Sample(m.rng))
				m.shared = append(m.shared, f)
				counts[f+1]++
			}
			n.nfiles = uint16(k)
		}
		m.firstArrival(uint32(i))
	}
	// Invert node → files into file → holders (counting sort).
	for i := 1; i < len(counts); i++ {
		counts[i] += counts[i-1]
	}
	m.holderOff = append([]uint32(nil), counts...)
	m.holders = make([]uint32, len(m.shared))
	fill := append([]uint32(nil), counts[:len(counts)-1]...)
	for i := range m.nodes {
		n := &m.nodes[i]
		for _, f := range m.shared[n.files : n.files+uint32(n.nfiles)] {
			m.holders[fill[f]] = uint32(i)
			fill[f]++
		}
	}
}

// stratum is node i's capacity class when classes are assigned by share
// rather than drawn: the class whose cumulative share first exceeds
// (i+½)/Nodes.
func (m *model) stratum(i int) uint8 {
	total := 0.0
	for _, c := range m.sc.Capacity {
		total += c.Share
	}
	at, acc := (float64(i)+0.5)/float64(m.sc.Nodes)*total, 0.0
	for j, c := range m.sc.Capacity {
		acc += c.Share
		if at < acc {
			return uint8(j)
		}
	}
	return uint8(len(m.sc.Capacity) - 1)
}

// firstArrival schedules a node's first appearance. In a "steady" start the
// network looks as if it had been running for ever: a node is online with the
// long-run probability E[session] / (E[session] + E[offline]) of an
// alternating renewal process, inside a session drawn length-biased (long
// sessions are likelier to cover t = 0) of which a uniform share has passed;
// an offline node comes back after the rest of a length-biased offline time.
// An "empty" start is a new network: every node arrives uniformly within
// ArrivalWindow.
func (m *model) firstArrival(id uint32) {
	ch := &m.sc.Churn
	if ch.Start == "empty" {
		w := max(des.FromDuration(ch.ArrivalWindow.Duration), 1)
		m.sim.At(des.Time(m.rng.Int64N(int64(w))), evArrive, id, 0)
		return
	}
	on := m.session.Mean() / (m.session.Mean() + m.offline.Mean())
	if m.rng.Float64() < on {
		length := minutes(m.session.LengthBiased(m.rng))
		m.arrive(id, length, des.Time(m.rng.Float64()*float64(length)))
		return
	}
	m.sim.At(des.Time(m.rng.Float64()*float64(minutes(m.offline.LengthBiased(m.rng)))), evArrive, id, 0)
}

func (m *model) handle(s *des.Sim, ev des.Event) {
	switch ev.Kind {
	case evSample:
		m.sample()
		return
	case evArrive:
		m.arrive(ev.Node, minutes(m.session.Sample(m.rng)), 0)
		return
	case evScript:
		m.scripted(int(ev.Node))
		return
	case evScriptMid:
		m.scriptMid()
		return
	case evView:
		m.refreshLeafView()
		return
	case evPeerView:
		m.peerViewDue(ev.Node)
		return
	}
	n := &m.nodes[ev.Node]
	if !n.online || n.gen != ev.Arg {
		return // an event of an earlier session
	}
	switch ev.Kind {
	case evDepart:
		m.depart(ev.Node)
	case evEvaluate:
		m.evaluate(ev.Node)
	case evQuery:
		m.query(ev.Node)
	case evAttach:
		n.attaching = false
		m.attach(ev.Node)
	}
}

// arrive starts a session of the given length, of which age has passed.
func (m *model) arrive(id uint32, length, age des.Time) {
	n := &m.nodes[id]
	n.online = true
	n.gen++ // events of the last session are stale from now on
	n.attaching = false
	n.retries = 0
	n.sessions++
	n.sessionStart = m.sim.Now() - age
	m.st.online++
	m.st.leaves++
	m.setOrphan(true)
	m.sim.After(length-age, evDepart, id, n.gen)
	m.attach(id)
	if m.sc.Queries.PerHour > 0 {
		m.sim.After(m.nextQuery(), evQuery, id, n.gen)
	}
	if n.reachable {
		// The first evaluation comes soon after start (within a minute, or
		// an evaluation period if that is shorter), so that the first node
		// of an empty network elects itself without waiting a full period.
		first := min(des.Minute, des.FromDuration(m.sc.Network.Evaluate.Duration))
		m.sim.After(des.Time(m.rng.Int64N(int64(first))), evEvaluate, id, n.gen)
	}
}

// depart ends a session; the node comes back after an offline time.
func (m *model) depart(id uint32) {
	// A crash leaves its leaves waiting for the idle timeout; a goodbye
	// lets them move at once.
	delay := des.Time(0)
	if m.nodes[id].role == roleSupernode && m.rng.Float64() < m.sc.Churn.CrashShare {
		delay = des.FromDuration(m.sc.Network.DetectDead.Duration)
	}
	m.goOffline(id, delay)
	m.sim.After(minutes(m.offline.Sample(m.rng)), evArrive, id, 0)
}

// goOffline takes a node out of the network. A supernode's leaves look for
// another supernode after delay.
func (m *model) goOffline(id uint32, delay des.Time) {
	n := &m.nodes[id]
	now := m.sim.Now()
	hasLeafSide := n.role == roleLeaf || m.sc.Network.SupernodeLeafSide
	if n.role == roleSupernode {
		m.dropSupernode(id, delay)
	} else {
		m.st.leaves--
	}
	if hasLeafSide {
		if n.nAtt == 0 {
			m.setOrphan(false) // it leaves the orphans by leaving the network
		}
		m.detachAll(id)
	}
	n.upTotal += now - n.sessionStart
	n.online = false
	m.st.online--
}

// integrateOrphans adds the orphaned leaf-time since the last change.
func (m *model) integrateOrphans() {
	now := m.sim.Now()
	m.st.OrphanLeafTime += float64(m.st.orphans) * (now - m.st.orphanMark).Duration().Seconds()
	m.st.orphanMark = now
}

func minutes(v float64) des.Time { return des.Time(v * float64(des.Minute)) }

func (m *model) nextQuery() des.Time {
	return des.Time(m.rng.ExpFloat64() / m.sc.Queries.PerHour * float64(des.Hour))
}

// setOrphan tracks leaves with no supernode, integrating orphaned
// leaf-time between changes.
func (m *model) setOrphan(orphan bool) {
	m.integrateOrphans()
	if orphan {
		m.st.orphans++
	} else {
		m.st.orphans--
		m.observe()
	}
}

// attach fills a leaf's attachments up to K with the supernode choice core,
// from a sample of the ring standing in for the leaf's host cache.
func (m *model) attach(id uint32) {
	n := &m.nodes[id]
	k := m.sc.Network.Choice.K
	if (n.role != roleLeaf && !m.sc.Network.SupernodeLeafSide) || int(n.nAtt) >= k {
		return
	}
	var cands [64]choice.Candidate
	var snIDs [64]uint32
	nc := 0
	if len(m.sns) > 0 {
		want := min(m.sc.Network.Candidates, len(m.sns), len(cands))
		for tries := 0; nc < want && tries < 4*want; tries++ {
			sn := m.sns[m.rng.IntN(len(m.sns))]
			if contains(snIDs[:nc], sn) {
				continue
			}
			d := &m.snData[m.nodes[sn].snPos]
			snIDs[nc] = sn
			cands[nc] = choice.Candidate{
				Load:      float64(len(d.leaves)) / float64(m.sc.Network.LeafSlots),
				FreeSlots: m.sc.Network.LeafSlots - len(d.leaves),
				// No geography is modelled, so every supernode is as far
				// away as any other: RTT unknown, and choice ranks by load.
				RTT:      0,
				Attached: m.isAttached(id, sn),
				Tiebreak: m.rng.Uint64(),
			}
			nc++
		}
	}
	var pick [64]int
	chosen := choice.Choose(m.sc.Network.Choice, cands[:nc], pick[:0])
	wasOrphan := n.nAtt == 0
	for _, c := range chosen {
		if int(n.nAtt) >= k {
			break
		}
		m.link(id, snIDs[c])
	}
	if wasOrphan && n.nAtt > 0 {
		m.setOrphan(false)
	}
	if n.nAtt > 0 {
		n.retries = 0
	}
	if int(n.nAtt) < k && !n.attaching {
		// An orphan retries soon; a leaf that has some supernodes fills
		// the rest at its next evaluation-period tick, as the real leaf's
		// maintenance loop would find no free slot any sooner.
		// An orphan backs off (doubling, up to the evaluation period)
		// while no supernode has room, as the real leaf does per candidate.
		retry := min(m.sc.Network.RetryAttach.Duration<<min(n.retries, 10), m.sc.Network.Evaluate.Duration)
		n.retries = min(n.retries+1, 255)
		if n.nAtt > 0 {
			retry = m.sc.Network.Evaluate.Duration
		}
		n.attaching = true
		m.sim.After(des.FromDuration(retry), evAttach, id, n.gen)
	}
}

func contains(s []uint32, v uint32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (m *model) isAttached(id, sn uint32) bool {
	for _, a := range m.atts[id][:m.nodes[id].nAtt] {
		if a == sn {
			return true
		}
	}
	return false
}

// link attaches leaf id to supernode sn.
func (m *model) link(id, sn uint32) {
	n := &m.nodes[id]
	d := &m.snData[m.nodes[sn].snPos]
	if len(d.leaves) >= m.sc.Network.LeafSlots || m.isAttached(id, sn) {
		return
	}
	j := n.nAtt
	m.atts[id][j], n.slot[j] = sn, uint32(len(d.leaves))
	n.nAtt++
	d.leaves = append(d.leaves, id)
	m.st.attached++
	m.observe()
}

// unlink removes attachment j of leaf id, keeping both sides consistent.
func (m *model) unlink(id uint32, j uint8) {
	n := &m.nodes[id]
	att := &m.atts[id]
	sn, pos := att[j], n.slot[j]
	d := &m.snData[m.nodes[sn].snPos]
	last := uint32(len(d.leaves) - 1)
	if pos != last {
		moved := d.leaves[last]
		d.leaves[pos] = moved
		mn := &m.nodes[moved]
		for i, a := range m.atts[moved][:mn.nAtt] {
			if a == sn {
				mn.slot[i] = pos
			}
		}
	}
	d.leaves = d.leaves[:last]
	if len(d.leaves) == 0 {
		d.lastLeaf = m.sim.Now()
	}
	n.nAtt--
	att[j], n.slot[j] = att[n.nAtt], n.slot[n.nAtt]
	att[n.nAtt], n.slot[n.nAtt] = none, none
	m.st.attached--
}

func (m *model) detachAll(id uint32) {
	n := &m.nodes[id]
	for n.nAtt > 0 {
		m.unlink(id, n.nAtt-1)
	}
}

// nodeID turns a simulated node number into the node ID the decision cores
// expect.
func nodeID(n uint32) identity.NodeID {
	var id identity.NodeID
	binary.BigEndian.PutUint32(id[:4], n+1)
	return id
}

func fromNodeID(id identity.NodeID) uint32 { return binary.BigEndian.Uint32(id[:4]) - 1 }
