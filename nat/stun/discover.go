package stun

// This file holds NAT behaviour discovery: the client side of Server.
//
// Discover asks STUN servers (normally the supernodes the leaf is attached
// to) how the local NAT treats UDP, following RFC 5780: §4.3 for the mapping
// (does the NAT keep one public address for all destinations, one per
// destination address, or one per destination address and port) and §4.4
// for the filtering (which senders may reach that public address). It needs
// either one server with two IP addresses and two ports (RFC 5780 mode), or
// at least two single-address servers, from whose answers it can still tell
// the mapping but not the filtering. The result, a nat.Behaviour, names the
// NAT the way users know it (Classify) and feeds nat.DirectPossible, which says
// whether two peers can expect a direct UDP path from ICE hole punching or
// should count on a relay.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/canopy-p2p/canopy/nat"
	pionstun "github.com/pion/stun/v4"
	transport "github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"go.uber.org/zap"
)

// DiscoverConfig configures Discover. Servers is required; the zero value of
// every other field means its default (DefaultDiscoverConfig).
type DiscoverConfig struct {
	// Servers are STUN servers to ask, in order of preference: normally the
	// supernodes the leaf is attached to. The first that answers is the
	// primary; if it offers RFC 5780 (OTHER-ADDRESS) the full tests run
	// against it alone, otherwise the next servers serve as "other
	// addresses" for the mapping tests. Servers of a different address
	// family than the first are skipped. Required.
	Servers []netip.AddrPort
	// Net is the network the tests run on; tests pass a pion vnet.Net. Nil
	// means the host's network (pion's stdnet).
	Net transport.Net
	// LocalAddr is the local address to send from. The zero value means any
	// address and an ephemeral port.
	LocalAddr netip.AddrPort
	// RTO is the first retransmission timeout; it doubles at each
	// retransmission as in RFC 8489 §6.2.1. Default 250 ms, which suits the
	// 50-300 ms round trips to supernodes; RFC 8489 uses 500 ms but needs
	// up to 39.5 s to give up, far too long for a leaf that wants a verdict.
	RTO time.Duration
	// Tries is how many times a request is sent before the server counts as
	// silent. Default 3, so a silent server costs RTO × 7 (1.75 s at the
	// default RTO); a test that expects silence (filtering) costs that too.
	Tries int
	// Logger receives a debug line per test. Nil discards them.
	Logger *zap.Logger
}

// Defaults of DiscoverConfig, each explained at its field.
const (
	// DefaultRTO is the first retransmission timeout of a discovery test.
	DefaultRTO = 250 * time.Millisecond
	// DefaultTries is how many times a discovery request is sent.
	DefaultTries = 3
	// maxTries bounds DiscoverConfig.Tries: with doubling, 7 tries at
	// 250 ms already wait half a minute. A larger value is cut to it.
	maxTries = 7
)

// DefaultDiscoverConfig returns the defaults; the caller sets Servers.
func DefaultDiscoverConfig() DiscoverConfig {
	return DiscoverConfig{RTO: DefaultRTO, Tries: DefaultTries}
}

// withDefaults fills the zero fields of c from DefaultDiscoverConfig and
// cuts Tries to maxTries.
func (c DiscoverConfig) withDefaults() DiscoverConfig {
	d := DefaultDiscoverConfig()
	if c.RTO <= 0 {
		c.RTO = d.RTO
	}
	if c.Tries <= 0 {
		c.Tries = d.Tries
	}
	if c.Tries > maxTries {
		c.Tries = maxTries
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Validate reports a configuration Discover refuses: no server, or a server
// address that is not a concrete address and port.
func (c DiscoverConfig) Validate() error {
	if len(c.Servers) == 0 {
		return fmt.Errorf("%w: Servers: no STUN server", ErrConfig)
	}
	var errs []error
	for _, s := range c.Servers {
		s = netip.AddrPortFrom(s.Addr().Unmap(), s.Port())
		if !s.IsValid() || s.Port() == 0 || s.Addr().IsUnspecified() {
			errs = append(errs, fmt.Errorf("%w: Servers: bad STUN server address %s", ErrConfig, s))
		}
	}
	return errors.Join(errs...)
}

// Discover runs NAT behaviour discovery against cfg.Servers and returns
// what it found. A network that answers nothing is a result (UDPBlocked),
// not an error; the error is for what stops the tests themselves: a bad
// configuration, a socket that cannot be opened, or ctx ending (the
// Behaviour then holds what was learnt so far). It takes between one round
// trip (no NAT, plain servers) and about four silent transactions (a filtering
// NAT, or servers that do not answer).
func Discover(ctx context.Context, cfg DiscoverConfig) (nat.Behaviour, error) {
	var b nat.Behaviour
	d, err := newDiscovery(cfg, &b)
	if err != nil {
		return b, err
	}
	err = d.run(ctx)
	return b, err
}

// discovery is one run of Discover.
type discovery struct {
	cfg     DiscoverConfig
	net     transport.Net
	network string           // "udp4" or "udp6"
	servers []netip.AddrPort // of that family, in order
	b       *nat.Behaviour
	log     *zap.Logger
}

func newDiscovery(cfg DiscoverConfig, b *nat.Behaviour) (*discovery, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var servers []netip.AddrPort
	for _, s := range cfg.Servers {
		s = netip.AddrPortFrom(s.Addr().Unmap(), s.Port())
		if len(servers) > 0 && s.Addr().Is4() != servers[0].Addr().Is4() {
			b.Evidence = append(b.Evidence, fmt.Sprintf("skipped %s: not of the same address family as %s", s, servers[0]))
			continue
		}
		servers = append(servers, s)
	}
	n := cfg.Net
	if n == nil {
		sn, err := stdnet.NewNet()
		if err != nil {
			return nil, fmt.Errorf("stun: discovery: host network: %w", err)
		}
		n = sn
	}
	network := "udp4"
	if servers[0].Addr().Is6() {
		network = "udp6"
	}
	return &discovery{cfg: cfg, net: n, network: network, servers: servers, b: b, log: cfg.Logger}, nil
}

// note adds a line of evidence.
func (d *discovery) note(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	d.b.Evidence = append(d.b.Evidence, line)
	d.log.Debug("NAT discovery", zap.String("step", line))
}

// silence describes how long a silent server was waited for.
func (d *discovery) silence() string {
	total := d.cfg.RTO * time.Duration(1<<d.cfg.Tries-1)
	return fmt.Sprintf("no answer to %d tries over %s", d.cfg.Tries, total)
}

// open opens a fresh client socket.
func (d *discovery) open() (*stunClient, error) {
	laddr := d.cfg.LocalAddr
	if !laddr.IsValid() {
		laddr = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
		if d.network == "udp6" {
			laddr = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
		}
	}
	conn, err := d.net.ListenPacket(d.network, laddr.String())
	if err != nil {
		return nil, fmt.Errorf("stun: discovery: open socket on %s: %w", laddr, err)
	}
	return &stunClient{conn: conn, rto: d.cfg.RTO, tries: d.cfg.Tries, buf: make([]byte, 1500)}, nil
}

// run is RFC 5780 §4.3 and §4.4 with the two-server fallback.
func (d *discovery) run(ctx context.Context) error {
	mc, err := d.open()
	if err != nil {
		return err
	}
	defer mc.conn.Close()

	// Test I against each server in turn: the first that answers is the
	// primary. A silent server may simply be down, so only total silence
	// means UDP is blocked.
	prim := -1
	var first stunAnswer
	for i, srv := range d.servers {
		a, err := mc.roundTrip(ctx, srv, 0)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrNoResponse):
			d.note("test I: %s: %s", srv, d.silence())
		case err != nil:
			d.note("test I: %s: %v", srv, err)
		case a.code != 0:
			d.note("test I: %s answered with error %d", srv, a.code)
		default:
			prim, first = i, a
		}
		if prim >= 0 {
			break
		}
	}
	if prim < 0 {
		d.b.UDPBlocked = true
		d.b.Mapping, d.b.Filtering = nat.DependenceUnknown, nat.DependenceUnknown
		d.note("no STUN server answered: UDP looks blocked on this network (or every server is down); only a relay over TCP can help")
		return nil
	}
	server := d.servers[prim]
	d.b.Public = first.mapped
	d.b.Local, d.b.NATed = d.localOf(mc.conn, server, first.mapped)
	d.note("test I: %s answered: mapped address %s, local address %s", server, first.mapped, d.b.Local)

	other, rfc5780 := d.otherAddress(server, first)
	d.b.RFC5780 = rfc5780

	// Mapping, RFC 5780 §4.3.
	switch {
	case !d.b.NATed:
		d.b.Mapping = nat.EndpointIndependent
		d.note("mapping: mapped address equals the local address, so there is no NAT")
	case rfc5780:
		if err := d.mapping5780(ctx, mc, server, other, first.mapped); err != nil {
			return err
		}
	}
	if d.b.NATed && d.b.Mapping == nat.DependenceUnknown {
		if err := d.mappingTwoServers(ctx, mc, server, first.mapped, d.servers[prim+1:]); err != nil {
			return err
		}
	}

	// Filtering, RFC 5780 §4.4.
	if !rfc5780 {
		d.note("filtering: unknown; telling it needs a server with two addresses (RFC 5780) that can answer from an address this host never sent to")
		return nil
	}
	return d.filtering5780(ctx, server, other)
}

// otherAddress returns the OTHER-ADDRESS of a test I answer if it can be
// used for RFC 5780 tests: same family, different IP and port.
func (d *discovery) otherAddress(server netip.AddrPort, a stunAnswer) (netip.AddrPort, bool) {
	o := a.other
	switch {
	case !o.IsValid():
		d.note("%s sent no OTHER-ADDRESS: no RFC 5780 tests", server)
		return o, false
	case o.Addr().Is4() != server.Addr().Is4() || o.Addr() == server.Addr() || o.Port() == server.Port() || o.Port() == 0 || o.Addr().IsUnspecified():
		d.note("%s sent an unusable OTHER-ADDRESS %s (it must differ in IP and port): no RFC 5780 tests", server, o)
		return o, false
	}
	d.note("%s offers RFC 5780 with other address %s", server, o)
	return o, true
}

// mapping5780 runs RFC 5780 §4.3 tests II and III on the socket of test I.
func (d *discovery) mapping5780(ctx context.Context, mc *stunClient, server, other, mapped1 netip.AddrPort) error {
	t2 := netip.AddrPortFrom(other.Addr(), server.Port())
	a2, err := mc.roundTrip(ctx, t2, 0)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if !d.answered("mapping test II", t2, a2, err) {
		d.note("mapping: unknown from RFC 5780 tests (the alternate address did not answer)")
		return nil
	}
	if a2.mapped == mapped1 {
		d.b.Mapping = nat.EndpointIndependent
		d.note("mapping test II: %s saw %s, as %s did: endpoint-independent mapping", t2, a2.mapped, server)
		return nil
	}
	d.note("mapping test II: %s saw %s, not %s: the mapping depends on the destination", t2, a2.mapped, mapped1)
	a3, err := mc.roundTrip(ctx, other, 0)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if !d.answered("mapping test III", other, a3, err) {
		d.b.Mapping = nat.EndpointDependent
		d.note("mapping: endpoint-dependent; whether the port matters is unknown (test III got no answer)")
		return nil
	}
	if a3.mapped == a2.mapped {
		d.b.Mapping = nat.AddressDependent
		d.note("mapping test III: %s saw %s, as %s did: address-dependent mapping", other, a3.mapped, t2)
	} else {
		d.b.Mapping = nat.AddressAndPortDependent
		d.note("mapping test III: %s saw %s, not %s: address-and-port-dependent mapping", other, a3.mapped, a2.mapped)
	}
	return nil
}

// mappingTwoServers tells the mapping by comparing the mapped addresses
// other single-address servers see from the socket of test I. A server on
// another IP tells whether the mapping depends on the destination at all; a
// server on the same IP but another port, if there is one, tells whether the
// port matters. At most three more servers are asked.
func (d *discovery) mappingTwoServers(ctx context.Context, mc *stunClient, server, mapped1 netip.AddrPort, rest []netip.AddrPort) error {
	const maxAsked = 3
	var addrKnown, addrChanges, portKnown, portChanges bool
	asked := 0
	for _, srv := range rest {
		if asked == maxAsked {
			break
		}
		if srv == server || (srv.Addr() == server.Addr() && portKnown) || (srv.Addr() != server.Addr() && addrKnown) {
			continue
		}
		asked++
		a, err := mc.roundTrip(ctx, srv, 0)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !d.answered("mapping (two servers)", srv, a, err) {
			continue
		}
		same := a.mapped == mapped1
		if srv.Addr() != server.Addr() {
			addrKnown, addrChanges = true, !same
		} else {
			portKnown, portChanges = true, !same
		}
		d.note("mapping (two servers): %s saw %s, %s saw %s", server, mapped1, srv, a.mapped)
		switch {
		case addrKnown && !addrChanges:
			d.b.Mapping = nat.EndpointIndependent
			d.note("mapping: endpoint-independent (two servers on different addresses saw the same mapping)")
			return nil
		case portKnown && portChanges:
			d.b.Mapping = nat.AddressAndPortDependent
			d.note("mapping: address-and-port-dependent (another port of the same server saw another mapping)")
			return nil
		case addrKnown && portKnown:
			d.b.Mapping = nat.AddressDependent
			d.note("mapping: address-dependent (another server address saw another mapping, another port of the same address did not)")
			return nil
		}
	}
	switch {
	case addrKnown:
		d.b.Mapping = nat.EndpointDependent
		d.note("mapping: endpoint-dependent (\"symmetric\"); single-address servers cannot tell address-dependent from address-and-port-dependent")
	case len(rest) == 0:
		d.note("mapping: unknown; the only server that answered has one address, and a second server is needed to compare mappings")
	default:
		d.note("mapping: unknown; no second server answered")
	}
	return nil
}

// filtering5780 runs RFC 5780 §4.4 on a fresh socket: the mapping tests
// sent to the alternate address, which opened the NAT's filter for it, so
// their socket would make any filtering look endpoint-independent.
func (d *discovery) filtering5780(ctx context.Context, server, other netip.AddrPort) error {
	fc, err := d.open()
	if err != nil {
		return err
	}
	defer fc.conn.Close()

	a1, err := fc.roundTrip(ctx, server, 0)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if !d.answered("filtering test I", server, a1, err) {
		d.note("filtering: unknown (the server stopped answering)")
		return nil
	}

	// Test II: answer from the other IP and port.
	a2, err := fc.roundTrip(ctx, server, stunChangeIP|stunChangePort)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	switch {
	case err == nil && a2.code != 0:
		d.note("filtering test II: %s refused CHANGE-REQUEST (error %d): filtering unknown", server, a2.code)
		return nil
	case err == nil && a2.source != other:
		d.note("filtering test II: the answer came from %s instead of %s: the server does not honour CHANGE-REQUEST; filtering unknown", a2.source, other)
		return nil
	case err == nil:
		d.b.Filtering = nat.EndpointIndependent
		d.note("filtering test II: an answer from %s, never sent to, got through: endpoint-independent filtering", other)
		return nil
	case errors.Is(err, ErrNoResponse):
		d.note("filtering test II: no answer from %s (asked to change IP and port): not endpoint-independent", other)
	default:
		d.note("filtering test II: %v; filtering unknown", err)
		return nil
	}

	// Test III: answer from the same IP, other port.
	want := netip.AddrPortFrom(server.Addr(), other.Port())
	a3, err := fc.roundTrip(ctx, server, stunChangePort)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	switch {
	case err == nil && a3.code != 0:
		d.note("filtering test III: %s refused CHANGE-REQUEST (error %d): filtering unknown", server, a3.code)
	case err == nil && a3.source != want:
		d.note("filtering test III: the answer came from %s instead of %s: filtering unknown", a3.source, want)
	case err == nil:
		d.b.Filtering = nat.AddressDependent
		d.note("filtering test III: an answer from %s (same IP, port never sent to) got through: address-dependent filtering", want)
	case errors.Is(err, ErrNoResponse):
		d.b.Filtering = nat.AddressAndPortDependent
		d.note("filtering test III: no answer from %s (asked to change port): address-and-port-dependent filtering", want)
	default:
		d.note("filtering test III: %v; filtering unknown", err)
	}
	return nil
}

// answered notes the outcome of a transaction that should have been
// answered and reports whether it was, successfully.
func (d *discovery) answered(test string, to netip.AddrPort, a stunAnswer, err error) bool {
	switch {
	case errors.Is(err, ErrNoResponse):
		d.note("%s: %s: %s", test, to, d.silence())
	case err != nil:
		d.note("%s: %s: %v", test, to, err)
	case a.code != 0:
		d.note("%s: %s answered with error %d", test, to, a.code)
	default:
		return true
	}
	return false
}

// localOf works out the local address the mapping was made for, and
// whether the host is NATed. A socket bound to all addresses does not know
// its source IP, so it is found among the interface addresses: the mapped
// IP itself if it is local (no NAT), else the source the route to the
// server uses, else the first interface address of the family.
func (d *discovery) localOf(conn net.PacketConn, server, mapped netip.AddrPort) (netip.AddrPort, bool) {
	la, _ := addrPortOf(conn.LocalAddr())
	if la.IsValid() && !la.Addr().IsUnspecified() {
		return la, la != mapped
	}
	ips := d.localIPs()
	if slices.Contains(ips, mapped.Addr()) {
		local := netip.AddrPortFrom(mapped.Addr(), la.Port())
		return local, local != mapped
	}
	if c, err := d.net.Dial(d.network, server.String()); err == nil {
		src, ok := addrPortOf(c.LocalAddr())
		_ = c.Close()
		if ok && !src.Addr().IsUnspecified() {
			return netip.AddrPortFrom(src.Addr(), la.Port()), true
		}
	}
	if len(ips) > 0 {
		return netip.AddrPortFrom(ips[0], la.Port()), true
	}
	return la, true
}

// localIPs lists the non-loopback interface addresses of the discovery's
// family (loopback ones too when the servers are on loopback, as in tests).
func (d *discovery) localIPs() []netip.Addr {
	ifs, err := d.net.Interfaces()
	if err != nil {
		return nil
	}
	loop := d.servers[0].Addr().IsLoopback()
	var out []netip.Addr
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			var ip net.IP
			switch v := a.(type) {
			case *net.IPNet:
				ip = v.IP
			case *net.IPAddr:
				ip = v.IP
			}
			addr, ok := netip.AddrFromSlice(ip)
			if !ok {
				continue
			}
			addr = addr.Unmap()
			if addr.Is4() != (d.network == "udp4") || (addr.IsLoopback() && !loop) {
				continue
			}
			out = append(out, addr)
		}
	}
	return out
}

// stunClient sends Binding requests from one socket, one transaction at a
// time, retransmitting as RFC 8489 §6.2.1 does but with a short total.
type stunClient struct {
	conn  net.PacketConn
	rto   time.Duration
	tries int
	buf   []byte
	msg   pionstun.Message
}

// stunAnswer is a parsed Binding response.
type stunAnswer struct {
	source netip.AddrPort // where the response came from
	mapped netip.AddrPort // XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS from an old server)
	other  netip.AddrPort // OTHER-ADDRESS, invalid if absent
	code   int            // ERROR-CODE of an error response; 0 for success
}

// roundTrip sends a Binding request to `to`, with CHANGE-REQUEST flags
// change if non-zero, and waits for the matching response. It returns
// ErrNoResponse when every try went unanswered, ctx.Err() when ctx ends,
// and other errors for socket failures. Datagrams that are not the awaited
// response (late answers to earlier tests, strangers) are skipped.
func (c *stunClient) roundTrip(ctx context.Context, to netip.AddrPort, change uint32) (stunAnswer, error) {
	req := pionstun.New()
	req.Type = pionstun.BindingRequest
	req.TransactionID = pionstun.NewTransactionID()
	req.WriteHeader()
	if change != 0 {
		var v [4]byte
		binary.BigEndian.PutUint32(v[:], change)
		req.Add(pionstun.AttrChangeRequest, v[:])
	}
	dst := net.UDPAddrFromAddrPort(to)

	// Unblock a pending read when ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	wait := c.rto
	for range c.tries {
		if _, err := c.conn.WriteTo(req.Raw, dst); err != nil {
			if ctx.Err() != nil {
				return stunAnswer{}, ctx.Err()
			}
			return stunAnswer{}, fmt.Errorf("send to %s: %w", to, err)
		}
		if err := c.conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
			return stunAnswer{}, fmt.Errorf("set read deadline: %w", err)
		}
		wait *= 2
		// Checked after setting the deadline: if ctx ended before, the
		// AfterFunc's past deadline may have been overwritten.
		if ctx.Err() != nil {
			return stunAnswer{}, ctx.Err()
		}
		for {
			n, from, err := c.conn.ReadFrom(c.buf)
			if ctx.Err() != nil {
				return stunAnswer{}, ctx.Err()
			}
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // retransmit
				}
				if errors.Is(err, net.ErrClosed) {
					return stunAnswer{}, fmt.Errorf("receive: %w", err)
				}
				// Other read errors on an unconnected UDP socket are
				// transient (an ICMP error for an earlier datagram on
				// some systems): count the try as lost.
				break
			}
			a, ok := c.parse(c.buf[:n], req.TransactionID)
			if !ok {
				continue
			}
			a.source, _ = addrPortOf(from)
			return a, nil
		}
	}
	return stunAnswer{}, ErrNoResponse
}

// parse decodes a Binding response to transaction id. It rejects anything
// else, including responses without a usable mapped address.
func (c *stunClient) parse(b []byte, id [pionstun.TransactionIDSize]byte) (stunAnswer, bool) {
	if !stunHeaderValid(b) {
		return stunAnswer{}, false
	}
	m := &c.msg
	m.Raw = b
	if m.Decode() != nil || m.TransactionID != id {
		return stunAnswer{}, false
	}
	var a stunAnswer
	switch m.Type {
	case pionstun.BindingError:
		var ec pionstun.ErrorCodeAttribute
		a.code = 400 // an error response without ERROR-CODE is still an error
		if ec.GetFrom(m) == nil && ec.Code > 0 {
			a.code = int(ec.Code)
		}
		return a, true
	case pionstun.BindingSuccess:
	default:
		return stunAnswer{}, false
	}
	var x pionstun.XORMappedAddress
	if err := x.GetFrom(m); err == nil {
		a.mapped = stunAddrPort(x.IP, x.Port)
	} else {
		var ma pionstun.MappedAddress
		if ma.GetFrom(m) != nil {
			return stunAnswer{}, false
		}
		a.mapped = stunAddrPort(ma.IP, ma.Port)
	}
	if !a.mapped.IsValid() {
		return stunAnswer{}, false
	}
	var o pionstun.OtherAddress
	if o.GetFrom(m) == nil {
		a.other = stunAddrPort(o.IP, o.Port)
	}
	return a, true
}

// stunAddrPort converts an address attribute's fields, returning the zero
// AddrPort when they are not a valid address.
func stunAddrPort(ip net.IP, port int) netip.AddrPort {
	addr, ok := netip.AddrFromSlice(ip)
	if !ok || port < 0 || port > 0xFFFF {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(addr.Unmap(), uint16(port))
}
