package promotion

import (
	"math"
	"strings"
	"testing"
	"time"
)

// balancedRing needs no supernode and has no surplus under DefaultParams:
// 70 leaf links per supernode is 70% of the target.
var balancedRing = RingView{Known: true, Supernodes: 10, Leaves: 700, FreeSlots: 1300, Load: 0.35}

// needyRing needs another supernode: 95 links per supernode.
var needyRing = RingView{Known: true, Supernodes: 10, Leaves: 950, FreeSlots: 1050, Load: 0.475}

// surplusRing has a surplus: 20 links per supernode.
var surplusRing = RingView{Known: true, Supernodes: 10, Leaves: 200, FreeSlots: 1800, Load: 0.1}

// qualifiedLeaf passes every check of the normal rules under DefaultParams.
func qualifiedLeaf() Input {
	return Input{
		Role:          RoleLeaf,
		Consent:       ConsentAuto,
		Reachable:     true,
		ReachKnown:    true,
		Uptime:        2 * time.Hour,
		AvgUptime:     4 * time.Hour,
		UpBandwidth:   1 << 20,
		DownBandwidth: 4 << 20,
		CPUHeadroom:   0.8,
		MemHeadroom:   0.5,
		FreeFDs:       4000,
		SinceSwitch:   math.MaxInt64,
		Draw:          0.1,
		Ring:          needyRing,
	}
}

// healthySupernode keeps its role under DefaultParams.
func healthySupernode() Input {
	in := qualifiedLeaf()
	in.Role = RoleSupernode
	in.SinceSwitch = 5 * time.Hour
	in.Leaves = 80
	in.Ring = balancedRing
	return in
}

func TestDecideLeaf(t *testing.T) {
	p := DefaultParams()
	cases := []struct {
		name   string
		mutate func(*Input)
		action Action
		reason CheckID
	}{
		{"qualified and needed", func(*Input) {}, Promote, CheckNeeded},
		{"consent never", func(in *Input) { in.Consent = ConsentNever }, Stay, CheckConsent},
		{"unknown consent value counts as never", func(in *Input) { in.Consent = 7 }, Stay, CheckConsent},
		{"not reachable", func(in *Input) { in.Reachable = false }, Stay, CheckReachable},
		{"no reachability verdict", func(in *Input) { in.ReachKnown = false }, Stay, CheckReachable},
		{"short session", func(in *Input) { in.Uptime = 59 * time.Minute }, Stay, CheckUptime},
		{"short average sessions", func(in *Input) { in.AvgUptime = 2 * time.Hour }, Stay, CheckAvgUptime},
		{"no history, long session", func(in *Input) { in.AvgUptime = 0; in.Uptime = 3 * time.Hour }, Promote, CheckNeeded},
		{"no history, short session", func(in *Input) { in.AvgUptime = 0; in.Uptime = 2 * time.Hour }, Stay, CheckAvgUptime},
		{"low upstream", func(in *Input) { in.UpBandwidth = 100 << 10 }, Stay, CheckBandwidth},
		{"low downstream", func(in *Input) { in.DownBandwidth = 200 << 10 }, Stay, CheckBandwidth},
		{"busy CPU", func(in *Input) { in.CPUHeadroom = 0.4 }, Stay, CheckCPU},
		{"little memory", func(in *Input) { in.MemHeadroom = 0.1 }, Stay, CheckMemory},
		{"few descriptors", func(in *Input) { in.FreeFDs = 200 }, Stay, CheckFDs},
		{"dwell", func(in *Input) { in.SinceSwitch = 29 * time.Minute }, Stay, CheckDwell},
		{"dwell passed", func(in *Input) { in.SinceSwitch = 30 * time.Minute }, Promote, CheckNeeded},
		{"back-off after 2 demotions", func(in *Input) { in.Demotions = 2; in.SinceSwitch = 59 * time.Minute }, Stay, CheckBackoff},
		{"back-off after 2 demotions passed", func(in *Input) { in.Demotions = 2; in.SinceSwitch = time.Hour }, Promote, CheckNeeded},
		{"ring balanced", func(in *Input) { in.Ring = balancedRing }, Stay, CheckNeeded},
		{"no ring view", func(in *Input) { in.Ring = RingView{} }, Stay, CheckNeeded},
		{"lost the draw", func(in *Input) { in.Draw = 0.5 }, Stay, CheckLottery},
		{"first failure decides", func(in *Input) { in.Uptime = 0; in.FreeFDs = 0 }, Stay, CheckUptime},

		{"always ignores uptime, capacity, need", func(in *Input) {
			in.Consent = ConsentAlways
			in.Uptime, in.AvgUptime, in.UpBandwidth, in.CPUHeadroom, in.FreeFDs = 0, 0, 0, 0, 0
			in.Ring, in.Demotions, in.SinceSwitch, in.Draw = RingView{}, 5, 3*time.Minute, 0.99
		}, Promote, CheckConsent},
		{"always needs reachability", func(in *Input) { in.Consent = ConsentAlways; in.Reachable = false }, Stay, CheckReachable},
		{"always keeps a short dwell", func(in *Input) { in.Consent = ConsentAlways; in.SinceSwitch = time.Minute }, Stay, CheckDwell},

		{"emergency skips normal uptime and need", func(in *Input) {
			in.Ring = RingView{Known: true}
			in.Uptime, in.AvgUptime, in.UpBandwidth, in.FreeFDs = time.Minute, 0, 0, 0
			in.Demotions, in.SinceSwitch, in.Draw = 6, 2*time.Minute, 0.99
		}, Promote, CheckEmergency},
		{"emergency waits the emergency uptime", func(in *Input) { in.Ring = RingView{Known: true}; in.Uptime = 59 * time.Second }, Stay, CheckUptime},
		{"emergency waits the emergency dwell", func(in *Input) { in.Ring = RingView{Known: true}; in.SinceSwitch = 119 * time.Second }, Stay, CheckDwell},
		{"emergency needs reachability", func(in *Input) { in.Ring = RingView{Known: true}; in.Reachable = false }, Stay, CheckReachable},
		{"emergency respects never", func(in *Input) { in.Ring = RingView{Known: true}; in.Consent = ConsentNever }, Stay, CheckConsent},
		{"unmeasured capacity does not promote", func(in *Input) { in.HeadroomUnknown = true }, Stay, CheckCPU},
		{"emergency: a later successor waits its turn", func(in *Input) {
			in.Ring = RingView{Known: true}
			in.EmergencyRank, in.EmergencyFor = 2, 9*time.Second
		}, Stay, CheckStagger},
		{"emergency: its turn has come", func(in *Input) {
			in.Ring = RingView{Known: true}
			in.EmergencyRank, in.EmergencyFor = 2, 10*time.Second
		}, Promote, CheckEmergency},
		{"emergency: the first successor goes at once", func(in *Input) {
			in.Ring = RingView{Known: true}
			in.EmergencyRank, in.EmergencyFor = 0, 0
		}, Promote, CheckEmergency},
		{"no view is not an emergency", func(in *Input) { in.Ring = RingView{}; in.Uptime = time.Minute }, Stay, CheckUptime},
		{"emergency: successors that reach the uptime together still take turns", func(in *Input) {
			// Up 62 s, orphaned for 50 s: its turn began only 2 s ago, when
			// it reached the emergency uptime, like the successors ahead.
			in.Ring = RingView{Known: true}
			in.Uptime, in.EmergencyRank, in.EmergencyFor = 62*time.Second, 1, 50*time.Second
		}, Stay, CheckStagger},
		{"emergency: the turn counted from the uptime has come", func(in *Input) {
			in.Ring = RingView{Known: true}
			in.Uptime, in.EmergencyRank, in.EmergencyFor = 65*time.Second, 1, 50*time.Second
		}, Promote, CheckEmergency},
		{"emergency: the turn counts from the dwell too", func(in *Input) {
			in.Ring = RingView{Known: true}
			in.SinceSwitch, in.EmergencyRank, in.EmergencyFor = 124*time.Second, 1, 50*time.Second
		}, Stay, CheckStagger},

		{"step-in skips uptime, capacity and need", func(in *Input) {
			in.AskedToStepIn = true
			in.Uptime, in.AvgUptime, in.UpBandwidth, in.FreeFDs, in.HeadroomUnknown = 5*time.Second, 0, 0, 0, true
			in.Ring, in.Demotions, in.Draw = RingView{Known: true, Supernodes: 1, Leaves: 4, FreeSlots: 196}, 3, 0.99
		}, Promote, CheckStepIn},
		{"step-in needs reachability", func(in *Input) { in.AskedToStepIn = true; in.ReachKnown = false }, Stay, CheckReachable},
		{"step-in respects never", func(in *Input) { in.AskedToStepIn = true; in.Consent = ConsentNever }, Stay, CheckConsent},
		{"step-in keeps the emergency dwell", func(in *Input) { in.AskedToStepIn = true; in.SinceSwitch = time.Minute }, Stay, CheckDwell},
		{"step-in wins over an emergency's stagger", func(in *Input) {
			in.AskedToStepIn, in.Ring, in.EmergencyRank = true, RingView{Known: true}, 7
		}, Promote, CheckStepIn},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := qualifiedLeaf()
			tc.mutate(&in)
			d := Decide(p, in)
			if d.Action != tc.action || d.Reason != tc.reason {
				t.Fatalf("got %v (%v), want %v (%v)\n%s", d.Action, d.Reason, tc.action, tc.reason, strings.Join(d.Explain(p, in), "\n"))
			}
			if d.N == 0 || d.N > MaxChecks {
				t.Fatalf("N = %d", d.N)
			}
			if len(d.Explain(p, in)) != d.N {
				t.Fatalf("Explain gave %d lines for %d checks", len(d.Explain(p, in)), d.N)
			}
		})
	}
}

func TestDecideLeafEachCheckAlone(t *testing.T) {
	// Every check of the normal path fails on its own with the matching
	// reason, and no other check fails with it.
	p := DefaultParams()
	breakers := map[CheckID]func(*Input){
		CheckConsent:   func(in *Input) { in.Consent = ConsentNever },
		CheckReachable: func(in *Input) { in.Reachable = false },
		CheckUptime:    func(in *Input) { in.Uptime = 30 * time.Minute },
		CheckAvgUptime: func(in *Input) { in.AvgUptime = time.Hour },
		CheckBandwidth: func(in *Input) { in.UpBandwidth = 1 },
		CheckCPU:       func(in *Input) { in.CPUHeadroom = 0 },
		CheckMemory:    func(in *Input) { in.MemHeadroom = 0 },
		CheckFDs:       func(in *Input) { in.FreeFDs = 0 },
		CheckDwell:     func(in *Input) { in.SinceSwitch = time.Minute; in.Demotions = 0 },
		CheckBackoff:   func(in *Input) { in.SinceSwitch = 31 * time.Minute; in.Demotions = 3 },
		CheckNeeded:    func(in *Input) { in.Ring = surplusRing },
		CheckLottery:   func(in *Input) { in.Draw = 0.9 },
	}
	for id, brk := range breakers {
		t.Run(id.String(), func(t *testing.T) {
			in := qualifiedLeaf()
			brk(&in)
			d := Decide(p, in)
			if d.Action != Stay || d.Reason != id {
				t.Fatalf("got %v (%v), want stay (%v)", d.Action, d.Reason, id)
			}
			for _, c := range d.Checks[:d.N] {
				if c.Pass == (c.ID == id) {
					t.Errorf("check %v pass=%v", c.ID, c.Pass)
				}
			}
		})
	}
}

func TestDecideSupernode(t *testing.T) {
	p := DefaultParams()
	cases := []struct {
		name   string
		mutate func(*Input)
		action Action
		reason CheckID
	}{
		{"healthy, balanced ring", func(*Input) {}, Stay, CheckSurplus},
		{"surplus but serving leaves", func(in *Input) { in.Ring = surplusRing }, Stay, CheckIdle},
		{"idle but ring has no surplus", func(in *Input) { in.Leaves = 0; in.SinceLastLeaf = 5 * time.Hour }, Stay, CheckSurplus},
		{"idle and surplus", func(in *Input) { in.Ring = surplusRing; in.Leaves = 0; in.SinceLastLeaf = time.Hour }, Demote, CheckIdle},
		{"idle not long enough", func(in *Input) { in.Ring = surplusRing; in.Leaves = 0; in.SinceLastLeaf = 59 * time.Minute }, Stay, CheckIdle},
		{"idle and surplus within dwell", func(in *Input) {
			in.Ring = surplusRing
			in.Leaves, in.SinceLastLeaf, in.SinceSwitch = 0, time.Hour, 20*time.Minute
		}, Stay, CheckDwell},
		{"never demotes at once", func(in *Input) { in.Consent = ConsentNever; in.SinceSwitch = time.Second }, Demote, CheckConsent},
		{"lost reachability demotes at once", func(in *Input) { in.Reachable = false; in.SinceSwitch = time.Second }, Demote, CheckReachable},
		{"reachability re-check pending keeps role", func(in *Input) { in.ReachKnown = false; in.Reachable = false }, Stay, CheckSurplus},
		{"CPU below keep", func(in *Input) { in.CPUHeadroom = 0.19 }, Demote, CheckCPU},
		{"CPU between keep and min stays", func(in *Input) { in.CPUHeadroom = 0.3 }, Stay, CheckSurplus},
		{"memory below keep", func(in *Input) { in.MemHeadroom = 0.05 }, Demote, CheckMemory},
		{"descriptors below keep", func(in *Input) { in.FreeFDs = 100 }, Demote, CheckFDs},
		{"unmeasured capacity keeps the role", func(in *Input) { in.FreeFDs, in.CPUHeadroom, in.HeadroomUnknown = 0, 0, true }, Stay, CheckSurplus},
		{"headroom loss waits out dwell", func(in *Input) { in.FreeFDs = 100; in.SinceSwitch = 10 * time.Minute }, Stay, CheckDwell},
		{"always ignores headroom and surplus", func(in *Input) {
			in.Consent = ConsentAlways
			in.CPUHeadroom, in.Leaves, in.SinceLastLeaf, in.Ring = 0, 0, 10*time.Hour, surplusRing
		}, Stay, CheckConsent},
		{"always still demotes when unreachable", func(in *Input) { in.Consent = ConsentAlways; in.Reachable = false }, Demote, CheckReachable},
		{"minimum ring is never surplus", func(in *Input) {
			in.Ring = RingView{Known: true, Supernodes: 3, Leaves: 10, FreeSlots: 590}
			in.Leaves, in.SinceLastLeaf = 0, 10*time.Hour
		}, Stay, CheckSurplus},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := healthySupernode()
			tc.mutate(&in)
			d := Decide(p, in)
			if d.Action != tc.action || d.Reason != tc.reason {
				t.Fatalf("got %v (%v), want %v (%v)\n%s", d.Action, d.Reason, tc.action, tc.reason, strings.Join(d.Explain(p, in), "\n"))
			}
			if d.Action == Promote {
				t.Fatal("a supernode cannot promote")
			}
		})
	}
}

func TestNeededSurplusHysteresis(t *testing.T) {
	p := DefaultParams()
	ring := func(supernodes, leaves int) RingView {
		// 200 slots per supernode, as supernode.Config's default.
		return RingView{Known: true, Supernodes: supernodes, Leaves: leaves,
			FreeSlots: max(supernodes*200-leaves, 0), Load: float64(leaves) / float64(supernodes*200)}
	}
	cases := []struct {
		name       string
		r          RingView
		need       bool
		needWhy    CheckID
		surplus    bool
		surplusWhy CheckID
	}{
		{"no view", RingView{}, false, CheckRingView, false, CheckRingView},
		{"empty ring", RingView{Known: true}, true, CheckMinSupernodes, false, CheckMinSupernodes},
		{"below minimum", ring(2, 0), true, CheckMinSupernodes, false, CheckMinSupernodes},
		{"at minimum, idle", ring(3, 0), false, CheckRingLoad, false, CheckMinSupernodes},
		{"at need threshold", ring(10, 900), true, CheckRingLoad, false, CheckRingLoad},
		{"just below need", ring(10, 899), false, CheckRingLoad, false, CheckRingLoad},
		{"between thresholds", ring(10, 700), false, CheckRingLoad, false, CheckRingLoad},
		{"just above surplus", ring(10, 501), false, CheckRingLoad, false, CheckRingLoad},
		{"at surplus threshold", ring(10, 500), false, CheckRingLoad, true, CheckRingLoad},
		{"mean occupancy counts", RingView{Known: true, Supernodes: 10, Leaves: 500, FreeSlots: 5000, Load: 0.95}, true, CheckRingLoad, false, CheckRingLoad},
		{"free slots short", RingView{Known: true, Supernodes: 10, Leaves: 500, FreeSlots: 99, Load: 0.4}, true, CheckFreeSlots, false, CheckFreeSlots},
		{"NaN load is balanced", RingView{Known: true, Supernodes: 10, Leaves: 0, FreeSlots: 2000, Load: math.NaN()}, false, CheckRingLoad, true, CheckRingLoad},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			need, why := Needed(p, tc.r)
			if need != tc.need || why != tc.needWhy {
				t.Errorf("Needed = %v (%v), want %v (%v)", need, why, tc.need, tc.needWhy)
			}
			surplus, why := Surplus(p, tc.r)
			if surplus != tc.surplus || why != tc.surplusWhy {
				t.Errorf("Surplus = %v (%v), want %v (%v)", surplus, why, tc.surplus, tc.surplusWhy)
			}
			if need && surplus {
				t.Error("a ring cannot need a supernode and have a surplus")
			}
		})
	}

	// Hysteresis: in a surplus ring, removing one supernode never makes it
	// needy, for every ring size above the minimum.
	for n := p.MinSupernodes + 1; n <= 200; n++ {
		for leaves := 0; leaves <= n*200; leaves += 7 {
			r := ring(n, leaves)
			if s, _ := Surplus(p, r); !s {
				continue
			}
			after := RingView{Known: true, Supernodes: n - 1, Leaves: leaves, FreeSlots: (n-1)*200 - leaves,
				Load: float64(leaves) / float64((n-1)*200)}
			if need, why := Needed(p, after); need {
				t.Fatalf("%d supernodes, %d links: surplus, but one demotion makes it need one (%v)", n, leaves, why)
			}
		}
	}
}

func TestBackoff(t *testing.T) {
	p := DefaultParams()
	want := []time.Duration{0, 30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 16 * time.Hour, 1024 * time.Minute, 1024 * time.Minute}
	for n, w := range want {
		if got := Backoff(p, n); got != w {
			t.Errorf("Backoff(%d) = %v, want %v", n, got, w)
		}
	}
	if got := Backoff(p, math.MaxInt); got != p.BackoffMax {
		t.Errorf("Backoff(MaxInt) = %v, want the cap %v", got, p.BackoffMax)
	}
	if got := Backoff(p, -1); got != 0 {
		t.Errorf("Backoff(-1) = %v", got)
	}
	huge := p
	huge.BackoffMax = math.MaxInt64
	if got := Backoff(huge, 200); got <= 0 {
		t.Errorf("Backoff with a huge cap overflowed: %v", got)
	}
}

func TestEmergencyBound(t *testing.T) {
	// The documented bound: a reachable leaf that has been up
	// EmergencyMinUptime and has not switched for EmergencyDwell promotes at
	// the first evaluation after its view shows no supernode, however poor its
	// history and capacity, and however many demotions it has.
	p := DefaultParams()
	in := Input{Role: RoleLeaf, Reachable: true, ReachKnown: true, Demotions: 50,
		Uptime: p.EmergencyMinUptime, SinceSwitch: p.EmergencyDwell, Ring: RingView{Known: true}}
	if d := Decide(p, in); d.Action != Promote {
		t.Fatalf("got %v (%v), want promote", d.Action, d.Reason)
	}
}

func TestEmergencyTurn(t *testing.T) {
	p := DefaultParams()
	never := time.Duration(math.MaxInt64)
	cases := []struct {
		name                 string
		uptime, since, emerg time.Duration
		want                 time.Duration
	}{
		{"the emergency is the latest clock", time.Hour, never, 7 * time.Second, 7 * time.Second},
		{"the uptime is", 70 * time.Second, never, 30 * time.Second, 10 * time.Second},
		{"the dwell is", time.Hour, 2*time.Minute + 3*time.Second, 30 * time.Second, 3 * time.Second},
		{"uptime not reached yet", 30 * time.Second, never, 20 * time.Second, 0},
		{"never switched does not wrap around", time.Hour, never, never, time.Hour - p.EmergencyMinUptime},
	}
	for _, tc := range cases {
		in := Input{Uptime: tc.uptime, SinceSwitch: tc.since, EmergencyFor: tc.emerg}
		if got := EmergencyTurn(p, in); got != tc.want {
			t.Errorf("%s: EmergencyTurn = %v, want %v", tc.name, got, tc.want)
		}
	}
	// Parameters nobody validated must not wrap a never-switched node's
	// SinceSwitch around to a negative turn.
	bad := p
	bad.EmergencyDwell, bad.EmergencyMinUptime = -time.Hour, -time.Hour
	if got := EmergencyTurn(bad, Input{Uptime: never, SinceSwitch: never, EmergencyFor: never}); got != never {
		t.Errorf("EmergencyTurn with negative parameters = %v, want saturation at %v", got, never)
	}
}

func TestExplainMentionsNumbers(t *testing.T) {
	p := DefaultParams()
	cases := []struct {
		name  string
		in    func() Input
		check CheckID
		want  []string
	}{
		{"uptime", func() Input { in := qualifiedLeaf(); in.Uptime = 12 * time.Minute; return in }, CheckUptime, []string{"✗", "12 min", "1 h"}},
		{"avg uptime", func() Input { in := qualifiedLeaf(); in.AvgUptime = 90 * time.Minute; return in }, CheckAvgUptime, []string{"✗", "1 h 30 min", "3 h"}},
		{"reachable", qualifiedLeaf, CheckReachable, []string{"✓", "reachable from outside", "dial-backs"}},
		{"bandwidth", func() Input { in := qualifiedLeaf(); in.UpBandwidth = 50 << 10; return in }, CheckBandwidth, []string{"✗", "50 KiB/s", "128 KiB/s"}},
		{"cpu", func() Input { in := qualifiedLeaf(); in.CPUHeadroom = 0.3; return in }, CheckCPU, []string{"✗", "30%", "50%"}},
		{"fds", func() Input { in := qualifiedLeaf(); in.FreeFDs = 100; return in }, CheckFDs, []string{"✗", "100", "512"}},
		{"dwell", func() Input { in := qualifiedLeaf(); in.SinceSwitch = 10 * time.Minute; return in }, CheckDwell, []string{"✗", "10 min", "30 min"}},
		{"backoff", func() Input {
			in := qualifiedLeaf()
			in.Demotions, in.SinceSwitch = 3, 90*time.Minute
			return in
		}, CheckBackoff, []string{"✗", "3 times", "2 h", "30 min left"}},
		{"needed", qualifiedLeaf, CheckNeeded, []string{"✓", "95 leaf links", "target 100", "90%"}},
		{"not needed", func() Input { in := qualifiedLeaf(); in.Ring = balancedRing; return in }, CheckNeeded, []string{"✗", "70 leaf links", "90%"}},
		{"idle", func() Input {
			in := healthySupernode()
			in.Ring, in.Leaves, in.SinceLastLeaf = surplusRing, 0, 80*time.Minute
			return in
		}, CheckIdle, []string{"✗", "1 h 20 min", "1 h"}},
		{"emergency", func() Input { in := qualifiedLeaf(); in.Ring = RingView{Known: true}; return in }, CheckEmergency, []string{"✓", "no supernode", "1 min"}},
		{"never", func() Input { in := qualifiedLeaf(); in.Consent = ConsentNever; return in }, CheckConsent, []string{"✗", "--supernode never"}},
		{"unmeasured", func() Input { in := qualifiedLeaf(); in.HeadroomUnknown = true; return in }, CheckCPU, []string{"✗", "not measured"}},
		{"stagger", func() Input {
			in := qualifiedLeaf()
			in.Ring, in.EmergencyRank, in.EmergencyFor = RingView{Known: true}, 3, 4*time.Second
			return in
		}, CheckStagger, []string{"✗", "number 4 in line", "15 s"}},
		{"stagger from the uptime", func() Input {
			in := qualifiedLeaf()
			in.Ring, in.Uptime, in.EmergencyRank, in.EmergencyFor = RingView{Known: true}, 63*time.Second, 2, 40*time.Second
			return in
		}, CheckStagger, []string{"✗", "number 3 in line", "10 s", "could first step in", "3 s so far", "40 s"}},
		{"step-in", func() Input { in := qualifiedLeaf(); in.AskedToStepIn = true; return in }, CheckStepIn, []string{"✓", "last supernode", "take its place"}},
		{"step-in dwell", func() Input {
			in := qualifiedLeaf()
			in.AskedToStepIn, in.SinceSwitch = true, 30*time.Second
			return in
		}, CheckDwell, []string{"✗", "30 s", "2 min"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in()
			d := Decide(p, in)
			lines := d.Explain(p, in)
			var line string
			for i, c := range d.Checks[:d.N] {
				if c.ID == tc.check {
					line = lines[i]
				}
			}
			if line == "" {
				t.Fatalf("no %v line in %q", tc.check, lines)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("%q lacks %q", line, w)
				}
			}
			if s := d.Summary(p, in); !strings.Contains(s, ":") {
				t.Errorf("summary %q has no reason", s)
			}
		})
	}
}

func TestStrings(t *testing.T) {
	for c := CheckNone; c < numChecks; c++ {
		if s := c.String(); s == "" || strings.HasPrefix(s, "check(") {
			t.Errorf("check %d has no name", c)
		}
	}
	for _, s := range []string{"auto", "never", "always"} {
		c, err := ParseConsent(s)
		if err != nil || c.String() != s {
			t.Errorf("ParseConsent(%q) = %v, %v", s, c, err)
		}
		var u Consent
		if err := u.UnmarshalText([]byte(s)); err != nil || u != c {
			t.Errorf("UnmarshalText(%q) = %v, %v", s, u, err)
		}
	}
	if _, err := ParseConsent("sometimes"); err == nil {
		t.Error("ParseConsent accepted a bad value")
	}
	if Promote.String() != "promote" || Demote.String() != "demote" || Stay.String() != "stay" {
		t.Error("action names")
	}
	if RoleLeaf.String() != "leaf" || RoleSupernode.String() != "supernode" {
		t.Error("role names")
	}
}

var sink Decision

func BenchmarkDecide(b *testing.B) {
	p := DefaultParams()
	inputs := []Input{qualifiedLeaf(), healthySupernode(), func() Input {
		in := qualifiedLeaf()
		in.Ring = balancedRing
		return in
	}(), func() Input {
		in := healthySupernode()
		in.Ring, in.Leaves, in.SinceLastLeaf = surplusRing, 0, 2*time.Hour
		return in
	}()}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sink = Decide(p, inputs[i&3])
	}
}
