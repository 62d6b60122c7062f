package leaf

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/nat/ice"
	"github.com/canopy-p2p/canopy/transfer"
	"github.com/canopy-p2p/canopy/wire"
)

// promotingNode answers the first refusals dials as a leaf does ("not a
// supernode"), then welcomes as a supernode: a node that promoted.
func promotingNode(t *testing.T, refusals int32) (addr string, id identity.NodeID, dials *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	sid, _ := identity.Generate()
	creds, _ := link.NewCredentials(sid)
	dials = new(atomic.Int32)
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			c, err := link.Accept(context.Background(), raw, creds, nil)
			if err != nil {
				continue
			}
			if _, err := c.Recv(5 * time.Second); err != nil {
				c.Close("no hello")
				continue
			}
			if dials.Add(1) <= refusals {
				_ = c.SendBody(wire.TypeRefuse, &wire.Refuse{Reason: wire.RefuseNotSupernode})
				c.CloseQuiet(wire.RefuseNotSupernode)
				continue
			}
			_ = c.SendBody(wire.TypeWelcome, &wire.Welcome{Role: wire.RoleSupernode})
			go c.Serve(time.Minute, func(wire.Envelope) error { return nil })
		}
	}()
	return ln.Addr().String(), sid.ID, dials
}

// TestPromotedCandidateDialledAtOnce: a candidate that refused as a leaf,
// several times, is dialled as soon as a supernode names it as a
// supernode, not after its back-off (which has grown past 10 s here).
func TestPromotedCandidateDialledAtOnce(t *testing.T) {
	snAddr, _, links := fakeSupernode(t, nil)
	xAddr, xID, dials := promotingNode(t, 7)
	id, _ := identity.Generate()
	creds, _ := link.NewCredentials(id)
	api, rtc := ice.NewAPI(ice.Config{LoopbackOnly: true})
	l, err := Start(Config{Creds: creds, Seeds: []string{snAddr, xAddr}, Attach: 2, RetryBackoff: 100 * time.Millisecond,
		Transfer: transfer.Config{API: api, WebRTC: rtc}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	var sn *link.Conn
	select {
	case sn = <-links:
	case <-time.After(10 * time.Second):
		t.Fatal("the leaf never attached to the supernode")
	}
	// Seven refusals: 0.1 + 0.2 + … + 3.2 s of back-off, the next 12.8 s.
	testwait.Until(t, 20*time.Second, func() bool { return dials.Load() == 7 }, "x refused %d times, want 7", dials.Load())
	time.Sleep(200 * time.Millisecond) // the leaf has recorded the seventh failure
	// x has promoted; the supernode says so in its guidance.
	named := time.Now()
	if err := sn.SendBody(wire.TypeGuidance, &wire.Guidance{Supernodes: 2, Peers: []wire.PeerInfo{{ID: xID, Control: xAddr}}}); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 5*time.Second, func() bool {
		for _, a := range l.Attachments() {
			if a.ID == xID {
				return true
			}
		}
		return false
	}, "the leaf did not attach to x within 5 s of x being named a supernode (its back-off was 12.8 s)")
	t.Logf("attached to x %v after it was named a supernode", time.Since(named).Round(time.Millisecond))
}
