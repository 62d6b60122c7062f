package supernode

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/wire"
)

// candidateLeaf is a leaf that may be named a successor: it listens for
// dial-back probes on loopback and answers them, says hello as a candidate,
// and passes one dial-back. Its own ID and credentials let a test start a
// supernode as that same node, as a promotion does.
type candidateLeaf struct {
	conn    *link.Conn
	id      identity.NodeID
	creds   *link.Credentials
	control string // its listener, which answers probes
}

func newCandidateLeaf(t *testing.T, snAddr string) *candidateLeaf {
	t.Helper()
	id, _ := identity.Generate()
	creds, _ := link.NewCredentials(id)
	control := answerProbes(t, creds)
	c, err := link.Dial(context.Background(), snAddr, creds, identity.NodeID{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close("test over") })
	if err := c.SendBody(wire.TypeHello, &wire.Hello{Role: wire.RoleLeaf, Candidate: true, Control: control}); err != nil {
		t.Fatal(err)
	}
	if e, err := recvSkipping(c, 5*time.Second); err != nil || e.Type != wire.TypeWelcome {
		t.Fatalf("no welcome: %v %s", err, e.Type)
	}
	if err := c.SendBody(wire.TypeDialBack, &wire.DialBack{Control: control}); err != nil {
		t.Fatal(err)
	}
	if res := expectDialBack(t, c); !res.OK {
		t.Fatalf("the leaf's dial-back failed: %+v", res)
	}
	return &candidateLeaf{conn: c, id: id.ID, creds: creds, control: control}
}

// recvSkipping reads the next envelope that is neither guidance nor ICE
// servers, which a supernode sends its leaves on its own schedule.
func recvSkipping(c *link.Conn, d time.Duration) (wire.Envelope, error) {
	for {
		e, err := recv(c, d)
		if err != nil || e.Type != wire.TypeICEServers {
			return e, err
		}
	}
}

func expectDialBack(t *testing.T, c *link.Conn) wire.DialBackResult {
	t.Helper()
	e, err := recvSkipping(c, 10*time.Second)
	if err != nil || e.Type != wire.TypeDialBackResult {
		t.Fatalf("no dial-back result: %v %s", err, e.Type)
	}
	var res wire.DialBackResult
	if err := e.Decode(&res); err != nil {
		t.Fatal(err)
	}
	return res
}

// TestStepDownHandsTheRingToASuccessor: the last supernode dials its
// successor back afresh, tells it so, asks it to step in, and returns it once
// it has joined the ring.
func TestStepDownHandsTheRingToASuccessor(t *testing.T) {
	sn, addr := testSupernode(t, Config{})
	leaf := newCandidateLeaf(t, addr)

	type result struct {
		p   wire.PeerInfo
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := sn.StepDown(context.Background(), "stopping", 10*time.Second)
		done <- result{p, err}
	}()
	if res := expectDialBack(t, leaf.conn); !res.OK {
		t.Fatalf("fresh dial-back: %+v", res)
	}
	e, err := recvSkipping(leaf.conn, 5*time.Second)
	if err != nil || e.Type != wire.TypeStepIn {
		t.Fatalf("no step-in request: %v %s", err, e.Type)
	}
	// The leaf promotes: a supernode with its key joins the ring through
	// the one stepping down.
	// Its control address is the leaf's listener, which answers the ring's
	// verification dial as the node would.
	succ, err := Start(Config{Creds: leaf.creds, Control: leaf.control, GossipAddr: "127.0.0.1:0",
		GossipProfile: "local", Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer succ.Close()
	if _, err := succ.Join(context.Background(), []string{addr}); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.p.ID != leaf.id || r.p.Control != leaf.control {
		t.Fatalf("StepDown = %+v, %v; want the successor %s", r.p, r.err, leaf.id.Short())
	}
	if st := sn.Stats(); st.StepInsAsked != 1 || st.StepInsJoined != 1 || st.StepInsFailed != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Now that the ring has two members, there is nobody to replace.
	if _, err := sn.StepDown(context.Background(), "stopping", time.Second); !errors.Is(err, ErrNotLast) {
		t.Fatalf("StepDown with a peer in the ring: %v, want ErrNotLast", err)
	}
}

// TestStepDownWithoutSuccessor: a successor that does not join in time is
// passed over and counted, and without any the caller is told so at once.
func TestStepDownWithoutSuccessor(t *testing.T) {
	sn, addr := testSupernode(t, Config{})
	testLeaf(t, addr) // not a candidate: never a successor
	start := time.Now()
	if _, err := sn.StepDown(context.Background(), "stopping", 10*time.Second); !errors.Is(err, ErrNoSuccessor) {
		t.Fatalf("StepDown without candidates: %v, want ErrNoSuccessor", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("StepDown without candidates took %v", d)
	}

	leaf := newCandidateLeaf(t, addr)
	if _, err := sn.StepDown(context.Background(), "stopping", 200*time.Millisecond); !errors.Is(err, ErrNoSuccessor) {
		t.Fatalf("StepDown with a successor that never joins: %v, want ErrNoSuccessor", err)
	}
	if st := sn.Stats(); st.StepInsAsked != 1 || st.StepInsFailed != 1 || st.StepInsJoined != 0 {
		t.Fatalf("stats %+v", st)
	}
	// It was asked, and still is a leaf of this supernode.
	if res := expectDialBack(t, leaf.conn); !res.OK {
		t.Fatalf("fresh dial-back: %+v", res)
	}
	if e, err := recvSkipping(leaf.conn, 5*time.Second); err != nil || e.Type != wire.TypeStepIn {
		t.Fatalf("no step-in request: %v %s", err, e.Type)
	}
}
