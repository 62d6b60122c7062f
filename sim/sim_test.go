package sim

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/canopy-p2p/canopy/nat"
	"github.com/canopy-p2p/canopy/promotion"
)

func small() Scenario {
	sc := DefaultScenario()
	sc.Nodes, sc.Hours = 2000, 6
	return sc
}

// TestDeterministic runs the same scenario twice and requires byte-identical
// outputs, and a different seed to give different ones.
func TestDeterministic(t *testing.T) {
	ctx := context.Background()
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	for i, dir := range dirs {
		sc := small()
		if i == 2 {
			sc.Seed = 99
		}
		res, err := Run(ctx, sc, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := res.Write(dir); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := os.ReadDir(dirs[0])
	if len(files) < 5 {
		t.Fatalf("only %d output files", len(files))
	}
	for _, f := range files {
		a, _ := os.ReadFile(filepath.Join(dirs[0], f.Name()))
		b, err := os.ReadFile(filepath.Join(dirs[1], f.Name()))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs between two runs of the same scenario", f.Name())
		}
	}
	a, _ := os.ReadFile(filepath.Join(dirs[0], "series.csv"))
	c, _ := os.ReadFile(filepath.Join(dirs[2], "series.csv"))
	if bytes.Equal(a, c) {
		t.Error("another seed gave the same series")
	}
}

// TestModelInvariants checks the model's bookkeeping after a run with churn:
// both sides of every attachment agree, counters match a recount, and only
// supernodes hold leaves.
func TestModelInvariants(t *testing.T) {
	sc := small()
	sc.Churn.Session.Lambda = 60 // heavy churn
	m, err := newModel(sc, sc.Policy)
	if err != nil {
		t.Fatal(err)
	}
	m.series = &seriesRecorder{s: nil, every: 1 << 62}
	m.sim.Run(6*3600*1e6, m.handle)
	checkBookkeeping(t, m)
	if m.st.Promotions == 0 || m.st.Queries == 0 {
		t.Fatalf("nothing happened: %+v", m.st)
	}
}

// TestModelInvariantsBoundedView runs the heavy-churn model with a view far
// smaller than the ring, so that the node's view rule bounds, rotates and
// repairs every supernode's links.
func TestModelInvariantsBoundedView(t *testing.T) {
	sc := small()
	sc.Churn.Session.Lambda = 60
	sc.Network.PeerView, sc.Network.PeerInbound = 3, 5
	m, err := newModel(sc, sc.Policy)
	if err != nil {
		t.Fatal(err)
	}
	m.series = &seriesRecorder{s: nil, every: 1 << 62}
	m.sim.Run(6*3600*1e6, m.handle)
	checkBookkeeping(t, m)
	// The model fills views left short by other supernodes' rotations at
	// the next role change (the node within a second); make it now.
	m.fillShortViews()
	checkBookkeeping(t, m)
	rotated := 0
	for i, d := range m.snData {
		if d.viewEpoch > 0 {
			rotated++
		}
		if len(d.peers) == 3 {
			continue
		}
		// A short view is legal only if no member is left to dial: every
		// one it is not linked to has its inbound links full.
		for _, o := range m.sns {
			od := &m.snData[m.nodes[o].snPos]
			if o != m.sns[i] && !contains(d.peers, o) && !contains(d.in, o) && len(od.in) < 5 {
				t.Fatalf("a supernode of a ring of %d dialled %d members, want 3; %d was free", len(m.sns), len(d.peers), o)
			}
		}
	}
	if len(m.sns) <= 4 || rotated == 0 || m.st.Successes == 0 {
		t.Fatalf("ring of %d, %d views rotated, %d searches found", len(m.sns), rotated, m.st.Successes)
	}
}

// TestSweepWritesLoadablePolicy runs a tiny sweep and checks that the winner
// is a policy file the node's loader accepts.
func TestSweepWritesLoadablePolicy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sweep.toml")
	os.WriteFile(path, []byte(`
version = 1
name = "tiny"
nodes = 800
hours = 3
[sweep]
seeds = [1, 2]
[sweep.grid]
min_uptime = ["30m", "2h"]
`), 0o644)
	sc, sw, err := LoadSweep(path)
	if err != nil {
		t.Fatal(err)
	}
	ranked, err := RunSweep(context.Background(), sc, sw, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ranked) != 2 || ranked[0].Score < ranked[1].Score {
		t.Fatalf("ranking: %+v", ranked)
	}
	var table strings.Builder
	WriteTable(&table, ranked)
	if !strings.Contains(table.String(), "min_uptime=") {
		t.Fatalf("table:\n%s", table.String())
	}
	out := filepath.Join(t.TempDir(), "policy.toml")
	if err := promotion.Save(out, promotion.File{Version: promotion.FileVersion, Source: "test", Params: ranked[0].Params}); err != nil {
		t.Fatal(err)
	}
	p, _, err := promotion.Load(out)
	if err != nil || p != ranked[0].Params {
		t.Fatalf("reloaded policy differs: %v", err)
	}
	// A scenario can point at it.
	sc.PolicyFile = out
	if _, err := Run(context.Background(), sc, Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestScenarioFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("version = 1\nnodes = 123\n[network]\nleaf_slots = 50\n"), 0o644)
	sc, err := LoadScenario(good)
	if err != nil || sc.Nodes != 123 || sc.Network.LeafSlots != 50 || sc.Hours != DefaultScenario().Hours {
		t.Fatalf("load: %v %+v", err, sc)
	}
	for name, body := range map[string]string{
		"typo":    "version = 1\nnodez = 5\n",
		"version": "version = 7\n",
		"syntax":  "version = \n",
	} {
		p := filepath.Join(dir, name+".toml")
		os.WriteFile(p, []byte(body), 0o644)
		if _, err := LoadScenario(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	bad := DefaultScenario()
	bad.Nodes = 0
	bad.NAT = append(bad.NAT, NATKind{Kind: "moon"})
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "moon") {
		t.Fatalf("validate: %v", err)
	}
}

func TestDirectConnectivity(t *testing.T) {
	table := newDirectTable()
	cases := []struct {
		a, b nat.Kind
		want bool
	}{
		{nat.Public, nat.Public, true},
		{nat.PortRestrictedCone, nat.PortRestrictedCone, true},
		{nat.Symmetric, nat.FullCone, true},
		{nat.Symmetric, nat.PortRestrictedCone, false},
		{nat.Symmetric, nat.Symmetric, false},
		{nat.UDPBlocked, nat.Public, false},
		{nat.CGNAT, nat.RestrictedCone, true},
	}
	for _, c := range cases {
		if table.direct(c.a, c.b) != c.want || table.direct(c.b, c.a) != c.want {
			t.Errorf("direct(%s, %s) != %v", c.a, c.b, c.want)
		}
	}
	// The table is nat.DirectPossible, for every pair of kinds.
	for _, a := range nat.Kinds() {
		for _, b := range nat.Kinds() {
			if want, why := nat.DirectPossible(a.Behaviour(), b.Behaviour()); table.direct(a, b) != want {
				t.Errorf("direct(%s, %s) = %v, nat.DirectPossible says %v (%s)", a, b, !want, want, why)
			}
		}
	}
}

// TestShippedScenarios loads every scenario and sweep file in scenarios/.
func TestShippedScenarios(t *testing.T) {
	files, _ := filepath.Glob("scenarios/*.toml")
	if len(files) == 0 {
		t.Fatal("no scenarios shipped")
	}
	for _, f := range files {
		sc, sw, err := LoadSweep(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := sc.Validate(); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, c := range sw.combinations() {
			if _, err := c.apply(sc.Policy); err != nil {
				t.Fatalf("%s: %s: %v", f, c, err)
			}
		}
	}
}

func TestReachSet(t *testing.T) {
	var r reachSet
	for round := 0; round < 3; round++ {
		r.reset()
		for i := uint32(0); i < 1000; i++ {
			if !r.add(i*7919, uint8(i%3+1)) {
				t.Fatalf("round %d: %d reported as present", round, i)
			}
		}
		if r.add(7919, 9) {
			t.Fatal("a duplicate was added")
		}
		for i := uint32(0); i < 1000; i++ {
			if d := r.depth(i * 7919); d != uint8(i%3+1) {
				t.Fatalf("depth of %d = %d", i, d)
			}
		}
		if r.depth(1) != 0 {
			t.Fatal("an absent node has a depth")
		}
	}
}

// checkBookkeeping checks that both sides of every attachment agree, that
// the counters match a recount, and that only supernodes hold leaves (leaves,
// and supernodes' leaf sides with Network.SupernodeLeafSide).
func checkBookkeeping(t *testing.T, m *model) {
	t.Helper()
	sc := m.sc
	online, leaves, attached, orphans := 0, 0, 0, 0
	for id := range m.nodes {
		n := &m.nodes[id]
		for j := int(n.nAtt); j < maxK; j++ {
			if m.atts[id][j] != none {
				t.Fatalf("node %d: attachment %d beyond nAtt is set", id, j)
			}
		}
		if !n.online {
			if n.nAtt != 0 {
				t.Fatalf("offline node %d still attached", id)
			}
			continue
		}
		online++
		if n.role == roleSupernode {
			if m.sns[n.snPos] != uint32(id) {
				t.Fatalf("supernode %d not at its position", id)
			}
			if !sc.Network.SupernodeLeafSide {
				if n.nAtt != 0 {
					t.Fatalf("supernode %d holds leaf links without a leaf side", id)
				}
				continue
			}
		} else {
			leaves++
		}
		attached += int(n.nAtt)
		if n.nAtt == 0 {
			orphans++
		}
		for j, sn := range m.atts[id][:n.nAtt] {
			if m.nodes[sn].role != roleSupernode {
				t.Fatalf("node %d attached to non-supernode %d", id, sn)
			}
			if d := m.snData[m.nodes[sn].snPos]; d.leaves[n.slot[j]] != uint32(id) {
				t.Fatalf("node %d: slot %d of supernode %d holds %d", id, n.slot[j], sn, d.leaves[n.slot[j]])
			}
		}
	}
	total := 0
	for _, d := range m.snData {
		total += len(d.leaves)
		if len(d.leaves) > sc.Network.LeafSlots {
			t.Fatal("a supernode holds more leaves than it has slots")
		}
	}
	// Ring links: within the view's bounds, to supernodes only, one per
	// pair, and recorded on both sides.
	vp := m.viewParams().WithDefaults()
	for i, d := range m.snData {
		id := m.sns[i]
		if len(d.peers) > vp.PeerView || len(d.in) > vp.MaxInbound {
			t.Fatalf("supernode %d dialled %d and holds %d inbound links; bounds %d and %d", id, len(d.peers), len(d.in), vp.PeerView, vp.MaxInbound)
		}
		seen := map[uint32]bool{}
		for _, p := range append(append([]uint32(nil), d.peers...), d.in...) {
			if seen[p] || p == id || m.nodes[p].role != roleSupernode {
				t.Fatalf("supernode %d: link to %d is a duplicate, itself or not a supernode", id, p)
			}
			seen[p] = true
		}
		for _, p := range d.peers {
			if !contains(m.snData[m.nodes[p].snPos].in, id) {
				t.Fatalf("supernode %d dialled %d, which does not know it", id, p)
			}
		}
		if others := len(m.sns) - 1; others <= vp.PeerView && len(d.peers)+len(d.in) != others {
			t.Fatalf("ring of %d: supernode %d holds %d links, want the whole ring", len(m.sns), id, len(d.peers)+len(d.in))
		}
	}
	if online != m.st.online || leaves != m.st.leaves || attached != m.st.attached || attached != total || orphans != m.st.orphans {
		t.Fatalf("counters: online %d/%d leaves %d/%d attached %d/%d/%d orphans %d/%d",
			online, m.st.online, leaves, m.st.leaves, attached, m.st.attached, total, orphans, m.st.orphans)
	}
}
