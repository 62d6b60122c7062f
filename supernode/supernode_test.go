package supernode

import (
	"context"
	"net"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/wire"
)

// testSupernode starts a supernode with its own loopback control listener
// that hands every link saying hello as a leaf to AcceptLeaf.
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
	go func() {
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
				if h.Role == wire.RoleSupernode {
					_ = sn.AcceptPeer(c, h)
				} else {
					_ = sn.AcceptLeaf(c, h)
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); sn.Close() })
	return sn, ln.Addr().String()
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

// TestNonMemberCannotRoute checks that a node which says hello as a
// supernode but is not in the ring cannot inject signals or hits.
func TestNonMemberCannotRoute(t *testing.T) {
	sn, addr := testSupernode(t, Config{})
	victim, victimID := testLeafID(t, addr)
	id, _ := identity.Generate()
	creds, _ := link.NewCredentials(id)
	c, err := link.Dial(context.Background(), addr, creds, identity.NodeID{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close("done")
	c.SendBody(wire.TypeHello, &wire.Hello{Role: wire.RoleSupernode, Control: "127.0.0.1:1"})
	if e, err := recv(c, 5*time.Second); err != nil || e.Type != wire.TypeWelcome {
		t.Fatalf("no welcome: %v", err)
	}
	c.SendBody(wire.TypeSignal, &wire.Signal{To: victimID, Via: sn.ID(), Kind: wire.SignalOffer, Data: "v=0"})
	c.SendBody(wire.TypeQuery, &wire.Query{Words: "anything"})
	waitStats(t, sn, func(st Stats) bool { return st.FromNonMembers == 2 })
	if e, err := recv(victim, 300*time.Millisecond); err == nil && e.Type == wire.TypeSignal {
		t.Fatal("a non-member's signal reached a leaf")
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
