package leaf

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/wire"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func testPolicy() policy {
	cfg := Config{}
	cfg = cfg.withDefaults()
	return policyOf(&cfg)
}

// sn is a fresh candidate whose last report gave it load percent and free
// slots; the tiebreak follows the address so that results are reproducible.
func sn(addr string, load uint8) candView {
	return candView{addr: addr, load: load, slots: 100, known: true, tiebreak: uint64(addr[len(addr)-1])}
}

func with(c candView, f func(*candView)) candView { f(&c); return c }

func staying(n int) []linkView { return make([]linkView, n) }

func addrs(s attachState, steps []step) []string {
	var out []string
	for _, st := range steps {
		out = append(out, s.cands[st.index].addr)
	}
	return out
}

func TestPlanDials(t *testing.T) {
	p := testPolicy()
	attached := func(c *candView) { c.attached = true }
	cases := []struct {
		name     string
		s        attachState
		wantN    int
		dial     []string
		idleText bool
	}{
		{"fill from zero: the three least loaded",
			attachState{cands: []candView{sn("a", 50), sn("b", 10), sn("c", 30), sn("d", 20), sn("e", 90)}},
			3, []string{"b", "d", "c"}, false},
		{"top-up after a loss: one more, never an attached one",
			attachState{links: staying(2), cands: []candView{
				with(sn("a", 1), attached), with(sn("b", 2), attached), sn("c", 40), sn("d", 30)}},
			1, []string{"d"}, false},
		{"dials under way count as links",
			attachState{dialing: 2, cands: []candView{
				with(sn("a", 1), func(c *candView) { c.dialing = true }),
				with(sn("b", 2), func(c *candView) { c.dialing = true }), sn("c", 40), sn("d", 30)}},
			1, []string{"d"}, false},
		{"enough links: nothing to do",
			attachState{links: staying(3), cands: []candView{sn("a", 1)}},
			0, nil, false},
		{"back-off respected: the best is waiting, one whose wait ends now is ready",
			attachState{links: staying(2), cands: []candView{
				with(sn("a", 1), func(c *candView) { c.next = t0.Add(time.Millisecond) }),
				with(sn("b", 60), func(c *candView) { c.next = t0 }), sn("c", 70)}},
			1, []string{"b"}, false},
		{"every candidate in back-off: idle, with a reason",
			attachState{cands: []candView{with(sn("a", 1), func(c *candView) { c.next = t0.Add(time.Second) })}},
			3, nil, true},
		{"k capped by candidates",
			attachState{cands: []candView{sn("a", 10), sn("b", 20)}},
			3, []string{"a", "b"}, false},
		{"recent failures rank after any load; failures older than RetryAfter are forgotten",
			attachState{links: staying(1), cands: []candView{
				with(sn("a", 1), func(c *candView) { c.failures, c.lastFail = 1, t0.Add(-time.Minute) }),
				with(sn("b", 5), func(c *candView) { c.failures, c.lastFail = 3, t0.Add(-p.choice.RetryAfter) }),
				sn("c", 80)}},
			2, []string{"b", "c"}, false},
		{"all report themselves full: the best is dialled anyway",
			attachState{links: staying(2), cands: []candView{
				with(sn("a", 99), func(c *candView) { c.slots = 0 }), with(sn("b", 97), func(c *candView) { c.slots = 0 })}},
			1, []string{"b"}, false},
		{"a successor is dialled like a supernode",
			attachState{cands: []candView{{addr: "s1", successor: true, tiebreak: 1}}},
			3, []string{"s1"}, false},
		{"make-before-break: a link being handed over does not count, its supernode is not redialled",
			attachState{links: []linkView{{}, {}, {leavingSince: t0.Add(-time.Second)}}, cands: []candView{
				with(sn("a", 1), attached), with(sn("b", 1), attached), with(sn("c", 0), attached), sn("d", 50)}},
			1, []string{"d"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pl := plan(p, tc.s, t0)
			if pl.want != tc.wantN {
				t.Errorf("want = %d, expected %d", pl.want, tc.wantN)
			}
			if got := addrs(tc.s, pl.dial); !slices.Equal(got, tc.dial) {
				t.Errorf("dial %v, expected %v", got, tc.dial)
			}
			if (pl.idle != "") != tc.idleText {
				t.Errorf("idle = %q", pl.idle)
			}
			for _, st := range pl.dial {
				if st.why == "" {
					t.Errorf("dial of %s has no reason", tc.s.cands[st.index].addr)
				}
			}
		})
	}
}

func TestPlanHandover(t *testing.T) {
	p := testPolicy() // Attach 3, HandoverGrace 5 s
	leaving := func(ago time.Duration) linkView { return linkView{leavingSince: t0.Add(-ago)} }
	cases := []struct {
		name  string
		links []linkView
		close []int
	}{
		{"within the grace with one other link: kept", []linkView{leaving(p.grace - time.Millisecond), {}}, nil},
		{"grace over with one other link: closed", []linkView{leaving(p.grace), {}}, []int{0}},
		{"grace long over but no other link: kept, the leaf never orphans itself", []linkView{leaving(time.Hour)}, nil},
		{"two leaving, grace over, nothing else: both kept", []linkView{leaving(time.Hour), leaving(time.Hour)}, nil},
		{"replaced by Attach others: closed at once", []linkView{{}, leaving(0), {}, {}}, []int{1}},
		{"Attach-1 others within the grace: kept", []linkView{{}, leaving(time.Second), {}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pl := plan(p, attachState{links: tc.links}, t0)
			var got []int
			for _, st := range pl.close {
				got = append(got, st.index)
				if st.why == "" {
					t.Errorf("close of link %d has no reason", st.index)
				}
			}
			if !slices.Equal(got, tc.close) {
				t.Errorf("close %v, expected %v", got, tc.close)
			}
		})
	}
}

func TestOrphaned(t *testing.T) {
	lostAll := t0.Add(-time.Minute)
	failedSince := func(c *candView) { c.failures, c.lastFail = 1, lostAll.Add(time.Second) }
	failedBefore := func(c *candView) { c.failures, c.lastFail = 1, lostAll.Add(-time.Second) }
	cases := []struct {
		name     string
		s        attachState
		orphaned bool
		since    time.Duration
	}{
		{"a link is up", attachState{links: staying(1), cands: []candView{with(sn("a", 0), failedSince)}}, false, 0},
		{"a dial is under way", attachState{dialing: 1}, false, 0},
		{"no candidate at all", attachState{}, true, time.Minute},
		{"every candidate failed since the loss", attachState{cands: []candView{
			with(sn("a", 0), failedSince), with(sn("b", 0), failedSince)}}, true, time.Minute},
		{"one failed only before the loss", attachState{cands: []candView{
			with(sn("a", 0), failedSince), with(sn("b", 0), failedBefore)}}, false, time.Minute},
		{"one never dialled", attachState{cands: []candView{with(sn("a", 0), failedSince), sn("b", 0)}}, false, time.Minute},
		{"successors do not hold the verdict back", attachState{cands: []candView{
			with(sn("a", 0), failedSince), {addr: "s", successor: true}}}, true, time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.s.lostAll = lostAll
			o, since := orphaned(tc.s, t0)
			if o != tc.orphaned || since != tc.since {
				t.Errorf("orphaned = %v, %v; expected %v, %v", o, since, tc.orphaned, tc.since)
			}
			if pl := plan(testPolicy(), tc.s, t0); pl.orphaned != o || pl.orphanedFor != since {
				t.Errorf("plan reports orphaned = %v, %v; orphaned says %v, %v", pl.orphaned, pl.orphanedFor, o, since)
			}
		})
	}
}

func TestRetryBackoff(t *testing.T) {
	p := testPolicy() // 1 s doubling to 1 min
	cases := []struct {
		failures           int
		successor, noLinks bool
		want               time.Duration
	}{
		{1, false, false, time.Second},
		{2, false, false, 2 * time.Second},
		{3, false, true, 4 * time.Second},
		{6, false, false, 32 * time.Second},
		{7, false, false, time.Minute},
		{1000, false, false, time.Minute},
		{5, true, true, time.Second},
		{5, true, false, 16 * time.Second},
	}
	for _, tc := range cases {
		if got := retryBackoff(p, tc.failures, tc.successor, tc.noLinks); got != tc.want {
			t.Errorf("retryBackoff(%d failures, successor %v, no links %v) = %v, expected %v",
				tc.failures, tc.successor, tc.noLinks, got, tc.want)
		}
	}
}

func TestKeepLink(t *testing.T) {
	p := testPolicy()
	cases := []struct {
		name  string
		links []linkView
		dup   bool
		want  bool
	}{
		{"first link", nil, false, true},
		{"a second link to the same supernode", staying(1), true, false},
		{"another dial filled the last place", staying(3), false, false},
		{"a link being handed over leaves room", []linkView{{}, {}, {leavingSince: t0}}, false, true},
	}
	for _, tc := range cases {
		if got := keepLink(p, attachState{links: tc.links}, tc.dup); got != tc.want {
			t.Errorf("%s: keepLink = %v, expected %v", tc.name, got, tc.want)
		}
	}
}

func TestLost(t *testing.T) {
	p := testPolicy()
	self := identity.NodeID{9}
	waiting := func(c *candView) { c.failures, c.lastFail, c.next = 4, t0.Add(-time.Second), t0.Add(time.Minute) }
	cands := []candView{with(sn("a", 0), waiting), with(sn("b", 0), waiting), with(sn("c", 0), waiting), with(sn("d", 0), waiting)}
	succ := []wire.PeerInfo{{ID: identity.NodeID{1}, Control: "s1"}, {ID: self, Control: "me"}, {ID: identity.NodeID{2}, Control: "b"}}

	t.Run("not the last link", func(t *testing.T) {
		lp := lost(p, attachState{links: staying(1), cands: cands}, 0, succ, self)
		if lp.orphaned || lp.retryNow != nil || lp.successors != nil || lp.pause != p.retryBackoff {
			t.Errorf("%+v", lp)
		}
	})
	t.Run("the last link: every other candidate at once, and the unknown successors", func(t *testing.T) {
		s := attachState{cands: slices.Clone(cands)}
		lp := lost(p, s, 0, succ, self)
		if !lp.orphaned || lp.pause != p.retryBackoff {
			t.Errorf("orphaned %v, pause %v", lp.orphaned, lp.pause)
		}
		if !slices.Equal(lp.retryNow, []int{1, 2, 3}) {
			t.Errorf("retryNow %v, expected every candidate but the lost one", lp.retryNow)
		}
		if len(lp.successors) != 1 || lp.successors[0].Control != "s1" {
			t.Errorf("successors %v, expected only s1 (not the leaf itself, not a known candidate)", lp.successors)
		}
		// Carried out, the plan dials Attach of the candidates whose
		// back-off was cut short, none of them the supernode just lost.
		s.cands[0].next = t0.Add(lp.pause)
		for _, i := range lp.retryNow {
			s.cands[i].next = t0
		}
		s.lostAll = t0
		pl := plan(p, s, t0)
		got := addrs(s, pl.dial)
		slices.Sort(got)
		if !slices.Equal(got, []string{"b", "c", "d"}) {
			t.Errorf("after the loss the leaf dials %v, expected b, c, d", got)
		}
	})
	t.Run("the lost supernode is no longer a candidate", func(t *testing.T) {
		lp := lost(p, attachState{cands: cands}, -1, nil, self)
		if len(lp.retryNow) != len(cands) {
			t.Errorf("retryNow %v, expected all %d", lp.retryNow, len(cands))
		}
	})
}

func TestEvict(t *testing.T) {
	p := testPolicy()
	p.maxCandidates = 4
	old, older := t0.Add(-time.Minute), t0.Add(-time.Hour)
	c := func(addr string, failures int, seen time.Time, tiebreak uint64) candView {
		return candView{addr: addr, failures: failures, seen: seen, tiebreak: tiebreak}
	}
	cases := []struct {
		name   string
		cands  []candView
		victim int
		ok     bool
	}{
		{"room left", []candView{c("a", 5, older, 1), c("b", 0, t0, 1), c("c", 0, t0, 1)}, -1, true},
		{"most consecutive failures first, however fresh",
			[]candView{c("a", 0, older, 1), c("b", 2, t0, 1), c("c", 1, older, 9), c("d", 0, older, 9)}, 1, true},
		{"then longest unseen",
			[]candView{c("a", 1, old, 1), c("b", 1, older, 1), c("c", 0, older, 9), c("d", 1, t0, 9)}, 1, true},
		{"then the highest tiebreak",
			[]candView{c("a", 0, old, 3), c("b", 0, old, 7), c("c", 0, old, 5), c("d", 0, t0, 9)}, 1, true},
		{"then the highest address",
			[]candView{c("a", 0, old, 3), c("c", 0, old, 3), c("b", 0, old, 3), c("d", 0, t0, 3)}, 1, true},
		{"never one attached, being dialled or a seed",
			[]candView{
				with(c("a", 9, older, 1), func(v *candView) { v.attached = true }),
				with(c("b", 9, older, 1), func(v *candView) { v.dialing = true }),
				with(c("c", 9, older, 1), func(v *candView) { v.seed = true }),
				c("d", 0, t0, 1)}, 3, true},
		{"successors neither count nor go",
			[]candView{
				with(c("a", 9, older, 1), func(v *candView) { v.successor = true }),
				c("b", 0, t0, 1), c("c", 0, t0, 2), c("d", 0, t0, 3)}, -1, true},
		{"a full set evicts a supernode, not a failing successor",
			[]candView{
				with(c("a", 9, older, 1), func(v *candView) { v.successor = true }),
				c("b", 0, t0, 1), c("c", 0, t0, 2), c("d", 0, t0, 3), c("e", 0, t0, 4)}, 4, true},
		{"nothing evictable: the newcomer is turned away",
			[]candView{
				with(c("a", 0, t0, 1), func(v *candView) { v.attached = true }),
				with(c("b", 0, t0, 1), func(v *candView) { v.attached = true }),
				with(c("c", 0, t0, 1), func(v *candView) { v.seed = true }),
				with(c("d", 0, t0, 1), func(v *candView) { v.seed = true })}, -1, false},
		{"over the cap (seeds beyond it) still evicts one",
			[]candView{
				with(c("a", 0, t0, 1), func(v *candView) { v.seed = true }),
				with(c("b", 0, t0, 1), func(v *candView) { v.seed = true }),
				with(c("c", 0, t0, 1), func(v *candView) { v.seed = true }),
				with(c("d", 0, t0, 1), func(v *candView) { v.seed = true }),
				c("e", 0, t0, 1)}, 4, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, ok := evict(p, tc.cands)
			if v != tc.victim || ok != tc.ok {
				t.Errorf("evict = %d, %v; expected %d, %v", v, ok, tc.victim, tc.ok)
			}
		})
	}
}

// newTestLeaf is a leaf with no goroutines, for the bookkeeping that runs
// under Leaf.mu: nothing here dials.
func newTestLeaf(cfg Config) *Leaf {
	cfg = cfg.withDefaults()
	l := &Leaf{
		cfg: cfg, log: zap.NewNop(), id: identity.NodeID{0xee},
		cands:   make(map[string]*candidate),
		atts:    make(map[identity.NodeID]*attachment),
		dialing: make(map[string]bool),
		lostAll: t0,
	}
	for _, s := range cfg.Seeds {
		l.cands[s] = &candidate{addr: s, seed: true, seen: t0}
	}
	return l
}

func peer(i int) Peer {
	return Peer{ID: identity.NodeID{byte(i + 1), 1}, Control: fmt.Sprintf("10.0.0.%d:7000", i)}
}

func TestCandidateCap(t *testing.T) {
	var def Config
	def = def.withDefaults()
	if def.MaxCandidates != 16 || def.Attach != 3 || def.Choice.K != 3 {
		t.Fatalf("defaults: MaxCandidates %d, Attach %d, Choice.K %d", def.MaxCandidates, def.Attach, def.Choice.K)
	}
	l := newTestLeaf(Config{Seeds: []string{"seed:7000"}, MaxCandidates: 8})
	var peers []Peer
	for i := range 40 {
		peers = append(peers, peer(i))
	}
	// A host cache far larger than the cap, then a supernode naming more.
	l.AddSupernodes(peers[:30]...)
	if n := len(l.cands); n != 8 {
		t.Fatalf("%d candidates after adding 30 to a set of 8, expected 8", n)
	}
	if l.cands["seed:7000"] == nil {
		t.Fatal("the seed was evicted")
	}
	// Mark a few as failing: they must be the ones to go next.
	var failing []string
	for addr, c := range l.cands {
		if !c.seed && len(failing) < 2 {
			c.failures, failing = 3, append(failing, addr)
		}
	}
	l.learn([]wire.PeerInfo{
		{ID: peers[30].ID, Control: peers[30].Control},
		{ID: peers[31].ID, Control: peers[31].Control},
	})
	for _, addr := range failing {
		if l.cands[addr] != nil {
			t.Errorf("failing candidate %s survived while healthy ones were evicted", addr)
		}
	}
	if l.cands[peers[30].Control] == nil || l.cands[peers[31].Control] == nil || len(l.cands) != 8 {
		t.Errorf("newcomers not admitted in their place: %d candidates", len(l.cands))
	}

	// Being named again keeps a candidate fresh: among equally healthy
	// ones, those not heard of for longest go first. The refreshed one has
	// the tiebreak that would otherwise make it the first to go.
	var refreshed *candidate
	for _, c := range l.cands {
		if !c.seed {
			c.failures, c.seen, c.tiebreak = 0, t0, 1
			refreshed = c
		}
	}
	refreshed.tiebreak = ^uint64(0)
	l.learn([]wire.PeerInfo{{ID: refreshed.id, Control: refreshed.addr}})
	for i := 32; i < 38; i++ {
		l.AddSupernodes(peers[i])
	}
	if l.cands[refreshed.addr] == nil {
		t.Error("a candidate just named again was evicted before stale ones")
	}

	// Orphan detection waits for every candidate to fail, and there are
	// only MaxCandidates of them to wait for.
	if o, _ := l.Orphaned(t0.Add(time.Minute)); o {
		t.Fatal("orphaned before any dial failed")
	}
	for _, c := range l.cands {
		c.lastFail = t0.Add(time.Second)
	}
	if o, since := l.Orphaned(t0.Add(time.Minute)); !o || since != time.Minute {
		t.Errorf("Orphaned = %v, %v after all %d candidates failed", o, since, len(l.cands))
	}
}

func TestLosingTheLastLink(t *testing.T) {
	l := newTestLeaf(Config{MaxCandidates: 4})
	for i := range 4 {
		l.AddSupernodes(peer(i))
	}
	for _, c := range l.cands {
		c.failures, c.next = 1, t0.Add(time.Hour)
	}
	l.cands[peer(0).Control].failures = 2
	l.lastSuccessors = []wire.PeerInfo{{ID: identity.NodeID{0x51}, Control: "succ:7000"}, {ID: l.id, Control: "self:7000"}}
	now := t0.Add(time.Minute)
	l.detachedLocked(peer(3).Control, 20*time.Millisecond, now)

	if l.orphanings != 1 || !l.lostAll.Equal(now) {
		t.Errorf("orphanings %d, lostAll %v", l.orphanings, l.lostAll)
	}
	if c := l.cands[peer(3).Control]; c == nil || !c.next.Equal(now.Add(l.cfg.RetryBackoff)) || c.rtt != 20*time.Millisecond {
		t.Errorf("the lost supernode: %+v, expected a pause of RetryBackoff and its RTT kept", c)
	}
	for _, i := range []int{1, 2} {
		if c := l.cands[peer(i).Control]; c == nil || !c.next.Equal(now) {
			t.Errorf("candidate %d: %+v, expected to be retried at once", i, c)
		}
	}
	// The set was full, but a successor needs no room: every supernode
	// candidate stays, and the leaf itself is never its own candidate.
	if c := l.cands["succ:7000"]; c == nil || !c.successor || c.id != (identity.NodeID{0x51}) {
		t.Errorf("successor candidate %+v", c)
	}
	if l.cands[peer(0).Control] == nil || l.cands["self:7000"] != nil || len(l.cands) != 5 {
		t.Errorf("candidates after the loss: %d, failing one %v, self %v",
			len(l.cands), l.cands[peer(0).Control], l.cands["self:7000"])
	}
	// Named as a supernode, the successor counts again: the next newcomer
	// brings the set back to the bound.
	l.learn([]wire.PeerInfo{{ID: identity.NodeID{0x51}, Control: "succ:7000"}, {ID: peer(9).ID, Control: peer(9).Control}})
	if len(l.cands) != 4 || l.cands[peer(0).Control] != nil || l.cands[peer(9).Control] == nil {
		t.Errorf("after the successor promoted: %d candidates, failing one %v", len(l.cands), l.cands[peer(0).Control])
	}
}

func TestLosingOneOfSeveralLinks(t *testing.T) {
	l := newTestLeaf(Config{})
	l.AddSupernodes(peer(0), peer(1))
	l.atts[peer(1).ID] = &attachment{addr: peer(1).Control}
	l.cands[peer(1).Control].next = t0.Add(time.Hour)
	l.lastSuccessors = []wire.PeerInfo{{ID: identity.NodeID{0x51}, Control: "succ:7000"}}
	l.detachedLocked(peer(0).Control, 0, t0)
	if l.orphanings != 0 || l.cands["succ:7000"] != nil || !l.cands[peer(1).Control].next.Equal(t0.Add(time.Hour)) {
		t.Errorf("a loss that leaves a link acted as an orphaning: orphanings %d", l.orphanings)
	}
}

// TestSuccessorsOfACollapse: when every link goes, one after the other, the
// orphan keeps the successors every one of them named, not only the last
// one's: the orphans of different supernodes then know the same successors
// and elect into one ring, not into groups that know nothing of each other.
func TestSuccessorsOfACollapse(t *testing.T) {
	l := newTestLeaf(Config{})
	succ := func(b byte) wire.PeerInfo {
		return wire.PeerInfo{ID: identity.NodeID{b}, Control: fmt.Sprintf("succ%d:7000", b)}
	}
	l.AddSupernodes(peer(0), peer(1), peer(2))
	atts := make([]*attachment, 3)
	for i := range atts {
		atts[i] = &attachment{addr: peer(i).Control, successors: []wire.PeerInfo{succ(byte(0x50 + i)), succ(0x60)}}
		l.atts[peer(i).ID] = atts[i]
	}
	for i := range atts {
		l.removeLocked(peer(i).ID, atts[i], 0, t0.Add(time.Duration(i)*time.Second))
	}
	want := []wire.PeerInfo{succ(0x50), succ(0x51), succ(0x52), succ(0x60)}
	if got := l.Successors(); !slices.Equal(got, want) {
		t.Errorf("successors after the collapse: %v, want %v", got, want)
	}
	for _, p := range want {
		if c := l.cands[p.Control]; c == nil || !c.successor {
			t.Errorf("successor %s is not a candidate: %+v", p.Control, c)
		}
	}
	if r := l.EmergencyRank(); r != len(want) {
		t.Errorf("rank of a leaf that is no successor: %d, want %d", r, len(want))
	}

	// Attached again, the live link's list is the one that counts.
	l.atts[peer(3).ID] = &attachment{addr: peer(3).Control, successors: []wire.PeerInfo{succ(0x70)}}
	if got := l.Successors(); !slices.Equal(got, []wire.PeerInfo{succ(0x70)}) {
		t.Errorf("successors once attached again: %v", got)
	}
}
