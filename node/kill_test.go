package node_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/demo"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/node"
	"github.com/canopy-p2p/canopy/promotion"
	"github.com/canopy-p2p/canopy/wire"
)

// ticketSignal is a TLS session cache that only reports that the server sent
// a session ticket. A TLS 1.3 server that asks for a client certificate sends
// its tickets once it has verified that certificate, at the very end of its
// handshake: it is how a client learns that the server side is done too.
type ticketSignal chan struct{}

func (ticketSignal) Get(string) (*tls.ClientSessionState, bool) { return nil, false }

func (s ticketSignal) Put(string, *tls.ClientSessionState) {
	select {
	case s <- struct{}{}:
	default:
	}
}

// TestKillClosesALinkThatSaysHelloLate: a leaf's link that completed its TLS
// handshake before the node was killed, and says hello only after the
// supernode role has stopped, must still be closed by the node. Kill stops
// the role before it closes the control listener and waits for the accept
// goroutines, so the hello reaches a stopped supernode; a link nobody
// closes keeps its writer goroutine (and its socket) after the node is gone.
// In the emulation this is a leaf re-attaching to a supernode that is being
// killed.
func TestKillClosesALinkThatSaysHelloLate(t *testing.T) {
	p := emulationPolicy()
	cfg := demo.NodeOptions(t.TempDir(), "sn", testLog(t))
	cfg.Policy, cfg.Consent = &p, promotion.ConsentAlways
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if n.Role() != node.RoleSupernode {
		t.Fatalf("role %s, want a supernode", n.Role())
	}

	id, _ := identity.Generate()
	creds, _ := link.NewCredentials(id)
	tcfg := creds.ClientConfig(n.ID())
	ticket := make(ticketSignal, 1)
	tcfg.ClientSessionCache = ticket
	c, err := (&tls.Dialer{Config: tcfg}).DialContext(context.Background(), "tcp", n.Control())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := c.(*tls.Conn)
	// The reader processes the session ticket, then reads what the node
	// sends until the link ends.
	tc.SetReadDeadline(time.Now().Add(30 * time.Second))
	frames := make(chan wire.Envelope, 16)
	readErr := make(chan error, 1)
	go func() {
		for {
			e, err := wire.ReadFrame(tc)
			if err != nil {
				readErr <- err
				return
			}
			frames <- e
		}
	}()
	select {
	case <-ticket:
	case <-time.After(10 * time.Second):
		t.Fatal("no session ticket: the node did not finish the TLS handshake")
	}

	killed := make(chan error, 1)
	go func() { killed <- n.Kill() }()
	// The listener closes after the supernode role has been aborted: once
	// new connections are refused, the hello below reaches a stopped role.
	testwait.Until(t, 10*time.Second, func() bool {
		raw, err := net.Dial("tcp", n.Control())
		if err == nil {
			raw.Close()
		}
		return err != nil
	}, "the killed node's control listener still accepts connections")
	hello, _ := wire.New(wire.TypeHello, &wire.Hello{Role: wire.RoleLeaf})
	if err := wire.WriteFrame(tc, hello); err != nil {
		t.Fatal(err)
	}
	select {
	case <-killed:
	case <-time.After(20 * time.Second):
		t.Fatal("Kill did not return")
	}
	// The node must end the link (a Bye, then EOF) rather than leave it open
	// until the read deadline.
	tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		select {
		case e := <-frames:
			if e.Type == wire.TypeWelcome {
				t.Fatal("a killed node welcomed a leaf")
			}
		case err := <-readErr:
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the killed node left the link open")
			}
			return
		}
	}
}
