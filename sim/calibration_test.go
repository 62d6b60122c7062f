package sim

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/canopy-p2p/canopy/promotion"
	"github.com/canopy-p2p/canopy/sim/des"
)

// TestCalibrationScenario runs the calibration scenario (the node emulation
// replayed, CALIBRATION.md) for a few seeds and checks the behaviour the
// emulation requires of the real nodes, not its timings: the ring settles in
// the policy's band and no slow node promotes outside an emergency; a crash
// of a third of the supernodes leaves every node attached and the ring not
// short of supernodes; the loss of all of them ends in an emergency election
// after which every node is attached again and searches find every live
// node's file.
func TestCalibrationScenario(t *testing.T) {
	sc, err := LoadScenario("scenarios/emulation30.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(sc.Events) != 2 || sc.Events[1].Share != 1 {
		t.Fatalf("the scenario should crash a share of the supernodes, then all: %+v", sc.Events)
	}
	k := sc.Network.Choice.K
	for seed := uint64(1); seed <= 4; seed++ {
		sc.Seed = seed
		m, err := newModel(sc, sc.Policy)
		if err != nil {
			t.Fatal(err)
		}
		m.series = &seriesRecorder{s: nil, every: 1 << 62}
		m.scheduleScript()
		runTo := func(at des.Time) {
			m.sim.Run(at, m.handle)
			checkBookkeeping(t, m)
		}
		// ringOK checks the ring's totals against the policy: no supernode
		// needed and, unless allowSurplus, none surplus.
		ringOK := func(phase string, allowSurplus bool) {
			t.Helper()
			v := m.liveRingView()
			if need, why := promotion.Needed(m.policy, v); need {
				t.Errorf("seed %d, %s: %d supernodes for %d leaf links: another is needed (%s)", seed, phase, v.Supernodes, v.Leaves, why)
			}
			if surplus, _ := promotion.Surplus(m.policy, v); surplus && !allowSurplus {
				t.Errorf("seed %d, %s: %d supernodes for %d leaf links: a surplus", seed, phase, v.Supernodes, v.Leaves)
			}
		}
		first := des.FromDuration(sc.Events[0].At.Duration)
		second := des.FromDuration(sc.Events[1].At.Duration)

		// 1. Settled in the band, every node with k links, slow lines leaves.
		runTo(first - 1)
		ringOK("settled", false)
		if m.st.attached != k*m.leafSides() || m.st.online != sc.Nodes {
			t.Errorf("seed %d: before the crash %d of %d nodes online, %d links of %d", seed, m.st.online, sc.Nodes, m.st.attached, k*m.leafSides())
		}
		for id := range m.nodes {
			if n := &m.nodes[id]; sc.Capacity[n.class].Up < m.policy.MinUpBandwidth && n.switches > 0 {
				t.Errorf("seed %d: node %d promoted with a slow line", seed, id)
			}
		}

		// 2. A third crash: everyone attached again, no shortage.
		runTo(second - 1)
		r := m.trk.results[0]
		if r.Crashed != max(r.SupernodesBefore/3, 1) || r.RingEmptied {
			t.Errorf("seed %d: crashed %d of %d", seed, r.Crashed, r.SupernodesBefore)
		}
		if r.AllAttachedS < 0 || r.FullLinksS < 0 || m.st.orphans != 0 {
			t.Errorf("seed %d: not every node re-attached after the crash: %+v", seed, r)
		}
		ringOK("after the crash", true)

		// 3. All crash: an emergency election, then everyone attached and
		// searches working.
		runTo(des.Time(sc.Hours * float64(des.Hour)))
		m.finishEvent()
		r = m.trk.results[1]
		if !r.RingEmptied || r.FirstSupernodeS < 0 || r.AllAttachedS < r.FirstSupernodeS || r.FullLinksS < 0 {
			t.Errorf("seed %d: emergency election: %+v", seed, r)
		}
		if len(m.sns) == 0 || m.st.orphans != 0 || m.st.attached != k*m.leafSides() {
			t.Errorf("seed %d: at the end %d supernodes, %d orphans, %d of %d links", seed, len(m.sns), m.st.orphans, m.st.attached, k*m.leafSides())
		}
		if r.SearchSuccessAfter <= 0 || r.SearchSuccessAfter > 1 {
			t.Errorf("seed %d: search success after the election %v", seed, r.SearchSuccessAfter)
		}
		// Searches made once everyone is attached again find every live
		// node's file: the last second's all succeed.
		q, s := m.st.Queries, m.st.Successes
		m.sim.Run(des.Time(sc.Hours*float64(des.Hour))+des.Second, m.handle)
		if dq := m.st.Queries - q; dq == 0 || m.st.Successes-s != dq {
			t.Errorf("seed %d: %d of %d searches found their file once every node was attached", seed, m.st.Successes-s, dq)
		}
	}
}

// TestCalibrationDeterministic runs the calibration scenario twice through
// Run and requires the same summary, scripted events included.
func TestCalibrationDeterministic(t *testing.T) {
	sc, err := LoadScenario("scenarios/emulation30.toml")
	if err != nil {
		t.Fatal(err)
	}
	var got [2]*Result
	for i := range got {
		if got[i], err = Run(context.Background(), sc, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	a, b := got[0].Summary, got[1].Summary
	if len(a.Script) != len(sc.Events) || len(a.Script) != len(b.Script) {
		t.Fatalf("script results: %d and %d for %d events", len(a.Script), len(b.Script), len(sc.Events))
	}
	for i := range a.Script {
		if a.Script[i] != b.Script[i] {
			t.Errorf("event %d: %+v != %+v", i, a.Script[i], b.Script[i])
		}
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("summaries differ:\n%+v\n%+v", a, b)
	}
}

func TestEventValidation(t *testing.T) {
	sc := DefaultScenario()
	sc.Events = []Event{{Kind: "flood"}, {Kind: EventCrashSupernodes, Share: 1.5}, {Kind: EventCrashSupernodes, Share: 0.5, At: Duration{1 << 62}}}
	err := sc.Validate()
	if err == nil {
		t.Fatal("bad events accepted")
	}
	for _, want := range []string{"events[0]", "events[1]", "events[2]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no error for %s: %v", want, err)
		}
	}
}
