package link

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/wire"
)

func creds(t *testing.T) *Credentials {
	t.Helper()
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCredentials(id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serve accepts links on a loopback listener and sends them to the returned channel.
func serve(t *testing.T, c *Credentials) (string, <-chan *Conn, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns := make(chan *Conn, 4)
	errs := make(chan error, 4)
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			lc, err := Accept(context.Background(), raw, c, nil)
			if err != nil {
				errs <- err
				continue
			}
			conns <- lc
		}
	}()
	return ln.Addr().String(), conns, errs
}

func TestMutualAuthentication(t *testing.T) {
	server, client := creds(t), creds(t)
	addr, conns, _ := serve(t, server)
	c, err := Dial(context.Background(), addr, client, server.ID().ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close("test over")
	s := <-conns
	defer s.Close("test over")
	if c.Peer() != server.ID().ID || s.Peer() != client.ID().ID {
		t.Fatalf("peers: client sees %s, server sees %s", c.Peer().Short(), s.Peer().Short())
	}
	if err := c.SendBody(wire.TypePing, &wire.Ping{Nonce: 42}); err != nil {
		t.Fatal(err)
	}
	e, err := s.Recv(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var p wire.Ping
	if err := e.Decode(&p); err != nil || p.Nonce != 42 {
		t.Fatalf("ping: %v %+v", err, p)
	}
}

func TestWrongPeerRefused(t *testing.T) {
	server, client, other := creds(t), creds(t), creds(t)
	addr, _, _ := serve(t, server)
	_, err := Dial(context.Background(), addr, client, other.ID().ID, nil)
	if !errors.Is(err, ErrWrongPeer) {
		t.Fatalf("dial of an impostor: %v", err)
	}
}

func TestClientWithoutCertificateRefused(t *testing.T) {
	server := creds(t)
	addr, _, errs := serve(t, server)
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPN}, MinVersion: tls.VersionTLS13})
	if err == nil {
		// TLS 1.3 client may finish before the server rejects; the read fails.
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil {
		t.Fatal("anonymous client was served")
	}
	select {
	case err := <-errs:
		if err == nil {
			t.Fatal("no server error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server did not report the failed handshake")
	}
}

func TestMalformedFrameClosesLink(t *testing.T) {
	server, client := creds(t), creds(t)
	addr, conns, _ := serve(t, server)
	d := tls.Dialer{Config: client.ClientConfig(server.ID().ID)}
	raw, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	s := <-conns
	// A frame header that claims 64 MiB.
	raw.Write([]byte{0x04, 0, 0, 0})
	if _, err := s.Recv(5 * time.Second); !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("oversized frame: %v", err)
	}
	<-s.Done()
	if s.Reason() == "" {
		t.Fatal("no close reason recorded")
	}
}

func TestSendQueueBounded(t *testing.T) {
	server, client := creds(t), creds(t)
	addr, conns, _ := serve(t, server)
	c, err := Dial(context.Background(), addr, client, server.ID().ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close("done")
	s := <-conns // never read: the queue must fill instead of growing
	defer s.Close("done")
	data := make([]byte, 60000)
	rand.Read(data) // incompressible, so the frames really are large
	big, _ := wire.New(wire.TypePieceData, &wire.PieceData{Data: data})
	var full bool
	for i := 0; i < 50000 && !full; i++ {
		full = errors.Is(c.Send(big), ErrQueueFull)
	}
	if !full || c.Drops.Load() == 0 {
		t.Fatal("send queue never filled")
	}
}

func TestPingMeasuresRTT(t *testing.T) {
	server, client := creds(t), creds(t)
	addr, conns, _ := serve(t, server)
	c, err := Dial(context.Background(), addr, client, server.ID().ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close("test over")
	s := <-conns
	defer s.Close("test over")
	go s.Serve(5*time.Second, func(wire.Envelope) error { return nil })
	go c.Serve(5*time.Second, func(wire.Envelope) error { return nil })
	if c.RTT() != 0 {
		t.Fatalf("RTT %v before any ping", c.RTT())
	}
	// Each poll that finds no RTT yet sends another ping.
	testwait.Until(t, 5*time.Second, func() bool {
		if c.RTT() != 0 {
			return true
		}
		c.Ping()
		return false
	}, "no RTT measured: the pong was not matched to the ping")
}
