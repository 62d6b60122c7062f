package node_test

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/demo"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/wire"
)

// TestBadFramesCloseOnlyThatLink sends a supernode garbage of several kinds —
// not TLS at all, an oversized frame, a malformed envelope, a message a leaf
// may not send — and checks that each offending link is closed with a logged
// reason while the supernode keeps serving its real leaves.
func TestBadFramesCloseOnlyThatLink(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	core, logs := observer.New(zapcore.InfoLevel)
	files := demo.SampleFiles(2, 1<<10)
	net1, err := demo.Start(ctx, t.TempDir(), 1, 2, files, "-", zap.New(core))
	if net1 != nil {
		defer net1.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := net1.WaitSettled(ctx); err != nil {
		t.Fatal(err)
	}
	sn := net1.Supernodes[0]

	// Not TLS: the handshake fails and the connection is dropped.
	raw, err := net.Dial("tcp", sn.Control())
	if err != nil {
		t.Fatal(err)
	}
	raw.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	raw.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := raw.Read(make([]byte, 1)); err == nil {
		// TLS alerts may be sent; the connection must still end.
		_, err = raw.Read(make([]byte, 4096))
	}
	raw.Close()

	cases := []struct {
		name   string
		send   func(c *tls.Conn) error
		reason string
	}{
		{"oversized frame", func(c *tls.Conn) error { _, err := c.Write([]byte{0x7f, 0xff, 0xff, 0xff}); return err }, "too large"},
		{"malformed envelope", func(c *tls.Conn) error {
			_, err := c.Write([]byte{0, 0, 0, 25, 1, byte(wire.TypeIndexUpdate), 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0xff, 0xff, 0xff, 0xff})
			return err
		}, "malformed"},
		{"message a leaf may not send", func(c *tls.Conn) error {
			e, _ := wire.New(wire.TypeManifest, &wire.Manifest{})
			b, _ := wire.Marshal(e)
			_, err := c.Write(append([]byte{0, 0, 0, byte(len(b))}, b...))
			return err
		}, "unexpected"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, _ := identity.Generate()
			creds, _ := link.NewCredentials(id)
			d := tls.Dialer{Config: creds.ClientConfig(sn.ID())}
			c, err := d.DialContext(ctx, "tcp", sn.Control())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tc2 := c.(*tls.Conn)
			hello, _ := wire.New(wire.TypeHello, &wire.Hello{Role: wire.RoleLeaf, Software: "attacker"})
			if err := wire.WriteFrame(tc2, hello); err != nil {
				t.Fatal(err)
			}
			if e, err := wire.ReadFrame(tc2); err != nil || e.Type != wire.TypeWelcome {
				t.Fatalf("no welcome: %v %v", err, e.Type)
			}
			if err := tc.send(tc2); err != nil {
				t.Fatal(err)
			}
			// The supernode closes the link: reads end (after an optional Bye).
			tc2.SetReadDeadline(time.Now().Add(15 * time.Second))
			for {
				if _, err := wire.ReadFrame(tc2); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						t.Fatal("the supernode kept the link open")
					}
					break
				}
			}
			testwait.Until(t, 5*time.Second, func() bool { return logged(logs, id.ID.Short(), tc.reason) },
				"no log line says why the link to %s closed (want %q)", id.ID.Short(), tc.reason)
		})
	}

	// The real leaves are still served: a search across them still works.
	res, err := net1.Leaves[0].Search(ctx, api.SearchRequest{Words: "sunrise", TimeoutMS: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hits) == 0 {
		t.Fatal("the supernode stopped answering its leaves after the bad links")
	}
	if n := sn.Status().Leaves; n != 3 { // two leaves and the supernode's own leaf side
		t.Fatalf("supernode has %d leaves after the attacks, want 3", n)
	}
}

func logged(logs *observer.ObservedLogs, peer, reason string) bool {
	for _, e := range logs.FilterMessage("link closed").All() {
		ctx := e.ContextMap()
		if ctx["peer"] == peer && strings.Contains(strings.ToLower(ctx["reason"].(string)), reason) {
			return true
		}
	}
	return false
}
