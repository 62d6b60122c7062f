package leaf

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/nat/ice"
	"github.com/canopy-p2p/canopy/transfer"
	"github.com/canopy-p2p/canopy/wire"
)

// fakeSupernode accepts leaves on loopback, welcomes them as a supernode and
// sends each the guidance g (none when nil); the accepted links come out of
// the returned channel.
func fakeSupernode(t *testing.T, g *wire.Guidance) (addr string, id identity.NodeID, links <-chan *link.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	sid, _ := identity.Generate()
	creds, _ := link.NewCredentials(sid)
	out := make(chan *link.Conn, 4)
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
			_ = c.SendBody(wire.TypeWelcome, &wire.Welcome{Role: wire.RoleSupernode})
			if g != nil {
				_ = c.SendBody(wire.TypeGuidance, g)
			}
			// Serve answers pings and keeps reading until the link closes.
			go c.Serve(time.Minute, func(wire.Envelope) error { return nil })
			out <- c
		}
	}()
	return ln.Addr().String(), sid.ID, out
}

func startTestLeaf(t *testing.T, seed string) *Leaf {
	t.Helper()
	id, _ := identity.Generate()
	creds, _ := link.NewCredentials(id)
	api, rtc := ice.NewAPI(ice.Config{LoopbackOnly: true})
	l, err := Start(Config{Creds: creds, Seeds: []string{seed}, Attach: 1,
		Transfer: transfer.Config{API: api, WebRTC: rtc}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// TestStepInHeededFromTheLastSupernode: a step-in request counts only from a
// supernode whose guidance showed a ring of one, only for maxAge, and only
// while the leaf is still attached to it.
func TestStepInHeededFromTheLastSupernode(t *testing.T) {
	addr, snID, links := fakeSupernode(t, &wire.Guidance{Supernodes: 1})
	l := startTestLeaf(t, addr)
	c := <-links
	// The guidance is sent before the link is handed out; wait until the
	// leaf has read it, or the request below could overtake it.
	testwait.Until(t, 5*time.Second, func() bool { _, ok := l.Guidance(); return ok }, "no guidance")
	if _, ok := l.StepInRequest(time.Now(), time.Minute); ok {
		t.Fatal("a step-in request before any was sent")
	}
	if err := c.SendBody(wire.TypeStepIn, &wire.StepIn{Reason: "the last supernode is stopping"}); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 5*time.Second, func() bool { return l.StepInStats().Heeded == 1 }, "the request was not heeded")
	r, ok := l.StepInRequest(time.Now(), time.Minute)
	if !ok || r.From != snID || r.Reason != "the last supernode is stopping" {
		t.Fatalf("StepInRequest = %+v, %v; want the request of %s", r, ok, snID.Short())
	}
	if _, ok := l.StepInRequest(r.At.Add(time.Minute+time.Millisecond), time.Minute); ok {
		t.Error("a request older than maxAge still counts")
	}
	// Once the asker has gone, the request is stale: the emergency
	// election takes over.
	c.Close("gone")
	testwait.Until(t, 5*time.Second, func() bool { _, ok := l.StepInRequest(time.Now(), time.Minute); return !ok },
		"a request from a supernode the leaf is no longer attached to still counts")
	if st := l.StepInStats(); st.Refused != 0 {
		t.Errorf("stats %+v, want nothing refused", st)
	}
}

// TestStepInRefusedWithOtherSupernodes: a supernode that has peers, or has
// sent no guidance yet, cannot make a leaf step in.
func TestStepInRefusedWithOtherSupernodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    *wire.Guidance
	}{
		{"a ring of three", &wire.Guidance{Supernodes: 3}},
		{"no guidance", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, _, links := fakeSupernode(t, tc.g)
			l := startTestLeaf(t, addr)
			c := <-links
			if tc.g != nil {
				testwait.Until(t, 5*time.Second, func() bool { _, ok := l.Guidance(); return ok }, "no guidance")
			}
			if err := c.SendBody(wire.TypeStepIn, &wire.StepIn{}); err != nil {
				t.Fatal(err)
			}
			testwait.Until(t, 5*time.Second, func() bool { return l.StepInStats().Refused == 1 }, "the request was not refused")
			if _, ok := l.StepInRequest(time.Now(), time.Minute); ok {
				t.Fatal("a refused request counts")
			}
			if len(l.Attachments()) != 1 {
				t.Fatal("a refused request cost the link")
			}
		})
	}
}
