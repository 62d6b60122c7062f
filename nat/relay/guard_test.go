package relay

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
)

// relayTCPClosed reports whether the server closed c: a read returns EOF or
// a reset rather than timing out.
func relayTCPClosed(t *testing.T, c net.Conn) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(relayWait))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil
}

// dialRelayTCPSilent opens a TCP connection from local (an address on
// loopback) to the relay's TCP listener and sends nothing.
func dialRelayTCPSilent(t *testing.T, r *Relay, local string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", r.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRelayTCPPendingPerAddr(t *testing.T) {
	const perAddr = 4
	r := newRelayForTest(t, func(c *Config) {
		c.Quotas.MaxPendingTCPPerAddr = perAddr
		c.Quotas.PendingTCPTimeout = time.Hour // only the cap is under test here
	})
	for range perAddr {
		dialRelayTCPSilent(t, r, "127.0.0.1")
	}
	testwait.Until(t, relayWait, func() bool { return r.Stats().PendingTCP == perAddr }, "waiting for the silent connections")
	extra := dialRelayTCPSilent(t, r, "127.0.0.1")
	if !relayTCPClosed(t, extra) {
		t.Fatal("connection over the per-address cap was not closed")
	}
	if s := r.Stats(); s.Refusals.TCPPerAddr != 1 || s.PendingTCP != perAddr {
		t.Fatalf("stats %+v", s)
	}

	// Another address is not affected: a leaf there allocates over TCP,
	// and its connection leaves the pending count once authenticated.
	cred := relayIssue(r, relayTestLeaf(1))
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	nc, err := d.Dial("tcp", r.TCPAddr().String())
	if err != nil {
		t.Skipf("no second loopback address: %v", err)
	}
	c := dialRelayTURNConn(t, nc, r.TCPAddr(), cred.Username, cred.Password)
	c.allocate(t)
	if s := r.Stats(); s.PendingTCP != perAddr || s.Allocations != 1 {
		t.Fatalf("after an authenticated TCP client: %+v", s)
	}
}

func TestRelayTCPPendingTotal(t *testing.T) {
	r := newRelayForTest(t, func(c *Config) {
		c.Quotas.MaxPendingTCP = 3
		c.Quotas.PendingTCPTimeout = time.Hour
	})
	for _, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		dialRelayTCPSilent(t, r, ip)
	}
	testwait.Until(t, relayWait, func() bool { return r.Stats().PendingTCP == 3 }, "waiting for the silent connections")
	if !relayTCPClosed(t, dialRelayTCPSilent(t, r, "127.0.0.4")) {
		t.Fatal("connection over the total pending cap was not closed")
	}
	if s := r.Stats(); s.Refusals.TCPPending != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRelayTCPPendingDeadline(t *testing.T) {
	r := newRelayForTest(t, func(c *Config) { c.Quotas.PendingTCPTimeout = 100 * time.Millisecond })
	silent := dialRelayTCPSilent(t, r, "127.0.0.1")
	// Bytes that are no authenticated request do not move the deadline.
	_, _ = silent.Write([]byte{0})
	if !relayTCPClosed(t, silent) {
		t.Fatal("silent connection still open")
	}
	testwait.Until(t, relayWait, func() bool {
		s := r.Stats()
		return s.Refusals.TCPNoAuth == 1 && s.PendingTCP == 0
	}, "waiting for the deadline to be counted")

	// An authenticated connection outlives the deadline.
	cred := relayIssue(r, relayTestLeaf(1))
	c := dialRelayTURN(t, r.TCPAddr(), true, cred.Username, cred.Password)
	rc := c.allocate(t)
	time.Sleep(300 * time.Millisecond) // past the pending deadline, well within the idle one
	relayEcho(t, rc, newRelayTestPeer(t), "still here")
	if s := r.Stats(); s.Refusals.TCPNoAuth != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRelayDetachRevokes(t *testing.T) {
	r := newRelayForTest(t, nil)
	leaf := relayTestLeaf(1)
	for _, tcp := range []bool{false, true} {
		cred := relayIssue(r, leaf)
		addr := r.UDPAddrs()[0]
		if tcp {
			addr = r.TCPAddr()
		}
		rc := dialRelayTURN(t, addr, tcp, cred.Username, cred.Password).allocate(t)
		relayEcho(t, rc, newRelayTestPeer(t), "before")

		if n := r.Detach(leaf); n != 1 {
			t.Fatalf("Detach closed %d allocations, want 1", n)
		}
		// The slot is free when Detach returns.
		if s := r.Stats(); s.Allocations != 0 || s.Attached != 0 {
			t.Fatalf("after Detach: %+v", s)
		}
		if r.TURNServers(leaf, time.Now()) != nil {
			t.Fatal("credentials issued to a detached leaf")
		}
		// The old credential no longer allocates.
		_, err := dialRelayTURN(t, r.UDPAddrs()[0], false, cred.Username, cred.Password).Allocate()
		if code := relayTURNCode(err); code != int(stun.CodeUnauthorized) {
			t.Fatalf("allocation with a detached leaf's credential: %v, want 401", err)
		}
		// Nor does it once the leaf attaches again: it belongs to the
		// earlier attachment. A fresh one works.
		r.Attach(leaf)
		_, err = dialRelayTURN(t, r.UDPAddrs()[0], false, cred.Username, cred.Password).Allocate()
		if code := relayTURNCode(err); code != int(stun.CodeUnauthorized) {
			t.Fatalf("allocation with an earlier attachment's credential: %v, want 401", err)
		}
		fresh := r.TURNServers(leaf, time.Now())[0]
		dialRelayTURN(t, r.UDPAddrs()[0], false, fresh.Username, fresh.Credential).allocate(t)
		r.Detach(leaf)
	}
	s := r.Stats()
	if s.Refusals.Revocations != 4 || s.Refusals.Detached < 2 || s.Refusals.Revoked < 2 || s.Allocations != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRelayFairShare(t *testing.T) {
	const perLeaf, total = 4, 8
	r := newRelayForTest(t, func(c *Config) {
		c.Quotas.MaxAllocationsPerLeaf = perLeaf
		c.Quotas.MaxAllocations = total
	})
	addr := r.UDPAddrs()[0]
	// Throw-away identities take every allocation.
	for i := range total / perLeaf {
		cred := relayIssue(r, relayTestLeaf(byte(10+i)))
		for range perLeaf {
			dialRelayTURN(t, addr, false, cred.Username, cred.Password).allocate(t)
		}
	}
	// An honest leaf still gets allocations: each from the leaf holding the
	// most, while it holds two more than the honest one. Three leaves
	// sharing eight allocations: 3, 3 and 2.
	honest := relayTestLeaf(1)
	cred := relayIssue(r, honest)
	var mine []net.PacketConn
	for range 2 {
		mine = append(mine, dialRelayTURN(t, addr, false, cred.Username, cred.Password).allocate(t))
	}
	if _, err := dialRelayTURN(t, addr, false, cred.Username, cred.Password).Allocate(); relayTURNCode(err) != int(stun.CodeAllocQuotaReached) {
		t.Fatalf("third allocation when no leaf holds two more: %v, want 486", err)
	}
	// The identities asking again cannot take them back: the honest leaf
	// does not hold two more than either.
	for i := range total / perLeaf {
		c := relayIssue(r, relayTestLeaf(byte(10+i)))
		for range 3 {
			if _, err := dialRelayTURN(t, addr, false, c.Username, c.Password).Allocate(); relayTURNCode(err) != int(stun.CodeAllocQuotaReached) {
				t.Fatalf("identity %d allocated again: %v, want 486", i, err)
			}
		}
	}
	s := r.Stats()
	if s.Allocations != total || s.Refusals.Evicted != 2 {
		t.Fatalf("stats %+v", s)
	}
	for _, l := range s.PerLeaf {
		if l.Leaf == honest.String() && l.Allocations != 2 {
			t.Fatalf("honest leaf holds %d allocations, want 2", l.Allocations)
		}
	}
	for _, rc := range mine {
		relayEcho(t, rc, newRelayTestPeer(t), "mine")
	}

	// A throw-away identity that leaves frees what it held.
	if n := r.Detach(relayTestLeaf(10)); n != 3 {
		t.Fatalf("Detach of an identity closed %d allocations, want 3", n)
	}
	if s := r.Stats(); s.Allocations != total-3 {
		t.Fatalf("after an identity left: %+v", s)
	}
}

// dialRelayTURNConn is dialRelayTURN over a TCP connection the test opened.
func dialRelayTURNConn(t *testing.T, nc net.Conn, server netip.AddrPort, user, pass string) *relayTURNClient {
	t.Helper()
	return turnClientOver(t, turn.NewSTUNConn(nc), server, user, pass)
}

// TestRelayTCPPerLeaf: one leaf's credential authenticates at most
// MaxTCPPerLeaf TCP connections at once, even when its allocation quota
// refuses what it asks on them (an Allocate refused with 486 still
// authenticates its connection); the next is refused and closed, and
// counted, another leaf is not affected, and a connection the leaf closes
// gives its place back.
func TestRelayTCPPerLeaf(t *testing.T) {
	const perLeaf = 3
	r := newRelayForTest(t, func(c *Config) {
		c.Quotas.MaxTCPPerLeaf = perLeaf
		c.Quotas.MaxAllocationsPerLeaf = 1
	})
	cred := relayIssue(r, relayTestLeaf(1))
	var held []*relayTURNClient
	for i := range perLeaf {
		c := dialRelayTURN(t, r.TCPAddr(), true, cred.Username, cred.Password)
		held = append(held, c)
		if i == 0 {
			c.allocate(t)
			continue
		}
		if _, err := c.Allocate(); relayTURNCode(err) != int(stun.CodeAllocQuotaReached) {
			t.Fatalf("connection %d: %v, want 486", i, err)
		}
	}
	over := dialRelayTURN(t, r.TCPAddr(), true, cred.Username, cred.Password)
	if _, err := over.Allocate(); err == nil || relayTURNCode(err) == int(stun.CodeAllocQuotaReached) {
		t.Fatalf("connection over the per-leaf cap: %v, want a refusal before the quota", err)
	}
	if s := r.Stats(); s.Refusals.TCPPerLeaf != 1 || s.Allocations != 1 {
		t.Fatalf("stats %+v", s)
	}
	// Another leaf allocates over TCP as before.
	other := relayIssue(r, relayTestLeaf(2))
	dialRelayTURN(t, r.TCPAddr(), true, other.Username, other.Password).allocate(t)
	// A connection the leaf closes frees its place.
	held[perLeaf-1].close()
	testwait.Until(t, relayWait, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.tcpPerLeaf[relayTestLeaf(1).String()] == perLeaf-1
	}, "waiting for the closed connection to be released")
	again := dialRelayTURN(t, r.TCPAddr(), true, cred.Username, cred.Password)
	if _, err := again.Allocate(); relayTURNCode(err) != int(stun.CodeAllocQuotaReached) {
		t.Fatalf("after one closed: %v, want 486 (authenticated, over the allocation quota)", err)
	}
	if s := r.Stats(); s.Refusals.TCPPerLeaf != 1 {
		t.Fatalf("stats %+v", s)
	}
	// Detaching the leaf closes them all and forgets the count.
	r.Detach(relayTestLeaf(1))
	testwait.Until(t, relayWait, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.tcpPerLeaf[relayTestLeaf(1).String()] == 0
	}, "waiting for the leaf's connections to close")
}
