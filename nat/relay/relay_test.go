package relay

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/logbridge"
	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

var relayLoopback = netip.MustParseAddr("127.0.0.1")

// newRelayForTest starts a relay on 127.0.0.1 (UDP and TCP, ephemeral ports)
// that may relay to loopback peers, with cfg adjusted by mutate.
func newRelayForTest(t testing.TB, mutate func(*Config)) *Relay {
	t.Helper()
	cfg := Config{
		ListenUDP: []string{"127.0.0.1:0"},
		ListenTCP: "127.0.0.1:0",
		RelayIP:   relayLoopback,
		Creds:     NewCreds(CredsConfig{}),
		AllowPeer: func(a netip.Addr) bool { return a.IsLoopback() },
	}
	if tt, ok := t.(*testing.T); ok {
		cfg.Logger = zaptest.NewLogger(tt, zaptest.Level(zap.InfoLevel))
	}
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("relay close: %v", err)
		}
	})
	return r
}

// relayTURNClient is a pion TURN client of a test relay.
type relayTURNClient struct {
	*turn.Client
	conn net.PacketConn
}

// dialRelayTURN connects a pion TURN client to server over UDP or TCP. It does not
// allocate.
func dialRelayTURN(t testing.TB, server netip.AddrPort, tcp bool, user, pass string) *relayTURNClient {
	t.Helper()
	var conn net.PacketConn
	if tcp {
		c, err := net.Dial("tcp", server.String())
		if err != nil {
			t.Fatal(err)
		}
		conn = turn.NewSTUNConn(c)
	} else {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if uc, ok := c.(*net.UDPConn); ok {
			_ = uc.SetReadBuffer(4 << 20)
			_ = uc.SetWriteBuffer(4 << 20)
		}
		conn = c
	}
	return turnClientOver(t, conn, server, user, pass)
}

// turnClientOver starts a pion TURN client on conn and closes both at the
// end of the test.
func turnClientOver(t testing.TB, conn net.PacketConn, server netip.AddrPort, user, pass string) *relayTURNClient {
	t.Helper()
	c, err := turn.NewClient(&turn.ClientConfig{
		TURNServerAddr: server.String(),
		Username:       user,
		Password:       pass,
		Conn:           conn,
		LoggerFactory:  logbridge.Pion(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	tc := &relayTURNClient{Client: c, conn: conn}
	t.Cleanup(tc.close)
	return tc
}

func (c *relayTURNClient) close() {
	c.Client.Close()
	_ = c.conn.Close()
}

// allocate allocates and registers the relayed conn's release for cleanup
// (before the client's own, so that the deallocation is sent first).
func (c *relayTURNClient) allocate(t testing.TB) net.PacketConn {
	t.Helper()
	rc, err := c.Allocate()
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// newRelayTestPeer is a UDP socket on loopback standing for the remote peer.
func newRelayTestPeer(t testing.TB) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(relayLoopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	_ = pc.SetReadBuffer(4 << 20)
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// relayTURNCode returns the TURN error code in err, or 0.
func relayTURNCode(err error) int {
	var te *stun.TurnError
	if errors.As(err, &te) {
		return int(te.ErrorCodeAttr.Code)
	}
	return 0
}

// relayWait is how long the relay tests wait for the relay to act: it works
// on real sockets and timers, which testing/synctest cannot drive, so they
// poll with a generous deadline.
const relayWait = 10 * time.Second

// relayEcho sends msg from the client through its allocation to peer, checks
// that it arrives from the relayed address, sends a reply back and checks
// that the client receives it.
func relayEcho(t *testing.T, rc net.PacketConn, peer *net.UDPConn, msg string) {
	t.Helper()
	if _, err := rc.WriteTo([]byte(msg), peer.LocalAddr()); err != nil {
		t.Fatalf("client write: %v", err)
	}
	buf := make([]byte, 1600)
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := peer.ReadFrom(buf)
	if err != nil {
		t.Fatalf("peer read: %v", err)
	}
	if string(buf[:n]) != msg {
		t.Fatalf("peer got %q, want %q", buf[:n], msg)
	}
	if from.String() != rc.LocalAddr().String() {
		t.Fatalf("peer got data from %s, want the relayed address %s", from, rc.LocalAddr())
	}
	reply := "re: " + msg
	if _, err := peer.WriteTo([]byte(reply), from); err != nil {
		t.Fatal(err)
	}
	_ = rc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err = rc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("client read: %v", err)
	}
	if string(buf[:n]) != reply || from.String() != peer.LocalAddr().String() {
		t.Fatalf("client got %q from %s, want %q from %s", buf[:n], from, reply, peer.LocalAddr())
	}
}

func TestRelayRelaysBothWays(t *testing.T) {
	for _, tcp := range []bool{false, true} {
		name := "udp"
		if tcp {
			name = "tcp"
		}
		t.Run(name, func(t *testing.T) {
			r := newRelayForTest(t, nil)
			leaf := relayTestLeaf(1)
			if s := r.TURNServers(leaf, time.Now()); s != nil {
				t.Fatalf("TURNServers for a leaf that is not attached = %+v", s)
			}
			r.Attach(leaf)
			servers := r.TURNServers(leaf, time.Now())
			if len(servers) != 2 || !strings.HasSuffix(servers[0].URL, "?transport=udp") ||
				!strings.HasSuffix(servers[1].URL, "?transport=tcp") {
				t.Fatalf("TURNServers = %+v", servers)
			}
			addr := r.UDPAddrs()[0]
			if tcp {
				addr = r.TCPAddr()
			}
			c := dialRelayTURN(t, addr, tcp, servers[0].Username, servers[0].Credential)
			rc := c.allocate(t)
			if got := rc.LocalAddr().(*net.UDPAddr).IP; !got.Equal(relayLoopback.AsSlice()) {
				t.Fatalf("relayed address %s, want RelayIP", got)
			}
			peer := newRelayTestPeer(t)
			for _, msg := range []string{"hello", "again"} { // first via Send indications, then maybe a channel
				relayEcho(t, rc, peer, msg)
			}

			s := r.Stats()
			if s.Allocations != 1 || s.Leaves != 1 || len(s.PerLeaf) != 1 || s.PerLeaf[0].Leaf != leaf.String() {
				t.Fatalf("stats %+v", s)
			}
			want := uint64(len("hello") + len("re: hello") + len("again") + len("re: again"))
			if s.BytesRelayed != want || s.PerLeaf[0].BytesRelayed != want || s.PacketsRelayed != 4 {
				t.Fatalf("relayed %d bytes (leaf %d) in %d packets, want %d in 4", s.BytesRelayed,
					s.PerLeaf[0].BytesRelayed, s.PacketsRelayed, want)
			}

			// Deallocating releases the slot.
			_ = rc.Close()
			testwait.Until(t, relayWait, func() bool { return r.Stats().Allocations == 0 }, "waiting for deallocation")
			if s := r.Stats(); s.Leaves != 0 || s.BytesRelayed != want {
				t.Fatalf("after deallocation: %+v", s)
			}
		})
	}
}

func TestRelayRefusesBadCredentials(t *testing.T) {
	r := newRelayForTest(t, nil)
	creds := r.cfg.Creds
	r.Attach(relayTestLeaf(1))
	good := creds.Issue(relayTestLeaf(1), time.Now())
	expired := creds.Issue(relayTestLeaf(1), time.Now().Add(-2*creds.TTL()))
	other := NewCreds(CredsConfig{}).Issue(relayTestLeaf(1), time.Now())
	exp, _, _ := strings.Cut(good.Username, ":")

	tests := []struct {
		name, user, pass string
	}{
		{"expired", expired.Username, expired.Password},
		{"wrong password", good.Username, good.Password[1:] + "A"},
		{"other leaf", exp + ":" + relayTestLeaf(2).String(), good.Password},
		{"malformed", "someone", good.Password},
		{"other supernode", other.Username, other.Password},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := r.Stats().RefusedAuth
			c := dialRelayTURN(t, r.UDPAddrs()[0], false, tt.user, tt.pass)
			_, err := c.Allocate()
			if code := relayTURNCode(err); code != int(stun.CodeUnauthorized) {
				t.Fatalf("allocate: %v (code %d), want 401", err, code)
			}
			if s := r.Stats(); s.RefusedAuth <= before || s.Allocations != 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}

	// A realm other than the relay's is refused before any key is derived
	// (pion's client always uses the realm the server announces, so this
	// is checked on the handler itself).
	if _, _, ok := r.authenticate(&turn.RequestAttributes{Username: good.Username, Realm: "elsewhere"}); ok {
		t.Fatal("foreign realm accepted")
	}
	if _, _, ok := r.authenticate(&turn.RequestAttributes{Username: good.Username, Realm: DefaultRealm}); !ok {
		t.Fatal("good credential refused")
	}
}

func TestRelayAllocationQuotas(t *testing.T) {
	t.Run("per leaf", func(t *testing.T) {
		r := newRelayForTest(t, func(c *Config) { c.Quotas.MaxAllocationsPerLeaf = 2 })
		cred := relayIssue(r, relayTestLeaf(1))
		var conns []net.PacketConn
		for range 2 {
			conns = append(conns, dialRelayTURN(t, r.UDPAddrs()[0], false, cred.Username, cred.Password).allocate(t))
		}
		_, err := dialRelayTURN(t, r.UDPAddrs()[0], false, cred.Username, cred.Password).Allocate()
		if code := relayTURNCode(err); code != int(stun.CodeAllocQuotaReached) {
			t.Fatalf("third allocation of one leaf: %v (code %d), want 486 Allocation Quota Reached", err, code)
		}
		// Another leaf is not affected, even over TCP.
		other := relayIssue(r, relayTestLeaf(2))
		dialRelayTURN(t, r.TCPAddr(), true, other.Username, other.Password).allocate(t)
		if s := r.Stats(); s.RefusedQuota != 1 || s.Allocations != 3 || s.Leaves != 2 {
			t.Fatalf("stats %+v", s)
		}
		// A freed slot can be taken again.
		_ = conns[0].Close()
		testwait.Until(t, relayWait, func() bool { return r.Stats().Allocations == 2 }, "waiting for deallocation")
		dialRelayTURN(t, r.UDPAddrs()[0], false, cred.Username, cred.Password).allocate(t)
	})
	t.Run("total", func(t *testing.T) {
		r := newRelayForTest(t, func(c *Config) { c.Quotas.MaxAllocations = 2 })
		for i := range 3 {
			cred := relayIssue(r, relayTestLeaf(byte(i)))
			c := dialRelayTURN(t, r.UDPAddrs()[0], false, cred.Username, cred.Password)
			if i < 2 {
				c.allocate(t)
				continue
			}
			if _, err := c.Allocate(); relayTURNCode(err) != int(stun.CodeAllocQuotaReached) {
				t.Fatalf("allocation beyond the total: %v, want 486", err)
			}
		}
	})
	t.Run("generator backstop", func(t *testing.T) {
		// Two Allocate requests of one leaf may pass the quota handler
		// together; the address generator refuses the one over quota.
		r := newRelayForTest(t, func(c *Config) { c.Quotas.MaxAllocationsPerLeaf = 1 })
		gen := &relayAddressGenerator{r: r}
		r.Attach(relayTestLeaf(1))
		leaf := relayTestLeaf(1).String()
		pc, _, err := gen.AllocatePacketConn(turn.AllocateListenerConfig{Network: "udp4", UserID: leaf})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := gen.AllocatePacketConn(turn.AllocateListenerConfig{Network: "udp4", UserID: leaf}); !errors.Is(err, ErrQuota) {
			t.Fatalf("second allocation: %v, want ErrQuota", err)
		}
		// pion would read the socket until it closes; stand in for it.
		go func() {
			buf := make([]byte, 10)
			for {
				if _, _, err := pc.ReadFrom(buf); err != nil {
					return
				}
			}
		}()
		_ = pc.Close()
		if _, _, err := gen.AllocatePacketConn(turn.AllocateListenerConfig{Network: "udp6", UserID: leaf}); err == nil {
			t.Fatal("IPv6 allocation on an IPv4 relay")
		}
		if _, _, err := gen.AllocatePacketConn(turn.AllocateListenerConfig{Network: "udp4"}); err == nil {
			t.Fatal("allocation without a user (EVEN-PORT probe)")
		}
	})
}

func TestRelayBandwidthQuota(t *testing.T) {
	const rateBps = 64 << 10
	burst := float64(relayMinBurst) // max(rate/2, 64 KiB)
	tests := []struct {
		name   string
		quotas Quotas
	}{
		{"per leaf", Quotas{MaxBytesPerSecondPerLeaf: rateBps, MaxBytesPerSecond: Unlimited}},
		{"total", Quotas{MaxBytesPerSecondPerLeaf: Unlimited, MaxBytesPerSecond: rateBps}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRelayForTest(t, func(c *Config) { c.Quotas = tt.quotas })
			cred := relayIssue(r, relayTestLeaf(1))
			rc := dialRelayTURN(t, r.UDPAddrs()[0], false, cred.Username, cred.Password).allocate(t)
			peer := newRelayTestPeer(t)

			// Offer 1.5 MiB as fast as the client goes: far above what the
			// bucket can pass in the time it takes.
			const size, count = 1200, 1300
			payload := bytes.Repeat([]byte{0xab}, size)
			received := make(chan int)
			go func() {
				buf := make([]byte, 2048)
				total := 0
				for {
					_ = peer.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
					n, _, err := peer.ReadFrom(buf)
					if err != nil {
						received <- total
						return
					}
					total += n
				}
			}()
			start := time.Now()
			for range count {
				if _, err := rc.WriteTo(payload, peer.LocalAddr()); err != nil {
					t.Fatal(err)
				}
			}
			got := <-received
			// The relay admitted bytes only inside [start, now]; a token
			// bucket passes at most burst + rate × that window.
			window := time.Since(start).Seconds()
			bound := burst + rateBps*window
			s := r.Stats()
			t.Logf("offered %d B, relay admitted %d B, peer got %d B, dropped %d datagrams; bound %.0f B over %.2fs",
				size*count, s.BytesRelayed, got, s.Dropped, bound, window)
			if float64(s.BytesRelayed) > bound || float64(got) > bound {
				t.Fatalf("relayed %d B (peer got %d B), more than the budget %.0f B", s.BytesRelayed, got, bound)
			}
			if got < size || s.Dropped == 0 || s.Dropped+s.PacketsRelayed != count {
				t.Fatalf("peer got %d B; %d dropped + %d relayed, want %d in all", got, s.Dropped, s.PacketsRelayed, count)
			}
		})
	}
}

func TestRelayCaps(t *testing.T) {
	t.Run("lifetime", func(t *testing.T) {
		r := newRelayForTest(t, func(c *Config) { c.Quotas.MaxAllocationLifetime = 300 * time.Millisecond })
		cred := relayIssue(r, relayTestLeaf(1))
		rc := dialRelayTURN(t, r.UDPAddrs()[0], false, cred.Username, cred.Password).allocate(t)
		peer := newRelayTestPeer(t)
		relayEcho(t, rc, peer, "before the cap")
		testwait.Until(t, relayWait, func() bool { s := r.Stats(); return s.Capped == 1 && s.Allocations == 0 }, "waiting for the lifetime cap")
		// The relayed address is gone: the peer's datagrams reach no one.
		if _, err := peer.WriteTo([]byte("after"), rc.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		_ = rc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, _, err := rc.ReadFrom(make([]byte, 100)); err == nil {
			t.Fatalf("client received %d bytes after the cap", n)
		}
	})
	t.Run("volume", func(t *testing.T) {
		const max = 10_000
		r := newRelayForTest(t, func(c *Config) { c.Quotas.MaxBytesPerAllocation = max })
		cred := relayIssue(r, relayTestLeaf(1))
		rc := dialRelayTURN(t, r.UDPAddrs()[0], false, cred.Username, cred.Password).allocate(t)
		peer := newRelayTestPeer(t)
		payload := make([]byte, 1000)
		for range 20 {
			if _, err := rc.WriteTo(payload, peer.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
		testwait.Until(t, relayWait, func() bool { s := r.Stats(); return s.Capped == 1 && s.Allocations == 0 }, "waiting for the volume cap")
		if s := r.Stats(); s.BytesRelayed > max+1000 {
			t.Fatalf("relayed %d bytes past a cap of %d", s.BytesRelayed, max)
		}
	})
}

func TestRelayRefusesPrivatePeers(t *testing.T) {
	r := newRelayForTest(t, func(c *Config) { c.AllowPeer = nil })
	cred := relayIssue(r, relayTestLeaf(1))
	rc := dialRelayTURN(t, r.UDPAddrs()[0], false, cred.Username, cred.Password).allocate(t)
	peer := newRelayTestPeer(t)
	_, err := rc.WriteTo([]byte("to the supernode's loopback"), peer.LocalAddr())
	if code := relayTURNCode(err); code != int(stun.CodeForbidden) {
		t.Fatalf("write to a relayLoopback peer: %v (code %d), want 403", err, code)
	}
	if s := r.Stats(); s.RefusedPeer == 0 || s.BytesRelayed != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestPublicPeer(t *testing.T) {
	for addr, want := range map[string]bool{
		"8.8.8.8":          true,
		"203.0.113.7":      true, // documentation range: the NAT lab relays there
		"2001:db8::1":      true,
		"2a00:1450::1":     true,
		"::ffff:8.8.8.8":   true,
		"127.0.0.1":        false,
		"::1":              false,
		"10.1.2.3":         false,
		"172.16.0.1":       false,
		"192.168.1.1":      false,
		"100.64.0.1":       false,
		"169.254.1.1":      false,
		"fe80::1":          false,
		"fd00::1":          false,
		"224.0.0.1":        false,
		"ff02::1":          false,
		"0.0.0.0":          false,
		"0.1.2.3":          false,
		"255.255.255.255":  false,
		"240.0.0.1":        false,
		"198.18.0.1":       false,
		"::ffff:127.0.0.1": false,
		"::":               false,
	} {
		if got := PublicPeer(netip.MustParseAddr(addr)); got != want {
			t.Errorf("PublicPeer(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestRelayConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.RelayIP = netip.MustParseAddr("198.51.100.7")
	good.Creds = NewCreds(CredsConfig{})
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Config){
		"no creds":         func(c *Config) { c.Creds = nil },
		"no relay IP":      func(c *Config) { c.RelayIP = netip.Addr{} },
		"wildcard IP":      func(c *Config) { c.RelayIP = netip.IPv4Unspecified() },
		"family mismatch":  func(c *Config) { c.RelayBindIP = netip.IPv6Unspecified() },
		"half a range":     func(c *Config) { c.RelayPortMin = 40000 },
		"inverted range":   func(c *Config) { c.RelayPortMin, c.RelayPortMax = 50000, 40000 },
		"no listener":      func(c *Config) { c.ListenUDP, c.ListenTCP = nil, "" },
		"negative sockets": func(c *Config) { c.ListenUDPSockets = -1 },
		"negative quota":   func(c *Config) { c.Quotas.MaxAllocations = -2 },
	} {
		c := good
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted", name)
		}
	}
}

// The relay binds relay sockets inside a configured port range.
func TestRelayPortRange(t *testing.T) {
	probe, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := probe.LocalAddr().(*net.UDPAddr).Port
	_ = probe.Close()
	lo, hi := uint16(base), uint16(min(base+15, 65535))
	r := newRelayForTest(t, func(c *Config) { c.RelayPortMin, c.RelayPortMax = lo, hi })
	cred := relayIssue(r, relayTestLeaf(1))
	rc := dialRelayTURN(t, r.UDPAddrs()[0], false, cred.Username, cred.Password).allocate(t)
	if p := rc.LocalAddr().(*net.UDPAddr).Port; p < int(lo) || p > int(hi) {
		t.Fatalf("relay port %d outside %d-%d", p, lo, hi)
	}
}

// Close with allocations open over UDP and TCP, and an idle TCP connection,
// ends every goroutine the relay and pion's server started, without waiting
// for the clients to hang up. (The package's TestMain checks for leaks only
// after every test, by which time the clients have closed too.)
func TestRelayCloseLeavesNoGoroutines(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	func() {
		cfg := Config{
			ListenUDP: []string{"127.0.0.1:0"},
			ListenTCP: "127.0.0.1:0",
			RelayIP:   relayLoopback,
			Creds:     NewCreds(CredsConfig{}),
			AllowPeer: func(netip.Addr) bool { return true },
		}
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		r.Attach(relayTestLeaf(1))
		cred := cfg.Creds.Issue(relayTestLeaf(1), time.Now())
		peer, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(relayLoopback, 0)))
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		var clients []*relayTURNClient
		var relayed []net.PacketConn
		for _, tcp := range []bool{false, true} {
			addr := r.UDPAddrs()[0]
			if tcp {
				addr = r.TCPAddr()
			}
			// Not dialRelayTURN: its cleanup would run after the leak check.
			var conn net.PacketConn
			if tcp {
				c, err := net.Dial("tcp", addr.String())
				if err != nil {
					t.Fatal(err)
				}
				conn = turn.NewSTUNConn(c)
			} else if conn, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			c, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: addr.String(), Username: cred.Username,
				Password: cred.Password, Conn: conn, LoggerFactory: logbridge.Pion(nil)})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Listen(); err != nil {
				t.Fatal(err)
			}
			tc := &relayTURNClient{Client: c, conn: conn}
			clients = append(clients, tc)
			rc, err := c.Allocate()
			if err != nil {
				t.Fatal(err)
			}
			relayed = append(relayed, rc)
			relayEcho(t, rc, peer, "hi")
		}
		// An idle TCP connection that never authenticates.
		idle, err := net.Dial("tcp", r.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer idle.Close()
		testwait.Until(t, relayWait, func() bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			return len(r.tcpConns) == 2
		}, "waiting for the idle connection")

		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if s := r.Stats(); s.Allocations != 0 {
			t.Fatalf("allocations left after Close: %+v", s)
		}
		// Only the clients' goroutines may be left: the relay must not
		// count on its clients hanging up.
		goleak.VerifyNone(t, ignore,
			goleak.IgnoreAnyFunction("github.com/pion/turn/v5.(*Client).Listen.func1"),
			goleak.IgnoreAnyFunction("github.com/pion/turn/v5/internal/client.(*PeriodicTimer).Start.func1"))
		for i, c := range clients {
			_ = relayed[i].Close()
			c.close()
		}
	}()
	goleak.VerifyNone(t, ignore)
}

// relayCountingConn counts the datagrams read from a listening socket.
type relayCountingConn struct {
	net.PacketConn
	reads atomic.Int64
}

func (c *relayCountingConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, from, err := c.PacketConn.ReadFrom(p)
	if err == nil {
		c.reads.Add(1)
	}
	return n, from, err
}

// Two listening sockets share one port (SO_REUSEPORT) and the kernel spreads
// clients over them; each client keeps to one socket, so every allocation
// works. This also runs the relay on injected sockets, which are read one
// datagram at a time instead of in batches.
func TestRelaySharedPortListeners(t *testing.T) {
	if !relayReusePort {
		t.Skip("SO_REUSEPORT balancing is Linux only")
	}
	var listeners []*relayCountingConn
	var mu sync.Mutex
	r := newRelayForTest(t, func(c *Config) {
		c.ListenTCP = ""
		c.ListenUDPSockets = 2
		c.Quotas.MaxAllocationsPerLeaf = Unlimited
		c.ListenPacket = func(network, address string) (net.PacketConn, error) {
			if network != "udp" { // a relay socket
				return net.ListenPacket(network, address)
			}
			lc := net.ListenConfig{Control: controlRelayReusePort}
			pc, err := lc.ListenPacket(context.Background(), network, address)
			if err != nil {
				return nil, err
			}
			cc := &relayCountingConn{PacketConn: pc}
			mu.Lock()
			listeners = append(listeners, cc)
			mu.Unlock()
			return cc, nil
		}
	})
	if len(listeners) != 2 {
		t.Fatalf("%d listening sockets, want 2", len(listeners))
	}
	cred := relayIssue(r, relayTestLeaf(1))
	peer := newRelayTestPeer(t)
	// With 20 clients, all landing on one socket has odds of 2 in a million.
	for i := range 20 {
		rc := dialRelayTURN(t, r.UDPAddrs()[0], false, cred.Username, cred.Password).allocate(t)
		relayEcho(t, rc, peer, "client "+strconv.Itoa(i))
	}
	for i, l := range listeners {
		if l.reads.Load() == 0 {
			t.Errorf("listening socket %d got no datagram", i)
		}
	}
	if s := r.Stats(); s.Allocations != 20 {
		t.Fatalf("%d allocations, want 20", s.Allocations)
	}
}

// relayIssue attaches leaf to r and issues it a credential, as a supernode
// does when the leaf attaches.
func relayIssue(r *Relay, leaf identity.NodeID) Credential {
	r.Attach(leaf)
	s := r.TURNServers(leaf, time.Now())
	return Credential{Username: s[0].Username, Password: s[0].Credential}
}

// TestRelaySetRelayIP: a supernode that learns its public address after
// the relay started (a home router's mapping) moves the relay's announced
// address; new allocations and URLs name it, and an address the relay
// sockets cannot serve is refused without changing anything.
func TestRelaySetRelayIP(t *testing.T) {
	r := newRelayForTest(t, func(c *Config) { c.RelayBindIP = relayLoopback })
	moved := netip.MustParseAddr("127.0.0.2")
	for _, bad := range []netip.Addr{{}, netip.IPv4Unspecified(), netip.MustParseAddr("2001:db8::1")} {
		if err := r.SetRelayIP(bad); !errors.Is(err, ErrConfig) {
			t.Errorf("SetRelayIP(%v) = %v, want ErrConfig", bad, err)
		}
	}
	if got := r.RelayIP(); got != relayLoopback {
		t.Fatalf("after refused changes RelayIP = %s, want %s", got, relayLoopback)
	}
	if err := r.SetRelayIP(netip.AddrFrom16(moved.As16())); err != nil { // a mapped form is unmapped
		t.Fatal(err)
	}
	if got := r.RelayIP(); got != moved {
		t.Fatalf("RelayIP = %s, want %s", got, moved)
	}
	leaf := relayTestLeaf(1)
	cred := relayIssue(r, leaf)
	for _, s := range r.TURNServers(leaf, time.Now()) {
		if !strings.HasPrefix(s.URL, "turn:"+moved.String()+":") {
			t.Errorf("TURN URL %s does not name %s", s.URL, moved)
		}
	}
	rc := dialRelayTURN(t, r.UDPAddrs()[0], false, cred.Username, cred.Password).allocate(t)
	if got := rc.LocalAddr().(*net.UDPAddr).IP; !got.Equal(moved.AsSlice()) {
		t.Fatalf("relayed address %s, want the new RelayIP %s", got, moved)
	}
}
