package supernode

import (
	"context"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/wire"
)

// linkPair returns the two ends of a fresh link on loopback: the end a
// node's listener accepted and the end that dialled it.
func linkPair(t *testing.T) (accepted, dialled *link.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverID, _ := identity.Generate()
	serverCreds, _ := link.NewCredentials(serverID)
	clientID, _ := identity.Generate()
	clientCreds, _ := link.NewCredentials(clientID)
	type result struct {
		c   *link.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			done <- result{nil, err}
			return
		}
		c, err := link.Accept(context.Background(), raw, serverCreds, nil)
		done <- result{c, err}
	}()
	dialled, err = link.Dial(context.Background(), ln.Addr().String(), clientCreds, serverID.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		dialled.Close("test over")
		t.Fatal(r.err)
	}
	return r.c, dialled
}

// TestAcceptLeafAfterCloseClosesTheLink hands a leaf's link to a supernode
// that has already closed, as a node's accept goroutine does when the
// supernode role stops (a crash emulation, a demotion) between the hello and
// AcceptLeaf. AcceptLeaf owns the link it is given: it must close it, or the
// link's writer goroutine and its socket outlive everything.
func TestAcceptLeafAfterCloseClosesTheLink(t *testing.T) {
	for _, stop := range []struct {
		name string
		stop func(*Supernode) error
	}{{"Close", (*Supernode).Close}, {"Abort", (*Supernode).Abort}} {
		t.Run(stop.name, func(t *testing.T) {
			id, _ := identity.Generate()
			creds, _ := link.NewCredentials(id)
			sn, err := Start(Config{Creds: creds, Control: "127.0.0.1:1", GossipAddr: "127.0.0.1:0",
				GossipProfile: "local", Logger: zaptest.NewLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			if err := stop.stop(sn); err != nil {
				t.Fatal(err)
			}
			// What the stopped ring leaves winding down is not this test's
			// concern; the link's goroutines are.
			ignore := goleak.IgnoreCurrent()

			accepted, dialled := linkPair(t)
			if err := sn.AcceptLeaf(accepted, wire.Hello{Role: wire.RoleLeaf}); err == nil {
				t.Fatal("a closed supernode accepted a leaf")
			}
			select {
			case <-accepted.Done():
			case <-time.After(5 * time.Second):
				t.Error("AcceptLeaf refused the link but left it open")
			}
			dialled.Close("test over")
			goleak.VerifyNone(t, ignore)
		})
	}
}
