package sim

import (
	"fmt"

	"github.com/canopy-p2p/canopy/promotion"
	"github.com/canopy-p2p/canopy/sim/des"
)

// Kinds of scripted event.
const (
	// EventCrashSupernodes crashes a share of the supernodes at once.
	EventCrashSupernodes = "crash-supernodes"
)

// Event is a scripted happening at a fixed simulated time, for runs that
// replay a test bed's script (scenarios/emulation30.toml replays the node
// emulation) or probe a failure at scale. A scenario lists none by default.
type Event struct {
	// At is when it happens, from the start of the run.
	At Duration `toml:"at"`
	// Kind is what happens. "crash-supernodes": Share of the supernodes
	// online at At (rounded down, at least one; 1 is all of them), chosen
	// with the run's seeded source, crash at once, without a goodbye: their
	// leaves notice after Network.DetectDead. A crashed node stays offline
	// for the rest of the run, as a killed test-bed node does.
	Kind string `toml:"kind"`
	// Share is the share of supernodes the event concerns, in (0, 1].
	Share float64 `toml:"share"`
}

func (e Event) validate(hours float64) error {
	if e.Kind != EventCrashSupernodes {
		return fmt.Errorf("kind %q: want %q", e.Kind, EventCrashSupernodes)
	}
	if !(e.Share > 0 && e.Share <= 1) {
		return fmt.Errorf("share %v: want (0, 1]", e.Share)
	}
	if e.At.Duration < 0 || e.At.Hours() > hours {
		return fmt.Errorf("at %v: outside the run", e.At.Duration)
	}
	return nil
}

// EventResult is what followed a scripted event. Times are seconds after the
// event; -1 means the condition was not reached before the next event (or
// the end of the run).
type EventResult struct {
	AtSeconds float64 `json:"at_s"`
	Kind      string  `json:"kind"`
	// SupernodesBefore is the supernode count just before the event, and
	// Crashed how many of them the event crashed.
	SupernodesBefore int `json:"supernodes_before"`
	Crashed          int `json:"crashed"`
	// RingEmptied says the event left no supernode; FirstSupernodeS is then
	// when the emergency election gave the ring its first new one.
	RingEmptied     bool    `json:"ring_emptied"`
	FirstSupernodeS float64 `json:"first_supernode_s"`
	// AllAttachedS is when every online node with a leaf side held at least
	// one link again, and FullLinksS when every one held K (0: no node was
	// short at all).
	AllAttachedS float64 `json:"all_attached_s"`
	FullLinksS   float64 `json:"full_links_s"`
	// Orphaned is the most online nodes that held no link at once after the
	// event.
	Orphaned int `json:"orphaned_max"`
	// SupernodesAfter is the supernode count at the next event or the end.
	SupernodesAfter int `json:"supernodes_after"`
	// SearchSuccessBefore is the search success over the second half of the
	// time since the previous event (or the start), the network as the event
	// found it; SearchSuccessAfter is over the time from the event to the
	// next one (or the end), with the number of searches.
	SearchSuccessBefore float64 `json:"search_success_before"`
	SearchSuccessAfter  float64 `json:"search_success_after"`
	SearchesAfter       uint64  `json:"searches_after"`
}

// eventTracker measures the aftermath of the latest scripted event, and
// holds the state of an emergency election.
type eventTracker struct {
	results []EventResult
	// cur is the index in results of the event being measured; -1 when none.
	cur int
	at  des.Time
	// The search counters at the event, and half-way to the next one.
	queries, successes       uint64
	midQueries, midSuccesses uint64
	// emptied says the ring has lost its last supernode at least once;
	// emptiedAt is when its leaves noticed the last time it did.
	emptied   bool
	emptiedAt des.Time
	// successors are the ranked emergency successors (see ringEmptied).
	successors []uint32
}

// scheduleScript puts the scenario's scripted events and the leaves' view
// refreshes on the engine's calendar.
func (m *model) scheduleScript() {
	m.trk.cur = -1
	for i, e := range m.sc.Events {
		at := des.FromDuration(e.At.Duration)
		m.sim.At(at, evScript, uint32(i), 0)
		// Half-way to the event, note the counters, so that the success
		// "before" covers a network that had time to settle.
		prev := des.Time(0)
		if i > 0 {
			prev = des.FromDuration(m.sc.Events[i-1].At.Duration)
		}
		m.sim.At(prev+(at-prev)/2, evScriptMid, uint32(i), 0)
	}
	if m.sc.Network.ViewRefresh.Duration > 0 {
		m.sim.At(0, evView, 0, 0)
	}
}

// scriptMid notes the search counters half-way to event i.
func (m *model) scriptMid() {
	m.trk.midQueries, m.trk.midSuccesses = m.st.Queries, m.st.Successes
}

// scripted carries out scripted event i.
func (m *model) scripted(i int) {
	e := m.sc.Events[i]
	m.finishEvent()
	now := m.sim.Now()
	r := EventResult{
		AtSeconds:           now.Duration().Seconds(),
		Kind:                e.Kind,
		SupernodesBefore:    len(m.sns),
		FirstSupernodeS:     -1,
		AllAttachedS:        -1,
		FullLinksS:          -1,
		SearchSuccessBefore: ratio(m.st.Successes-m.trk.midSuccesses, m.st.Queries-m.trk.midQueries),
	}
	switch e.Kind {
	case EventCrashSupernodes:
		victims := append([]uint32(nil), m.sns...)
		n := 0
		if len(victims) > 0 {
			// The small epsilon keeps 1/3 of 12 at 4, as the emulation's
			// integer division has it.
			n = min(max(int(e.Share*float64(len(victims))+1e-6), 1), len(victims))
		}
		for j := range n {
			k := j + m.rng.IntN(len(victims)-j)
			victims[j], victims[k] = victims[k], victims[j]
		}
		for _, id := range victims[:n] {
			m.goOffline(id, des.FromDuration(m.sc.Network.DetectDead.Duration))
		}
		r.Crashed = n
		r.RingEmptied = len(m.sns) == 0
	}
	m.trk.results = append(m.trk.results, r)
	m.trk.cur = len(m.trk.results) - 1
	m.trk.at = now
	m.trk.queries, m.trk.successes = m.st.Queries, m.st.Successes
	m.observe()
}

// finishEvent closes the measurement of the current event, if any.
func (m *model) finishEvent() {
	if m.trk.cur < 0 {
		return
	}
	r := &m.trk.results[m.trk.cur]
	r.SupernodesAfter = len(m.sns)
	r.SearchesAfter = m.st.Queries - m.trk.queries
	r.SearchSuccessAfter = ratio(m.st.Successes-m.trk.successes, r.SearchesAfter)
	m.trk.cur = -1
}

// observe records the conditions the current event waits for. It is called
// after every change that can end one: a link made, an orphan adopted, a
// supernode promoted.
func (m *model) observe() {
	if m.trk.cur < 0 {
		return
	}
	r := &m.trk.results[m.trk.cur]
	since := (m.sim.Now() - m.trk.at).Duration().Seconds()
	r.Orphaned = max(r.Orphaned, m.st.orphans)
	if r.RingEmptied && r.FirstSupernodeS < 0 && len(m.sns) > 0 {
		r.FirstSupernodeS = since
	}
	if len(m.sns) == 0 {
		return
	}
	if r.AllAttachedS < 0 && m.st.orphans == 0 {
		r.AllAttachedS = since
	}
	if r.FullLinksS < 0 && m.st.attached == m.sc.Network.Choice.K*m.leafSides() {
		r.FullLinksS = since
	}
}

// leafSides is the number of online nodes that hold leaf links.
func (m *model) leafSides() int {
	if m.sc.Network.SupernodeLeafSide {
		return m.st.leaves + len(m.sns)
	}
	return m.st.leaves
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// refreshLeafView takes the snapshot of the ring leaves evaluate against
// (Network.ViewRefresh) and schedules the next.
func (m *model) refreshLeafView() {
	m.leafView = m.liveRingView()
	m.sim.After(des.FromDuration(m.sc.Network.ViewRefresh.Duration), evView, 0, 0)
}

// ringEmptied notes that the last supernode has gone: its leaves notice after
// delay, and the successors the supernodes named are ranked for the
// emergency election.
func (m *model) ringEmptied(delay des.Time) {
	m.trk.emptied = true
	m.trk.emptiedAt = m.sim.Now() + delay
	m.trk.successors = m.trk.successors[:0]
	want := m.sc.Network.EmergencySuccessors
	if want == 0 {
		return
	}
	// The supernodes named their longest-attached reachable leaves that may
	// promote; in a model without per-supernode lists, those are the
	// longest-online such leaves of the whole network. Ties go to the lower
	// node number, and the leaves rank them by node ID.
	for i := range m.nodes {
		n := &m.nodes[i]
		if !n.online || n.role != roleLeaf || !n.reachable || n.never {
			continue
		}
		m.trk.successors = append(m.trk.successors, uint32(i))
	}
	s := m.trk.successors
	// Selection of the want earliest session starts (small want: a partial
	// selection sort keeps it allocation-free and stable).
	for j := 0; j < len(s) && j < want; j++ {
		best := j
		for k := j + 1; k < len(s); k++ {
			if m.nodes[s[k]].sessionStart < m.nodes[s[best]].sessionStart {
				best = k
			}
		}
		s[j], s[best] = s[best], s[j]
	}
	s = s[:min(len(s), want)]
	for j := 1; j < len(s); j++ { // insertion sort by node number = by ID
		for k := j; k > 0 && s[k] < s[k-1]; k-- {
			s[k], s[k-1] = s[k-1], s[k]
		}
	}
	m.trk.successors = s
}

// emergencyRank is leaf id's place among the successors, or their number
// when it is not one.
func (m *model) emergencyRank(id uint32) int {
	for i, s := range m.trk.successors {
		if s == id {
			return i
		}
	}
	return len(m.trk.successors)
}

// leafRingView is the view a leaf evaluates against when the scenario models
// the guidance's refresh (Network.ViewRefresh): see that field.
func (m *model) leafRingView(id uint32, in *promotion.Input) promotion.RingView {
	now := m.sim.Now()
	if len(m.sns) == 0 {
		if m.trk.emptied && now < m.trk.emptiedAt {
			return promotion.RingView{} // the leaves have not noticed yet
		}
		return promotion.RingView{Known: true}
	}
	if m.nodes[id].nAtt == 0 || m.leafView.Supernodes == 0 {
		return promotion.RingView{}
	}
	return m.leafView
}

// emergencyInput fills the emergency election's inputs for a leaf that sees
// an empty ring.
func (m *model) emergencyInput(id uint32, in *promotion.Input) {
	if m.sc.Network.EmergencySuccessors == 0 {
		return
	}
	in.EmergencyRank = m.emergencyRank(id)
	if m.trk.emptied {
		in.EmergencyFor = max(m.sim.Now()-m.trk.emptiedAt, 0).Duration()
	} else {
		// A network that never had a supernode: the emergency has lasted
		// as long as the node has been up.
		in.EmergencyFor = in.Uptime
	}
}
