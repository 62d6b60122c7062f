package link

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/canopy-p2p/canopy/internal/configtest"
	"github.com/canopy-p2p/canopy/wire"
)

func tcp(ip string, port int) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: port} }

func TestAcceptLimitsDefaults(t *testing.T) {
	configtest.ZeroMeansDefault(t, AcceptLimits{}.withDefaults(), DefaultAcceptLimits())
	if err := DefaultAcceptLimits().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []AcceptLimits{{MaxPending: -1}, {MaxPendingPerAddr: -1}} {
		if err := bad.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: Validate() = %v, want ErrConfig", bad, err)
		}
		if _, err := NewGate(bad); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: NewGate = %v, want ErrConfig", bad, err)
		}
	}
}

func TestGateLimits(t *testing.T) {
	g, err := NewGate(AcceptLimits{MaxPending: 5, MaxPendingPerAddr: 2})
	if err != nil {
		t.Fatal(err)
	}
	admit := func(a net.Addr) (func(), Reason) {
		t.Helper()
		rel, why, ok := g.Admit(a)
		if ok != (why == 0) || ok != (rel != nil) {
			t.Fatalf("Admit(%v) = %v, %v, %v: inconsistent", a, rel != nil, why, ok)
		}
		return rel, why
	}
	a1, _ := admit(tcp("192.0.2.1", 1))
	admit(tcp("192.0.2.1", 2))
	if _, why := admit(tcp("192.0.2.1", 3)); why != ReasonPendingAddr {
		t.Fatalf("third from one address: %v, want the per-address refusal", why)
	}
	// IPv6 addresses in one /56 are one address; in another /56, another.
	admit(tcp("2001:db8:0:1::1", 1))
	admit(tcp("2001:db8:0:2::7", 1))
	if _, why := admit(tcp("2001:db8:0:ff::9", 1)); why != ReasonPendingAddr {
		t.Fatalf("third from one /56: %v, want the per-address refusal", why)
	}
	admit(tcp("2001:db8:1::1", 1)) // another /56: the fifth slot
	if _, why := admit(tcp("198.51.100.1", 1)); why != ReasonPendingFull {
		t.Fatalf("sixth: %v, want the total refusal", why)
	}
	// A released slot is free again, once however often it is released.
	a1()
	a1()
	if g.Pending() != 4 {
		t.Fatalf("pending %d after one release, want 4", g.Pending())
	}
	admit(tcp("192.0.2.1", 4))
	if _, why := admit(tcp("192.0.2.9", 1)); why != ReasonPendingFull {
		t.Fatalf("after a double release: %v, want the total refusal", why)
	}
}

func TestGateLoopback(t *testing.T) {
	for _, limit := range []bool{false, true} {
		g, _ := NewGate(AcceptLimits{MaxPending: 10, MaxPendingPerAddr: 1, LimitLoopback: limit})
		g.Admit(tcp("127.0.0.1", 1))
		_, _, ok := g.Admit(tcp("127.0.0.1", 2))
		if ok == limit {
			t.Errorf("LimitLoopback %v: second loopback connection admitted %v", limit, ok)
		}
		_, _, ok = g.Admit(tcp("::ffff:127.0.0.1", 3))
		if ok == limit {
			t.Errorf("LimitLoopback %v: IPv4-mapped loopback admitted %v", limit, ok)
		}
	}
}

// clock is a settable clock for the refusal log.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestRefusalsRateLimitLog(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	clk := &clock{t: time.Unix(1e9, 0)}
	r := NewRefusals(zap.New(core), clk.now)
	from, other := tcp("192.0.2.1", 1), tcp("192.0.2.2", 1)
	for range 100 {
		r.Refuse(ReasonStranger, from, "")
	}
	r.Refuse(ReasonStranger, other, strings.Repeat("é", 100_000))
	r.Refuse(ReasonPendingAddr, from, "")
	if n := logs.Len(); n != 3 {
		t.Fatalf("%d lines for 102 refusals of 3 (reason, address) pairs, want 3", n)
	}
	for _, e := range logs.All() {
		if d, ok := e.ContextMap()["detail"].(string); ok && len(d) > wire.MaxReasonLen {
			t.Errorf("detail of %d bytes logged", len(d))
		}
	}
	clk.t = clk.t.Add(DefaultRefusalLogInterval)
	r.Refuse(ReasonStranger, from, "")
	last := logs.All()[logs.Len()-1]
	if got := last.ContextMap()["suppressed"]; got != uint64(99) {
		t.Fatalf("the next line reports %v suppressed, want 99: %v", got, last.ContextMap())
	}
	c := r.Snapshot()
	if c.Stranger != 102 || c.PendingAddr != 1 || c.PendingFull != 0 {
		t.Fatalf("counts %+v", c)
	}
}

// A flood from more addresses than the log remembers writes one line per
// address it remembers and then one for all the others, until the interval
// has passed and the table is swept.
func TestRefusalsLogBounded(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	clk := &clock{t: time.Unix(1e9, 0)}
	r := NewRefusals(zap.New(core), clk.now)
	addr := func(i int) net.Addr { return &net.TCPAddr{IP: net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)), Port: 1} }
	for i := range 3 * DefaultRefusalLogKeys {
		r.Refuse(ReasonHandshake, addr(i), "")
	}
	if n := logs.Len(); n != DefaultRefusalLogKeys+1 {
		t.Fatalf("%d lines for %d addresses, want %d", n, 3*DefaultRefusalLogKeys, DefaultRefusalLogKeys+1)
	}
	if from := logs.All()[logs.Len()-1].ContextMap()["from"]; from != "many addresses" {
		t.Fatalf("the overflow line is from %v", from)
	}
	clk.t = clk.t.Add(DefaultRefusalLogInterval)
	r.Refuse(ReasonHandshake, addr(5*DefaultRefusalLogKeys), "")
	if last := logs.All()[logs.Len()-1].ContextMap(); last["from"] != "10.0.20.0/32" {
		t.Fatalf("after the interval a new address has its own line again: %v", last)
	}
	r.mu.Lock()
	n := len(r.lines)
	r.mu.Unlock()
	if n > DefaultRefusalLogKeys+int(reasonEnd) {
		t.Fatalf("the log remembers %d lines", n)
	}
	if got := r.Snapshot().Handshake; got != uint64(3*DefaultRefusalLogKeys+1) {
		t.Fatalf("counted %d", got)
	}
}

// rawPair returns a link accepted by Accept and the raw TLS connection that
// dialled it, through which a test writes what a hostile peer would.
func rawPair(t *testing.T) (*Conn, *tls.Conn) {
	t.Helper()
	server, client := creds(t), creds(t)
	addr, conns, errs := serve(t, server)
	d := tls.Dialer{Config: client.ClientConfig(server.ID().ID)}
	raw, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	select {
	case s := <-conns:
		t.Cleanup(func() { s.Close("test over") })
		return s, raw.(*tls.Conn)
	case err := <-errs:
		t.Fatal(err)
	}
	return nil, nil
}

// TestClaimedMegabyteCostsLittle is the attack that took a node's heap to
// 3.1 GB: after the TLS handshake, a frame header claiming MaxEnvelope, a
// few bytes, and silence. Reading it costs about FrameChunk, not the claim.
func TestClaimedMegabyteCostsLittle(t *testing.T) {
	const links = 10
	var total uint64
	for range links {
		s, raw := rawPair(t)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		hdr := binary.BigEndian.AppendUint32(nil, wire.MaxEnvelope)
		hdr = append(hdr, 1, 2, 3)
		if _, err := raw.Write(hdr); err != nil {
			t.Fatal(err)
		}
		raw.Close()
		if _, err := s.Recv(5 * time.Second); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("a frame cut short: %v, want ErrUnexpectedEOF", err)
		}
		runtime.ReadMemStats(&after)
		total += after.TotalAlloc - before.TotalAlloc
	}
	per := total / links
	t.Logf("%d bytes allocated per link for a header claiming %d bytes", per, wire.MaxEnvelope)
	if per > 2*wire.FrameChunk {
		t.Fatalf("a header claiming %d bytes cost %d bytes per link; bound %d", wire.MaxEnvelope, per, 2*wire.FrameChunk)
	}
}

// TestRecvMaxRefusesLargeHello: the first frame of a link is read under the
// hello bound, so a claimed megabyte is refused at its header.
func TestRecvMaxRefusesLargeHello(t *testing.T) {
	s, raw := rawPair(t)
	raw.Write([]byte{0, 0x10, 0, 0}) // 1 MiB
	if _, err := s.RecvMax(5*time.Second, wire.MaxHelloEnvelope); !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("a 1 MiB first frame: %v, want ErrTooLarge", err)
	}
	<-s.Done()
}

// TestReasonBounded: a close reason quoting a peer (its goodbye, say) is
// bounded before it is kept, logged and sent back.
func TestReasonBounded(t *testing.T) {
	s, _ := rawPair(t)
	s.Close("peer said bye: " + strings.Repeat("x\n", 500_000))
	if r := s.Reason(); len(r) > wire.MaxReasonLen || strings.Contains(r, "\n") || !strings.HasPrefix(r, "peer said bye: x") {
		t.Fatalf("reason %q (%d bytes)", r, len(r))
	}
}
