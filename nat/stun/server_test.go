package stun

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/nat"
	pionstun "github.com/pion/stun/v4"
	"golang.org/x/time/rate"
)

// stunTestAddrs are the four sockets of an RFC 5780 test server, indexed as
// Server.socks.
var stunTestAddrs = []netip.AddrPort{
	netip.MustParseAddrPort("198.51.100.10:3478"),
	netip.MustParseAddrPort("198.51.100.10:3479"),
	netip.MustParseAddrPort("198.51.100.11:3478"),
	netip.MustParseAddrPort("198.51.100.11:3479"),
}

// newHandleServer builds a server without sockets for driving handle.
func newHandleServer(rfc5780 bool, cfg ServerConfig) *Server {
	cfg.Primary = stunTestAddrs[0]
	if rfc5780 {
		cfg.Alternate = stunTestAddrs[3]
	}
	s := newSTUNServerState(cfg.withDefaults())
	n := 1
	if rfc5780 {
		n = 4
	}
	for i := range n {
		s.socks = append(s.socks, stunSocket{addr: stunTestAddrs[i]})
	}
	return s
}

// bindingRequest builds a Binding request with the given extra setters.
func bindingRequest(t testing.TB, setters ...pionstun.Setter) *pionstun.Message {
	t.Helper()
	m, err := pionstun.Build(append([]pionstun.Setter{pionstun.TransactionID, pionstun.BindingRequest}, setters...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// changeRequest is a CHANGE-REQUEST setter.
type changeRequest uint32

func (c changeRequest) AddTo(m *pionstun.Message) error {
	var v [4]byte
	binary.BigEndian.PutUint32(v[:], uint32(c))
	m.Add(pionstun.AttrChangeRequest, v[:])
	return nil
}

// rawAttr adds an arbitrary attribute.
type rawAttr struct {
	t pionstun.AttrType
	v []byte
}

func (a rawAttr) AddTo(m *pionstun.Message) error { m.Add(a.t, a.v); return nil }

func decodeResponse(t *testing.T, b []byte) *pionstun.Message {
	t.Helper()
	m := &pionstun.Message{Raw: append([]byte(nil), b...)}
	if err := m.Decode(); err != nil {
		t.Fatalf("response does not decode: %v", err)
	}
	return m
}

func TestSTUNHandleRFC5780(t *testing.T) {
	s := newHandleServer(true, ServerConfig{})
	src := netip.MustParseAddrPort("203.0.113.5:40000")
	for _, c := range []struct {
		name   string
		on     int
		change uint32
		via    int
	}{
		{"plain on primary", 0, 0, 0},
		{"change IP and port", 0, stunChangeIP | stunChangePort, 3},
		{"change port", 0, stunChangePort, 1},
		{"change IP", 0, stunChangeIP, 2},
		{"plain on other", 3, 0, 3},
		{"change both from other", 3, stunChangeIP | stunChangePort, 0},
		{"zero flags", 2, 0, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			var setters []pionstun.Setter
			if c.change != 0 || c.name == "zero flags" {
				setters = append(setters, changeRequest(c.change))
			}
			req := bindingRequest(t, setters...)
			var a, b pionstun.Message
			out, via := s.handle(req.Raw, src, c.on, time.Now(), &a, &b)
			if out == nil {
				t.Fatal("no response")
			}
			if via != c.via {
				t.Errorf("sent from socket %d, want %d", via, c.via)
			}
			m := decodeResponse(t, out)
			if m.Type != pionstun.BindingSuccess || m.TransactionID != req.TransactionID {
				t.Fatalf("response %v", m)
			}
			var x pionstun.XORMappedAddress
			if err := x.GetFrom(m); err != nil || stunAddrPort(x.IP, x.Port) != src {
				t.Errorf("XOR-MAPPED-ADDRESS %v (%v), want %s", x, err, src)
			}
			var ro pionstun.ResponseOrigin
			if err := ro.GetFrom(m); err != nil || stunAddrPort(ro.IP, ro.Port) != stunTestAddrs[c.via] {
				t.Errorf("RESPONSE-ORIGIN %v (%v), want %s", ro, err, stunTestAddrs[c.via])
			}
			var oa pionstun.OtherAddress
			if err := oa.GetFrom(m); err != nil || stunAddrPort(oa.IP, oa.Port) != stunTestAddrs[c.on^3] {
				t.Errorf("OTHER-ADDRESS %v (%v), want %s", oa, err, stunTestAddrs[c.on^3])
			}
			if len(out) > stunMaxResponse {
				t.Errorf("response of %d bytes", len(out))
			}
		})
	}
}

func TestSTUNHandleErrorsAndDrops(t *testing.T) {
	src := netip.MustParseAddrPort("203.0.113.5:40000")
	plain := newHandleServer(false, ServerConfig{})
	full := newHandleServer(true, ServerConfig{})

	errorCode := func(t *testing.T, out []byte) (pionstun.ErrorCode, pionstun.UnknownAttributes) {
		t.Helper()
		m := decodeResponse(t, out)
		if m.Type != pionstun.BindingError {
			t.Fatalf("type %v, want a Binding error", m.Type)
		}
		var ec pionstun.ErrorCodeAttribute
		if err := ec.GetFrom(m); err != nil {
			t.Fatal(err)
		}
		var ua pionstun.UnknownAttributes
		_ = ua.GetFrom(m)
		return ec.Code, ua
	}
	var a, b pionstun.Message

	t.Run("single address refuses CHANGE-REQUEST", func(t *testing.T) {
		out, via := plain.handle(bindingRequest(t, changeRequest(stunChangeIP)).Raw, src, 0, time.Now(), &a, &b)
		code, ua := errorCode(t, out)
		if code != pionstun.CodeUnknownAttribute || len(ua) != 1 || ua[0] != pionstun.AttrChangeRequest || via != 0 {
			t.Errorf("code %d, unknown %v, via %d", code, ua, via)
		}
	})
	t.Run("single address answers without RFC 5780 attributes", func(t *testing.T) {
		out, _ := plain.handle(bindingRequest(t).Raw, src, 0, time.Now(), &a, &b)
		m := decodeResponse(t, out)
		if m.Contains(pionstun.AttrOtherAddress) || m.Contains(pionstun.AttrResponseOrigin) || !m.Contains(pionstun.AttrXORMappedAddress) {
			t.Errorf("attributes %v", m.Attributes)
		}
	})
	t.Run("bad CHANGE-REQUEST length", func(t *testing.T) {
		out, _ := full.handle(bindingRequest(t, rawAttr{pionstun.AttrChangeRequest, []byte{0, 0, 0, 0, 0, 0, 0, 6}}).Raw, src, 0, time.Now(), &a, &b)
		if code, _ := errorCode(t, out); code != pionstun.CodeBadRequest {
			t.Errorf("code %d", code)
		}
	})
	t.Run("unknown comprehension-required attributes", func(t *testing.T) {
		req := bindingRequest(t, rawAttr{0x0031, []byte{1}}, rawAttr{0x0032, nil}, rawAttr{0x0033, nil},
			rawAttr{0x0034, nil}, rawAttr{0x0035, nil}, rawAttr{0x8099, []byte{1, 2}})
		out, _ := full.handle(req.Raw, src, 0, time.Now(), &a, &b)
		code, ua := errorCode(t, out)
		if code != pionstun.CodeUnknownAttribute || len(ua) != stunMaxUnknown || ua[0] != 0x0031 {
			t.Errorf("code %d, unknown %v", code, ua)
		}
	})
	t.Run("ICE check attributes are understood", func(t *testing.T) {
		req := bindingRequest(t, pionstun.NewUsername("a:b"), rawAttr{pionstun.AttrPriority, []byte{0, 0, 0, 1}},
			rawAttr{pionstun.AttrUseCandidate, nil}, pionstun.NewShortTermIntegrity("pw"), pionstun.Fingerprint)
		out, _ := full.handle(req.Raw, src, 0, time.Now(), &a, &b)
		m := decodeResponse(t, out)
		if m.Type != pionstun.BindingSuccess {
			t.Fatalf("type %v", m.Type)
		}
		if err := pionstun.Fingerprint.Check(m); err != nil {
			t.Errorf("response FINGERPRINT: %v", err)
		}
	})

	before := full.Stats()
	drops := []struct {
		name string
		pkt  []byte
	}{
		{"empty", nil},
		{"text", []byte("GET / HTTP/1.1\r\n\r\n")},
		{"oversized", make([]byte, stunMaxRequest+1)},
		{"short length", func() []byte {
			r := append([]byte(nil), bindingRequest(t, pionstun.NewSoftware("x")).Raw...)
			return r[:len(r)-4]
		}()},
		{"binding indication", bindingRequest(t, pionstun.NewType(pionstun.MethodBinding, pionstun.ClassIndication)).Raw},
		{"binding response", bindingRequest(t, pionstun.BindingSuccess).Raw},
		{"allocate request", bindingRequest(t, pionstun.NewType(pionstun.MethodAllocate, pionstun.ClassRequest)).Raw},
		{"bad fingerprint", func() []byte {
			r := append([]byte(nil), bindingRequest(t, pionstun.Fingerprint).Raw...)
			r[len(r)-1] ^= 1
			return r
		}()},
	}
	for _, d := range drops {
		if out, _ := full.handle(d.pkt, src, 0, time.Now(), &a, &b); out != nil {
			t.Errorf("%s: answered", d.name)
		}
	}
	after := full.Stats()
	dropped := (after.DroppedOversized - before.DroppedOversized) + (after.DroppedNotSTUN - before.DroppedNotSTUN) +
		(after.DroppedMalformed - before.DroppedMalformed) + (after.DroppedUnsupported - before.DroppedUnsupported)
	if dropped != uint64(len(drops)) || after.Received-before.Received != uint64(len(drops)) {
		t.Errorf("stats before %+v after %+v", before, after)
	}
}

func TestSTUNRateLimit(t *testing.T) {
	s := newHandleServer(false, ServerConfig{SourceRate: 1, SourceBurst: 3, TotalRate: 1, TotalBurst: 5, MaxSources: 2})
	now := time.Unix(1_000_000, 0)
	var a, b pionstun.Message
	req := bindingRequest(t).Raw
	answered := func(src string) bool {
		out, _ := s.handle(req, netip.MustParseAddrPort(src), 0, now, &a, &b)
		return out != nil
	}
	for i := range 3 {
		if !answered("203.0.113.1:1000") {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	if answered("203.0.113.1:1001") {
		t.Error("fourth request from the same address (other port) answered")
	}
	if !answered("203.0.113.2:1000") {
		t.Error("another source refused")
	}
	// The table holds two sources, both active: a third is refused.
	if answered("203.0.113.3:1000") {
		t.Error("third source answered while the table is full")
	}
	// IPv6 sources share a budget per /64.
	s6 := newHandleServer(false, ServerConfig{SourceRate: 1, SourceBurst: 1, TotalRate: 100, TotalBurst: 100, MaxSources: 10})
	if out, _ := s6.handle(req, netip.MustParseAddrPort("[2001:db8::1]:1"), 0, now, &a, &b); out == nil {
		t.Fatal("first IPv6 request refused")
	}
	if out, _ := s6.handle(req, netip.MustParseAddrPort("[2001:db8::2]:1"), 0, now, &a, &b); out != nil {
		t.Error("same /64 answered beyond its budget")
	}
	if out, _ := s6.handle(req, netip.MustParseAddrPort("[2001:db8:0:1::1]:1"), 0, now, &a, &b); out == nil {
		t.Error("another /64 refused")
	}
	// Later, idle sources have refilled and are swept, making room.
	now = now.Add(10 * time.Second)
	if !answered("203.0.113.3:1000") {
		t.Error("new source refused after the others went idle")
	}
	// The total budget: 5 at once, then 1/s.
	st := newHandleServer(false, ServerConfig{SourceRate: 100, SourceBurst: 100, TotalRate: 1, TotalBurst: 5, MaxSources: 100})
	n := 0
	for i := range 20 {
		if out, _ := st.handle(req, netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), 1), 0, now, &a, &b); out != nil {
			n++
		}
	}
	if n != 5 {
		t.Errorf("total budget let %d responses through, want 5", n)
	}
	if got := st.Stats().DroppedRateLimited; got != 15 {
		t.Errorf("DroppedRateLimited = %d", got)
	}
}

func TestSTUNServerConfig(t *testing.T) {
	p := netip.MustParseAddrPort("198.51.100.10:3478")
	for _, c := range []struct {
		name   string
		cfg    ServerConfig
		wantOK bool
	}{
		{"single", ServerConfig{Primary: p}, true},
		{"single any address", ServerConfig{Primary: netip.MustParseAddrPort("0.0.0.0:0")}, true},
		{"full", ServerConfig{Primary: p, Alternate: netip.MustParseAddrPort("198.51.100.11:3479")}, true},
		{"no primary", ServerConfig{}, false},
		{"same IP", ServerConfig{Primary: p, Alternate: netip.MustParseAddrPort("198.51.100.10:3479")}, false},
		{"same port", ServerConfig{Primary: p, Alternate: netip.MustParseAddrPort("198.51.100.11:3478")}, false},
		{"families", ServerConfig{Primary: p, Alternate: netip.MustParseAddrPort("[2001:db8::1]:3479")}, false},
		{"unspecified", ServerConfig{Primary: netip.MustParseAddrPort("0.0.0.0:3478"), Alternate: netip.MustParseAddrPort("198.51.100.11:3479")}, false},
		{"port zero", ServerConfig{Primary: netip.MustParseAddrPort("198.51.100.10:0"), Alternate: netip.MustParseAddrPort("198.51.100.11:3479")}, false},
	} {
		if err := c.cfg.Validate(); (err == nil) != c.wantOK {
			t.Errorf("%s: err = %v", c.name, err)
		}
	}
}

// TestSTUNServerLoopback runs a single-address server on real loopback
// sockets and discovery against it: no NAT, mapping endpoint-independent,
// filtering unknown (one address only).
func TestSTUNServerLoopback(t *testing.T) {
	s, err := NewServer(ServerConfig{Primary: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr := s.Addrs()[0]
	if addr.Port() == 0 {
		t.Fatalf("address %s", addr)
	}
	b, err := Discover(context.Background(), DiscoverConfig{Servers: []netip.AddrPort{addr}, RTO: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if b.NATed || b.UDPBlocked || b.Mapping != nat.EndpointIndependent || b.Filtering != nat.DependenceUnknown || b.RFC5780 {
		t.Errorf("behaviour %+v", b)
	}
	if b.Public != b.Local || !b.Public.Addr().IsLoopback() {
		t.Errorf("public %s local %s", b.Public, b.Local)
	}
	if got := b.Classify(); got != "public/no NAT" {
		t.Errorf("Classify = %q", got)
	}

	// Garbage gets no answer and is counted.
	c, err := net.Dial("udp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("not stun")); err != nil {
		t.Fatal(err)
	}
	// The check below reports what the counters say if they never move.
	_ = testwait.For(5*time.Second, func() bool { return s.Stats().DroppedNotSTUN != 0 })
	if st := s.Stats(); st.DroppedNotSTUN != 1 || st.Answered == 0 {
		t.Errorf("stats %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// FuzzSTUNHandle feeds arbitrary datagrams to the request handler of an
// RFC 5780 server: it must never panic, answer at most with a bounded
// response that decodes, carries the request's transaction ID, and leaves
// from one of the server's sockets.
func FuzzSTUNHandle(f *testing.F) {
	seed := func(setters ...pionstun.Setter) {
		m, err := pionstun.Build(append([]pionstun.Setter{pionstun.TransactionID, pionstun.BindingRequest}, setters...)...)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(m.Raw, uint8(0))
	}
	seed()
	seed(pionstun.Fingerprint)
	seed(changeRequest(stunChangeIP | stunChangePort))
	seed(changeRequest(stunChangePort), pionstun.Fingerprint)
	seed(pionstun.NewUsername("a:b"), pionstun.NewShortTermIntegrity("pw"), pionstun.Fingerprint)
	seed(rawAttr{0x0031, []byte{1, 2, 3}})
	seed(pionstun.NewSoftware("canopy"))
	f.Add([]byte{}, uint8(1))
	f.Add([]byte("\x00\x01\x00\x00\x21\x12\xa4\x42012345678901"), uint8(2))

	s := newHandleServer(true, ServerConfig{SourceRate: rate.Inf, SourceBurst: 1, TotalRate: rate.Inf, TotalBurst: 1})
	src := netip.MustParseAddrPort("[2001:db8::7]:5000")
	now := time.Unix(0, 0)
	var a, b pionstun.Message
	f.Fuzz(func(t *testing.T, pkt []byte, on uint8) {
		sock := int(on % 4)
		out, via := s.handle(pkt, src, sock, now, &a, &b)
		if out == nil {
			return
		}
		if len(out) > stunMaxResponse {
			t.Fatalf("response of %d bytes", len(out))
		}
		if via < 0 || via > 3 {
			t.Fatalf("via socket %d", via)
		}
		m := &pionstun.Message{Raw: append([]byte(nil), out...)}
		if err := m.Decode(); err != nil {
			t.Fatalf("response does not decode: %v", err)
		}
		if !stunHeaderValid(out) || m.TransactionID != [pionstun.TransactionIDSize]byte(pkt[8:20]) {
			t.Fatalf("response header or transaction ID wrong")
		}
	})
}
