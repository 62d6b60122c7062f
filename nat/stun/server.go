package stun

// This file holds the STUN service a supernode runs for its leaves.
//
// Server answers Binding requests (RFC 8489, formerly RFC 5389) with the
// requester's public transport address in XOR-MAPPED-ADDRESS, which is how a
// leaf learns its server-reflexive ICE candidate. When the supernode has two
// public IP addresses it also serves the NAT behaviour discovery of RFC 5780:
// it listens on both addresses × two ports, tells clients the "other" address
// (OTHER-ADDRESS) and where each response left from (RESPONSE-ORIGIN), and
// honours CHANGE-REQUEST by answering from the socket that differs in IP
// and/or port. Discover (discover.go) is the matching client.
//
// A STUN server answers unauthenticated UDP from anyone, so it is bounded:
// packets larger than a Binding request can reasonably be are dropped unread,
// anything that is not a well-formed STUN Binding request gets no answer, and
// answers are rate limited per source address (IPv6 per /64) and in total, so
// that the server cannot be used as a reflector against a spoofed victim. A
// response is never larger than ~100 bytes (stunMaxResponse); with IP and
// UDP headers counted that is at most about twice the smallest request a
// client can send, so the server is no amplifier either.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	pionstun "github.com/pion/stun/v4"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

const (
	// stunMaxRequest is the largest datagram the server reads as a request.
	// A Binding request is a 20-byte header plus a few small attributes; an
	// ICE connectivity check with a long USERNAME, PRIORITY, ICE-CONTROLLING,
	// MESSAGE-INTEGRITY and FINGERPRINT stays under 200 bytes. Anything larger
	// is not a request this server answers.
	stunMaxRequest = 512
	// stunReadBuffer is larger than stunMaxRequest so that an oversized
	// datagram is seen as oversized instead of silently truncated into
	// something that might parse.
	stunReadBuffer = 2048
	// stunMaxResponse bounds every response the server builds: header (20) +
	// XOR-MAPPED-ADDRESS, RESPONSE-ORIGIN and OTHER-ADDRESS for IPv6 (3 × 24)
	// + FINGERPRINT (8) = 100 bytes; an error response is smaller.
	stunMaxResponse = 128
	// stunMaxUnknown bounds how many unknown attribute types a 420 response
	// lists: enough for a client to see what went wrong, never more bytes
	// than the request spent on them.
	stunMaxUnknown = 4
	// stunMaxReadErrors is how many read errors in a row make a reader give
	// up: single errors happen on UDP sockets (ICMP-induced errors on some
	// systems), an unbroken run means the socket is broken.
	stunMaxReadErrors = 100
)

// stunMagicCookie is the fixed header word of RFC 5389 and later (§5);
// pion does not export it.
const stunMagicCookie = 0x2112A442

// CHANGE-REQUEST flags (RFC 5780 §7.2).
const (
	stunChangeIP   = 0x04
	stunChangePort = 0x02
)

// Socket indices of a Server: bit 1 selects the IP address (0 primary,
// 1 alternate) and bit 0 the port, so "change IP" flips bit 1, "change port"
// flips bit 0 and OTHER-ADDRESS, which differs in both, is index ^ 3.
const (
	stunSockFlipIP   = 2
	stunSockFlipPort = 1
)

// ServerConfig configures a Server. Primary is required; everything
// else has a default (DefaultServerConfig).
type ServerConfig struct {
	// Primary is the first address and port the server listens on, e.g.
	// 198.51.100.7:3478. Required. Its IP may be unspecified (0.0.0.0 or
	// ::) and its port 0 only when Alternate is not set: a plain server
	// then answers on every local address of that family.
	Primary netip.AddrPort
	// Alternate turns on RFC 5780 behaviour discovery: its IP is the
	// server's second public address and its port the second port, so the
	// server listens on Primary.IP and Alternate.IP, each on Primary.Port
	// and Alternate.Port (four sockets). Both IPs must then be specified,
	// of the same family and different, and both ports non-zero and
	// different. The zero value (the default) means a single-address server:
	// it answers Binding requests, sends no OTHER-ADDRESS and refuses
	// CHANGE-REQUEST with 420 (Unknown Attribute).
	Alternate netip.AddrPort
	// ListenPacket opens the server's sockets; tests pass a pion vnet's.
	// Nil means net.ListenPacket.
	ListenPacket func(network, addr string) (net.PacketConn, error)
	// Logger receives errors and the start-up line. Nil discards them.
	Logger *zap.Logger
	// SourceRate and SourceBurst bound the responses sent to one source
	// (an IPv4 address, or an IPv6 /64). Defaults 20/s and 40: a discovery
	// run sends about a dozen requests including retransmissions and an ICE
	// gatherer one or two, while many leaves may share one carrier-grade NAT
	// address.
	SourceRate  rate.Limit
	SourceBurst int
	// TotalRate and TotalBurst bound all responses together, so that a flood
	// from spoofed sources costs at most this much upstream bandwidth
	// (default 2000/s and 4000: about 1.6 Mbit/s of responses).
	TotalRate  rate.Limit
	TotalBurst int
	// MaxSources bounds the per-source limiter table (default 4096 sources).
	// Sources idle long enough to have refilled their burst are evicted;
	// while the table is full of active sources new sources are refused.
	MaxSources int
}

// Defaults of ServerConfig, each explained at its field.
const (
	// DefaultSourceRate is the responses per second one source may get.
	DefaultSourceRate rate.Limit = 20
	// DefaultSourceBurst is the burst of responses one source may get.
	DefaultSourceBurst = 40
	// DefaultTotalRate is the responses per second of the whole server.
	DefaultTotalRate rate.Limit = 2000
	// DefaultTotalBurst is the burst of responses of the whole server.
	DefaultTotalBurst = 4000
	// DefaultMaxSources bounds the per-source limiter table.
	DefaultMaxSources = 4096
)

// DefaultServerConfig returns the defaults for everything but the
// addresses, which the caller sets.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		SourceRate:  DefaultSourceRate,
		SourceBurst: DefaultSourceBurst,
		TotalRate:   DefaultTotalRate,
		TotalBurst:  DefaultTotalBurst,
		MaxSources:  DefaultMaxSources,
	}
}

// withDefaults fills the zero fields of c from DefaultServerConfig.
func (c ServerConfig) withDefaults() ServerConfig {
	d := DefaultServerConfig()
	if c.ListenPacket == nil {
		c.ListenPacket = net.ListenPacket
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.SourceRate <= 0 {
		c.SourceRate = d.SourceRate
	}
	if c.SourceBurst <= 0 {
		c.SourceBurst = d.SourceBurst
	}
	if c.TotalRate <= 0 {
		c.TotalRate = d.TotalRate
	}
	if c.TotalBurst <= 0 {
		c.TotalBurst = d.TotalBurst
	}
	if c.MaxSources <= 0 {
		c.MaxSources = d.MaxSources
	}
	return c
}

// Validate reports a configuration NewServer refuses.
func (c ServerConfig) Validate() error {
	p, a := c.Primary, c.Alternate
	if !p.IsValid() {
		return fmt.Errorf("%w: Primary: no address", ErrConfig)
	}
	if !a.IsValid() {
		return nil
	}
	switch {
	case p.Addr().IsUnspecified() || a.Addr().IsUnspecified():
		return fmt.Errorf("%w: Alternate: RFC 5780 needs specific addresses (primary %s, alternate %s)", ErrConfig, p, a)
	case p.Addr().Unmap().Is4() != a.Addr().Unmap().Is4():
		return fmt.Errorf("%w: Alternate: primary %s and alternate %s are of different families", ErrConfig, p, a)
	case p.Addr().Unmap() == a.Addr().Unmap():
		return fmt.Errorf("%w: Alternate: primary and alternate share the IP %s", ErrConfig, p.Addr())
	case p.Port() == 0 || a.Port() == 0 || p.Port() == a.Port():
		return fmt.Errorf("%w: Alternate: RFC 5780 needs two different non-zero ports (got %d and %d)", ErrConfig, p.Port(), a.Port())
	}
	return nil
}

// Stats counts what a Server did. Every received datagram lands in
// exactly one of Answered, ErrorResponses and the Dropped counters.
type Stats struct {
	// Received is every datagram read.
	Received uint64
	// Answered is Binding success responses sent; Changed is those of them
	// sent from another socket because of CHANGE-REQUEST.
	Answered, Changed uint64
	// ErrorResponses is Binding error responses sent (400, 420).
	ErrorResponses uint64
	// DroppedOversized is datagrams larger than any Binding request.
	DroppedOversized uint64
	// DroppedNotSTUN is datagrams without a valid STUN header.
	DroppedNotSTUN uint64
	// DroppedMalformed is STUN messages whose attributes or FINGERPRINT do
	// not parse or check.
	DroppedMalformed uint64
	// DroppedUnsupported is valid STUN messages other than Binding requests
	// (indications, responses, other methods): no answer is safest.
	DroppedUnsupported uint64
	// DroppedRateLimited is requests refused by the per-source or total
	// limit, or because the source table was full.
	DroppedRateLimited uint64
	// ReadErrors and WriteErrors are socket errors.
	ReadErrors, WriteErrors uint64
}

// stunCounters is Stats in atomics, updated by every reader goroutine.
type stunCounters struct {
	received, answered, changed, errorResponses                            atomic.Uint64
	droppedOversized, droppedNotSTUN, droppedMalformed, droppedUnsupported atomic.Uint64
	droppedRateLimited, readErrors, writeErrors                            atomic.Uint64
}

// stunSocket is one listening socket and the address it answers from.
type stunSocket struct {
	conn net.PacketConn
	addr netip.AddrPort
}

// Server is a running STUN service. It owns one reader goroutine per
// socket; each reads a request, answers it (from another socket when
// CHANGE-REQUEST asks so) and goes on. Close stops them and waits.
type Server struct {
	cfg     ServerConfig
	log     *zap.Logger
	socks   []stunSocket // 1 (plain) or 4 (RFC 5780), indexed as described at stunSockFlipIP
	rfc5780 bool
	limit   *stunLimiter
	count   stunCounters

	closeOnce sync.Once
	closed    atomic.Bool
	wg        sync.WaitGroup
}

// NewServer opens the sockets cfg describes and starts answering. The
// caller must Close the server.
func NewServer(cfg ServerConfig) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := newSTUNServerState(cfg)

	addrs := []netip.AddrPort{cfg.Primary}
	if s.rfc5780 {
		p, a := cfg.Primary, cfg.Alternate
		addrs = []netip.AddrPort{
			p,                                      // 0: primary IP, primary port
			netip.AddrPortFrom(p.Addr(), a.Port()), // 1: primary IP, alternate port
			netip.AddrPortFrom(a.Addr(), p.Port()), // 2: alternate IP, primary port
			a,                                      // 3: alternate IP, alternate port
		}
	}
	for _, want := range addrs {
		network := "udp4"
		if !want.Addr().Unmap().Is4() {
			network = "udp6"
		}
		conn, err := cfg.ListenPacket(network, want.String())
		if err != nil {
			for _, o := range s.socks {
				_ = o.conn.Close()
			}
			return nil, fmt.Errorf("stun: listen on %s: %w", want, err)
		}
		got := want
		if la, ok := addrPortOf(conn.LocalAddr()); ok && want.Port() == 0 {
			got = netip.AddrPortFrom(want.Addr(), la.Port())
		}
		s.socks = append(s.socks, stunSocket{conn: conn, addr: got})
	}
	for i := range s.socks {
		s.wg.Add(1)
		go s.serve(i)
	}
	s.log.Info("STUN server listening", zap.Stringers("addrs", s.Addrs()), zap.Bool("rfc5780", s.rfc5780))
	return s, nil
}

// newSTUNServerState builds a server without sockets: NewServer adds
// them, and the fuzz and unit tests drive handle directly. cfg must have its
// defaults filled in.
func newSTUNServerState(cfg ServerConfig) *Server {
	return &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		rfc5780: cfg.Alternate.IsValid(),
		limit:   newSTUNLimiter(cfg),
	}
}

// Addrs returns the addresses the server answers on: the primary first, then
// (RFC 5780) primary IP with alternate port, alternate IP with primary port,
// and the alternate address.
func (s *Server) Addrs() []netip.AddrPort {
	out := make([]netip.AddrPort, len(s.socks))
	for i, k := range s.socks {
		out[i] = k.addr
	}
	return out
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	c := &s.count
	return Stats{
		Received:           c.received.Load(),
		Answered:           c.answered.Load(),
		Changed:            c.changed.Load(),
		ErrorResponses:     c.errorResponses.Load(),
		DroppedOversized:   c.droppedOversized.Load(),
		DroppedNotSTUN:     c.droppedNotSTUN.Load(),
		DroppedMalformed:   c.droppedMalformed.Load(),
		DroppedUnsupported: c.droppedUnsupported.Load(),
		DroppedRateLimited: c.droppedRateLimited.Load(),
		ReadErrors:         c.readErrors.Load(),
		WriteErrors:        c.writeErrors.Load(),
	}
}

// Close closes the sockets and waits for the reader goroutines to end. It is
// idempotent and safe to call concurrently.
func (s *Server) Close() error {
	var errs []error
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		for _, k := range s.socks {
			if err := k.conn.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	})
	s.wg.Wait()
	return errors.Join(errs...)
}

// serve is the reader goroutine of socket i; Close ends it.
func (s *Server) serve(i int) {
	defer s.wg.Done()
	conn := s.socks[i].conn
	buf := make([]byte, stunReadBuffer)
	var req, resp pionstun.Message
	errRun := 0
	for {
		n, from, err := conn.ReadFrom(buf)
		if s.closed.Load() {
			return
		}
		if err != nil {
			s.count.readErrors.Add(1)
			if errRun++; errRun >= stunMaxReadErrors {
				s.log.Error("STUN socket keeps failing; this socket stops answering",
					zap.Stringer("addr", s.socks[i].addr), zap.Error(err))
				return
			}
			continue
		}
		errRun = 0
		src, ok := addrPortOf(from)
		if !ok {
			s.count.received.Add(1)
			s.count.droppedNotSTUN.Add(1)
			continue
		}
		out, via := s.handle(buf[:n], src, i, time.Now(), &req, &resp)
		if out == nil {
			continue
		}
		if _, err := s.socks[via].conn.WriteTo(out, net.UDPAddrFromAddrPort(src)); err != nil && !s.closed.Load() {
			s.count.writeErrors.Add(1)
			s.log.Debug("STUN response not sent", zap.Stringer("to", src), zap.Error(err))
		}
	}
}

// handle decides the answer to one datagram pkt that arrived from src on
// socket on. It returns the response and the socket to send it from, or nil
// when the datagram gets no answer. req and resp are scratch messages reused
// across calls by one goroutine; the returned slice aliases resp.Raw and is
// valid until the next call. Every call updates exactly one outcome counter.
func (s *Server) handle(pkt []byte, src netip.AddrPort, on int, now time.Time, req, resp *pionstun.Message) ([]byte, int) {
	c := &s.count
	c.received.Add(1)
	if len(pkt) > stunMaxRequest {
		c.droppedOversized.Add(1)
		return nil, 0
	}
	if !stunHeaderValid(pkt) {
		c.droppedNotSTUN.Add(1)
		return nil, 0
	}
	req.Raw = pkt
	if err := req.Decode(); err != nil {
		c.droppedMalformed.Add(1)
		return nil, 0
	}
	if req.Type != pionstun.BindingRequest {
		c.droppedUnsupported.Add(1)
		return nil, 0
	}
	// RFC 8489 §14.7: a message whose FINGERPRINT does not match is not a
	// STUN message at all.
	withFingerprint := req.Contains(pionstun.AttrFingerprint)
	if withFingerprint && pionstun.Fingerprint.Check(req) != nil {
		c.droppedMalformed.Add(1)
		return nil, 0
	}
	if !s.limit.allow(src.Addr(), now) {
		c.droppedRateLimited.Add(1)
		return nil, 0
	}

	// RFC 8489 §6.3.1.1: unknown comprehension-required attributes get a
	// 420 listing them.
	var unknown pionstun.UnknownAttributes
	for _, a := range req.Attributes {
		if !stunUnderstood(a.Type) && len(unknown) < stunMaxUnknown {
			unknown = append(unknown, a.Type)
		}
	}
	if len(unknown) > 0 {
		return s.errorResponse(req, resp, pionstun.CodeUnknownAttribute, unknown, on, withFingerprint)
	}

	via := on
	if v, err := req.Get(pionstun.AttrChangeRequest); err == nil {
		if len(v) != 4 {
			return s.errorResponse(req, resp, pionstun.CodeBadRequest, nil, on, withFingerprint)
		}
		flags := binary.BigEndian.Uint32(v)
		if flags&(stunChangeIP|stunChangePort) != 0 && !s.rfc5780 {
			// A server without a second address cannot honour the
			// request. Answering from the same address would make the
			// client read "my NAT let this through" when it did not, so
			// refuse it like a server that does not know the attribute;
			// the client then knows RFC 5780 is unavailable here.
			return s.errorResponse(req, resp, pionstun.CodeUnknownAttribute,
				pionstun.UnknownAttributes{pionstun.AttrChangeRequest}, on, withFingerprint)
		}
		if flags&stunChangeIP != 0 {
			via ^= stunSockFlipIP
		}
		if flags&stunChangePort != 0 {
			via ^= stunSockFlipPort
		}
	}

	resp.Reset()
	resp.Type = pionstun.BindingSuccess
	resp.TransactionID = req.TransactionID
	resp.WriteHeader()
	ip := src.Addr().Unmap()
	xor := pionstun.XORMappedAddress{IP: ip.AsSlice(), Port: int(src.Port())}
	if err := xor.AddTo(resp); err != nil {
		c.droppedMalformed.Add(1) // cannot happen for a valid netip.Addr
		return nil, 0
	}
	if s.rfc5780 {
		origin := s.socks[via].addr
		other := s.socks[on^(stunSockFlipIP|stunSockFlipPort)].addr
		ro := pionstun.ResponseOrigin{IP: origin.Addr().Unmap().AsSlice(), Port: int(origin.Port())}
		oa := pionstun.OtherAddress{IP: other.Addr().Unmap().AsSlice(), Port: int(other.Port())}
		if ro.AddTo(resp) != nil || oa.AddTo(resp) != nil {
			c.droppedMalformed.Add(1)
			return nil, 0
		}
	}
	if withFingerprint {
		if err := pionstun.Fingerprint.AddTo(resp); err != nil {
			c.droppedMalformed.Add(1)
			return nil, 0
		}
	}
	c.answered.Add(1)
	if via != on {
		c.changed.Add(1)
	}
	return resp.Raw, via
}

// errorResponse builds a Binding error response with code and, for 420, the
// unknown attribute types. It is sent from the socket the request came in on.
func (s *Server) errorResponse(req, resp *pionstun.Message, code pionstun.ErrorCode, unknown pionstun.UnknownAttributes, on int, withFingerprint bool) ([]byte, int) {
	resp.Reset()
	resp.Type = pionstun.BindingError
	resp.TransactionID = req.TransactionID
	resp.WriteHeader()
	// Short fixed reasons: the response must stay small.
	reason := "Bad Request"
	if code == pionstun.CodeUnknownAttribute {
		reason = "Unknown Attribute"
	}
	if err := (pionstun.ErrorCodeAttribute{Code: code, Reason: []byte(reason)}).AddTo(resp); err != nil {
		s.count.droppedMalformed.Add(1)
		return nil, 0
	}
	if len(unknown) > 0 {
		if err := unknown.AddTo(resp); err != nil {
			s.count.droppedMalformed.Add(1)
			return nil, 0
		}
	}
	if withFingerprint {
		if err := pionstun.Fingerprint.AddTo(resp); err != nil {
			s.count.droppedMalformed.Add(1)
			return nil, 0
		}
	}
	s.count.errorResponses.Add(1)
	return resp.Raw, on
}

// stunUnderstood reports whether the server may process a request carrying
// an attribute of type t. Comprehension-optional attributes (0x8000 and up)
// may always be ignored (RFC 8489 §14). Of the comprehension-required ones,
// CHANGE-REQUEST is served, and those an ICE connectivity check or an
// authenticating client carries are understood and ignored: this server
// does not authenticate, and the response carries nothing secret.
func stunUnderstood(t pionstun.AttrType) bool {
	if t >= 0x8000 {
		return true
	}
	switch t {
	case pionstun.AttrChangeRequest, pionstun.AttrUsername, pionstun.AttrMessageIntegrity,
		pionstun.AttrMessageIntegritySHA256, pionstun.AttrRealm, pionstun.AttrNonce,
		pionstun.AttrPriority, pionstun.AttrUseCandidate, pionstun.AttrUserhash:
		return true
	}
	return false
}

// stunHeaderValid checks the fixed STUN header (RFC 8489 §5): the two top
// bits zero, the magic cookie, and a length that is a multiple of four and
// matches the datagram exactly. pion's decoder is lenient on the last two.
func stunHeaderValid(b []byte) bool {
	if len(b) < 20 || b[0]&0xC0 != 0 || binary.BigEndian.Uint32(b[4:8]) != stunMagicCookie {
		return false
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	return n%4 == 0 && n == len(b)-20
}

// addrPortOf converts a UDP net.Addr to a netip.AddrPort with any IPv4-in-
// IPv6 mapping removed.
func addrPortOf(a net.Addr) (netip.AddrPort, bool) {
	u, ok := a.(*net.UDPAddr)
	if !ok || u == nil {
		return netip.AddrPort{}, false
	}
	ap := u.AddrPort()
	if !ap.IsValid() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// stunLimiter is the per-source and total response budget of a Server.
// Its fields are guarded by mu: every reader goroutine asks it.
type stunLimiter struct {
	mu        sync.Mutex
	sources   map[netip.Addr]*rate.Limiter // keyed by IPv4 address or IPv6 /64
	total     *rate.Limiter
	rate      rate.Limit
	burst     int
	max       int
	lastSweep time.Time
}

func newSTUNLimiter(cfg ServerConfig) *stunLimiter {
	return &stunLimiter{
		sources: make(map[netip.Addr]*rate.Limiter),
		total:   rate.NewLimiter(cfg.TotalRate, cfg.TotalBurst),
		rate:    cfg.SourceRate,
		burst:   cfg.SourceBurst,
		max:     cfg.MaxSources,
	}
}

// allow spends one response from ip's budget and the total budget.
func (l *stunLimiter) allow(ip netip.Addr, now time.Time) bool {
	key := ip.Unmap()
	if key.Is6() {
		// One subscriber usually holds a whole /64; keying by address would
		// let one host fill the table by rotating addresses.
		p, _ := key.Prefix(64)
		key = p.Addr()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.sources[key]
	if !ok {
		if len(l.sources) >= l.max {
			l.sweep(now)
		}
		if len(l.sources) >= l.max {
			return false
		}
		lim = rate.NewLimiter(l.rate, l.burst)
		l.sources[key] = lim
	}
	// Check the source first: a source over its budget must not use up the
	// total budget that other sources need.
	if !lim.AllowN(now, 1) {
		return false
	}
	return l.total.AllowN(now, 1)
}

// sweep drops sources whose budget has refilled completely: a fresh limiter
// would behave the same, so forgetting them loses nothing. It runs at most
// once a second so that a full table of active sources costs little.
func (l *stunLimiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Second {
		return
	}
	l.lastSweep = now
	for k, lim := range l.sources {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.sources, k)
		}
	}
}
