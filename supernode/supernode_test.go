package supernode

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/internal/textsafe"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/wire"
)

// testSupernode starts a supernode with its own loopback control listener
// that answers probes as a node does and hands every other link saying hello
// to AcceptPeer or AcceptLeaf.
func testSupernode(t testing.TB, cfg Config) (*Supernode, string) {
	t.Helper()
	id, _ := identity.Generate()
	creds, _ := link.NewCredentials(id)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Creds, cfg.Control = creds, ln.Addr().String()
	cfg.GossipAddr, cfg.GossipProfile = "127.0.0.1:0", "local"
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(t)
	}
	sn, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go serveHellos(ln, creds, func(c *link.Conn, h wire.Hello) {
		switch h.Role {
		case wire.RoleProbe:
			// As node's accept loop answers a dial-back, and so the
			// ring's verification of this supernode.
			answerProbe(c)
		case wire.RoleSupernode:
			_ = sn.AcceptPeer(c, h)
		default:
			_ = sn.AcceptLeaf(c, h)
		}
	})
	t.Cleanup(func() { ln.Close(); sn.Close() })
	return sn, ln.Addr().String()
}

// serveHellos accepts TLS links on ln with creds, reads each one's hello and
// hands it to handle, until ln is closed.
func serveHellos(ln net.Listener, creds *link.Credentials, handle func(*link.Conn, wire.Hello)) {
	for {
		raw, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			c, err := link.Accept(context.Background(), raw, creds, nil)
			if err != nil {
				return
			}
			e, err := recv(c, time.Second)
			var h wire.Hello
			if err != nil || e.Decode(&h) != nil {
				c.Close("no hello")
				return
			}
			handle(c, h)
		}()
	}
}

// answerProbe answers a dial-back probe as a node's accept loop does.
func answerProbe(c *link.Conn) {
	_ = c.SendBody(wire.TypeWelcome, &wire.Welcome{Role: wire.RoleLeaf})
	c.Close("dial-back answered")
}

// testLeaf attaches a bare link to the supernode as a leaf.
func testLeaf(t testing.TB, addr string) *link.Conn {
	t.Helper()
	c, _ := testLeafID(t, addr)
	return c
}

func testLeafID(t testing.TB, addr string) (*link.Conn, identity.NodeID) {
	t.Helper()
	id, _ := identity.Generate()
	creds, _ := link.NewCredentials(id)
	c, err := link.Dial(context.Background(), addr, creds, identity.NodeID{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close("test over") })
	if err := c.SendBody(wire.TypeHello, &wire.Hello{Role: wire.RoleLeaf}); err != nil {
		t.Fatal(err)
	}
	e, err := recv(c, 5*time.Second)
	if err != nil || e.Type != wire.TypeWelcome {
		t.Fatalf("no welcome: %v %s", err, e.Type)
	}
	return c, id.ID
}

func waitStats(t *testing.T, sn *Supernode, ok func(Stats) bool) Stats {
	t.Helper()
	var st Stats
	if err := testwait.For(5*time.Second, func() bool { st = sn.Stats(); return ok(st) }); err != nil {
		t.Fatalf("stats never reached the expected state: %+v", st)
	}
	return st
}

func TestDuplicateQueriesAnsweredOnce(t *testing.T) {
	sn, addr := testSupernode(t, Config{})
	owner, ownerID := testLeafID(t, addr)
	searcher := testLeaf(t, addr)
	if err := owner.SendBody(wire.TypeIndexUpdate, &wire.IndexUpdate{Reset: true, Rev: 1, Add: []wire.IndexFile{{ID: [32]byte{7}, Name: "Quiet Morning.flac", Size: 42}}}); err != nil {
		t.Fatal(err)
	}
	if e, err := recv(owner, 5*time.Second); err != nil || e.Type != wire.TypeIndexAck {
		t.Fatalf("no index ack: %v %s", err, e.Type)
	}
	q, _ := wire.New(wire.TypeQuery, &wire.Query{Words: "quiet morning"})
	searcher.Send(q)
	searcher.Send(q)
	e, err := recv(searcher, 5*time.Second)
	if err != nil || e.Type != wire.TypeQueryHit || e.ID != q.ID {
		t.Fatalf("no hit: %v %s", err, e.Type)
	}
	var qh wire.QueryHit
	if err := e.Decode(&qh); err != nil || len(qh.Hits) != 1 || qh.Hits[0].Sources[0].Node != ownerID || qh.Hits[0].Sources[0].Via[0] != sn.ID() {
		t.Fatalf("hit: %v %+v", err, qh)
	}
	waitStats(t, sn, func(st Stats) bool { return st.DuplicateQueries == 1 && st.QueriesFromLeaves == 2 })
	// No second answer arrives for the copy.
	if e, err := recv(searcher, 300*time.Millisecond); err == nil {
		t.Fatalf("a duplicate query was answered: %s", e.Type)
	}
}

func TestQueryFloodIsLimited(t *testing.T) {
	sn, addr := testSupernode(t, Config{QueryRate: 1, QueryBurst: 5})
	c := testLeaf(t, addr)
	for range 50 {
		q, _ := wire.New(wire.TypeQuery, &wire.Query{Words: "anything"})
		c.Send(q)
	}
	st := waitStats(t, sn, func(st Stats) bool { return st.QueriesLimited+st.QueriesFromLeaves == 50 })
	if st.QueriesFromLeaves > 6 {
		t.Fatalf("%d queries passed a limit of 5 per burst", st.QueriesFromLeaves)
	}
	// None was dropped without a word; beyond the slow-down answers' own
	// burst the link was read more slowly.
	if st.SlowDowns != st.QueriesLimited || st.RefusalsPaced == 0 {
		t.Fatalf("stats %+v: every limited query must get a slow down, the flood be paced", st)
	}
	// The flooding leaf keeps its link: the limit drops queries, not leaves.
	if len(sn.Leaves()) != 1 {
		t.Fatal("the flooding leaf was disconnected")
	}
}

func TestLeafSlotsAreBounded(t *testing.T) {
	sn, addr := testSupernode(t, Config{MaxLeaves: 1})
	testLeaf(t, addr)
	id, _ := identity.Generate()
	creds, _ := link.NewCredentials(id)
	c, err := link.Dial(context.Background(), addr, creds, identity.NodeID{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close("done")
	c.SendBody(wire.TypeHello, &wire.Hello{Role: wire.RoleLeaf})
	e, err := recv(c, 5*time.Second)
	if err != nil || e.Type != wire.TypeRefuse {
		t.Fatalf("second leaf: %v %s, want a refusal", err, e.Type)
	}
	if st := sn.Stats(); st.LinksRefused != 1 {
		t.Fatalf("refusals counted: %d", st.LinksRefused)
	}
}

// TestStrangerPeerIsRefused: a node whose hello says supernode but whose
// key is not a ring member gets the welcome (the gossip address a joining
// supernode needs) and a goodbye naming the reason; its query and its forged
// signal are never read, so no hit comes back and no leaf is signalled.
func TestStrangerPeerIsRefused(t *testing.T) {
	sn, addr := testSupernode(t, Config{})
	victim, victimID := testLeafID(t, addr)
	if err := victim.SendBody(wire.TypeIndexUpdate, &wire.IndexUpdate{Reset: true, Rev: 1, Add: []wire.IndexFile{{ID: [32]byte{7}, Name: "Quiet Morning.flac", Size: 42}}}); err != nil {
		t.Fatal(err)
	}
	if e, err := recv(victim, 5*time.Second); err != nil || e.Type != wire.TypeIndexAck {
		t.Fatalf("no index ack: %v %s", err, e.Type)
	}
	id, _ := identity.Generate()
	creds, _ := link.NewCredentials(id)
	c, err := link.Dial(context.Background(), addr, creds, identity.NodeID{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close("done")
	c.SendBody(wire.TypeHello, &wire.Hello{Role: wire.RoleSupernode, Control: "127.0.0.1:1"})
	q, _ := wire.New(wire.TypeQuery, &wire.Query{Words: "quiet morning"})
	c.Send(q)
	c.SendBody(wire.TypeSignal, &wire.Signal{To: victimID, Via: sn.ID(), Kind: wire.SignalOffer, Data: "v=0"})
	e, err := recv(c, 5*time.Second)
	var w wire.Welcome
	if err != nil || e.Type != wire.TypeWelcome || e.Decode(&w) != nil || w.Gossip != sn.GossipAddr() {
		t.Fatalf("a stranger got %s (%v), want a welcome with the gossip address", e.Type, err)
	}
	// Then the goodbye, and nothing else: no hit for the query.
	for {
		e, err := c.Recv(5 * time.Second)
		if err != nil {
			t.Fatalf("no goodbye before the link closed: %v", err)
		}
		if e.Type == wire.TypeQueryHit {
			t.Fatal("a stranger's query was answered")
		}
		if e.Type == wire.TypeBye {
			var b wire.Bye
			if e.Decode(&b) != nil || !strings.Contains(b.Reason, "not a ring member") {
				t.Fatalf("goodbye %q, want the reason", b.Reason)
			}
			break
		}
	}
	if got := sn.refusals.Snapshot().Stranger; got != 1 {
		t.Fatalf("strangers refused: %d, want 1", got)
	}
	if st := sn.Stats(); st.QueriesFromPeers != 0 || st.FromNonMembers != 0 || st.SignalsRelayed != 0 {
		t.Fatalf("the stranger's messages were read: %+v", st)
	}
	if e, err := recv(victim, 300*time.Millisecond); err == nil && e.Type == wire.TypeSignal {
		t.Fatal("a stranger's signal reached a leaf")
	}
}

// dialAs opens a link to addr with creds and says hello in role r,
// returning the link and the first answer.
func dialAs(t *testing.T, addr string, creds *link.Credentials, h wire.Hello) (*link.Conn, wire.Envelope) {
	t.Helper()
	c, err := link.Dial(context.Background(), addr, creds, identity.NodeID{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close("test over") })
	if err := c.SendBody(wire.TypeHello, &h); err != nil {
		t.Fatal(err)
	}
	e, err := recv(c, 5*time.Second)
	if err != nil {
		t.Fatalf("no answer to the hello: %v", err)
	}
	return c, e
}

// TestLeafReconnectReplacesOldLink: a leaf that reconnects (it restarted
// before its old link timed out) takes its slot back, even when every slot
// is taken, and the old link is closed; another leaf is still refused.
func TestLeafReconnectReplacesOldLink(t *testing.T) {
	sn, addr := testSupernode(t, Config{MaxLeaves: 1})
	id, _ := identity.Generate()
	creds, _ := link.NewCredentials(id)
	first, e := dialAs(t, addr, creds, wire.Hello{Role: wire.RoleLeaf})
	if e.Type != wire.TypeWelcome {
		t.Fatalf("first link: %s", e.Type)
	}
	_, e = dialAs(t, addr, creds, wire.Hello{Role: wire.RoleLeaf})
	if e.Type != wire.TypeWelcome {
		t.Fatalf("the same leaf reconnecting got %s, want a welcome", e.Type)
	}
	for {
		e, err := first.Recv(5 * time.Second)
		if err != nil {
			t.Fatalf("the old link closed without a goodbye: %v", err)
		}
		if e.Type == wire.TypeBye {
			break
		}
	}
	if l := sn.Leaves(); len(l) != 1 || l[0] != id.ID {
		t.Fatalf("leaves %v, want the one leaf once", l)
	}
	other, _ := identity.Generate()
	otherCreds, _ := link.NewCredentials(other)
	if _, e := dialAs(t, addr, otherCreds, wire.Hello{Role: wire.RoleLeaf}); e.Type != wire.TypeRefuse {
		t.Fatalf("another leaf with every slot taken got %s, want a refusal", e.Type)
	}
	c := sn.refusals.Snapshot()
	if c.Replaced != 1 || c.LeafSlots != 1 {
		t.Fatalf("counts %+v, want one replaced and one refused for slots", c)
	}
}

// TestPeerLinksPerMemberBounded: a ring member that keeps dialling gets at
// most MaxPeerLinks links; each new one would otherwise retire the one
// before and hold it open for a minute.
func TestPeerLinksPerMemberBounded(t *testing.T) {
	const limit = 2
	a, addrA := testSupernode(t, Config{MaxPeerLinks: limit, Logger: zap.NewNop()})
	b, _ := testSupernode(t, Config{Logger: zap.NewNop()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := b.Join(ctx, []string{addrA}); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, func() bool { return a.isMember(b.ID()) }, "b never became a member in a's eyes")
	const dials = 6
	for range dials {
		dialAs(t, addrA, b.cfg.Creds, wire.Hello{Role: wire.RoleSupernode})
	}
	a.mu.Lock()
	held := a.inboundFromLocked(b.ID())
	a.mu.Unlock()
	if held > limit {
		t.Fatalf("a holds %d links dialled by b, bound %d", held, limit)
	}
	// The view rule's own link from b may be one of those admitted.
	if got := a.refusals.Snapshot().PeerLinks; got < dials-limit {
		t.Fatalf("%d of %d dials refused, want at least %d", got, dials, dials-limit)
	}
}

// TestHelloSoftwareBoundedInLog: a leaf's software string is logged cut to
// wire.MaxSoftwareLen, however long the hello made it.
func TestHelloSoftwareBoundedInLog(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	_, addr := testSupernode(t, Config{Logger: zap.New(core)})
	id, _ := identity.Generate()
	creds, _ := link.NewCredentials(id)
	if _, e := dialAs(t, addr, creds, wire.Hello{Role: wire.RoleLeaf, Software: strings.Repeat("canopy/", 100_000)}); e.Type != wire.TypeWelcome {
		t.Fatalf("answer %s", e.Type)
	}
	// The welcome goes out before the line is logged: wait for it.
	var attached []observer.LoggedEntry
	if err := testwait.For(5*time.Second, func() bool {
		attached = logs.FilterMessage("leaf attached").All()
		return len(attached) > 0
	}); err != nil || len(attached) != 1 {
		t.Fatalf("%d 'leaf attached' lines", len(attached))
	}
	sw, _ := attached[0].ContextMap()["software"].(string)
	if len(sw) > wire.MaxSoftwareLen || !strings.HasPrefix(sw, "canopy/canopy/") || !strings.Contains(sw, textsafe.Mark) {
		t.Fatalf("software logged as %q (%d bytes)", sw, len(sw))
	}
}

// recv reads the next envelope that is not guidance, which a supernode sends
// its leaves on its own schedule.
func recv(c *link.Conn, d time.Duration) (wire.Envelope, error) {
	for {
		e, err := c.Recv(d)
		if err != nil || e.Type != wire.TypeGuidance {
			return e, err
		}
	}
}

// TestRingHintsFromLeafHellos: the successors a leaf names in its hello are
// offered as ring hints (not this supernode, not an empty address), for
// DefaultHintTTL after the leaf attached.
func TestRingHintsFromLeafHellos(t *testing.T) {
	sn, addr := testSupernode(t, Config{})
	other, _ := identity.Generate()
	id, _ := identity.Generate()
	creds, _ := link.NewCredentials(id)
	hints := []wire.PeerInfo{{ID: other.ID, Control: "127.0.0.1:9"}, {ID: sn.ID(), Control: addr}, {ID: id.ID}}
	if _, e := dialAs(t, addr, creds, wire.Hello{Role: wire.RoleLeaf, Successors: hints}); e.Type != wire.TypeWelcome {
		t.Fatalf("leaf got %s", e.Type)
	}
	now := time.Now()
	if got := sn.RingHints(now); len(got) != 1 || got[0].ID != other.ID || got[0].Control != "127.0.0.1:9" {
		t.Fatalf("hints %+v, want only the other node", got)
	}
	if got := sn.RingHints(now.Add(DefaultHintTTL + time.Second)); len(got) != 0 {
		t.Fatalf("hints %+v after DefaultHintTTL, want none", got)
	}
}
