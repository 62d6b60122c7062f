package nat

// This file holds NAT behaviour discovery: the client side of STUNServer.
//
// Discover asks STUN servers (normally the supernodes the leaf is attached
// to) how the local NAT treats UDP, following RFC 5780: §4.3 for the mapping
// (does the NAT keep one public address for all destinations, one per
// destination address, or one per destination address and port) and §4.4
// for the filtering (which senders may reach that public address). It needs
// either one server with two IP addresses and two ports (RFC 5780 mode), or
// at least two single-address servers, from whose answers it can still tell
// the mapping but not the filtering. The result, a Behaviour, names the NAT
// the way users know it (Classify) and feeds DirectPossible, which says
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

	"github.com/pion/stun/v4"
	transport "github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"go.uber.org/zap"
)

// Dependence says how a NAT's mapping or filtering depends on the remote
// endpoint, in the terms of RFC 4787 §4.1 (mapping) and §5 (filtering).
type Dependence uint8

const (
	// DependenceUnknown means the tests could not tell.
	DependenceUnknown Dependence = iota
	// EndpointIndependent mapping reuses one public address and port for
	// every destination; endpoint-independent filtering lets anyone reach
	// it once it exists.
	EndpointIndependent
	// AddressDependent mapping uses one public port per destination IP;
	// address-dependent filtering admits any port of an IP the host has
	// sent to.
	AddressDependent
	// AddressAndPortDependent mapping uses one public port per destination
	// IP and port; filtering of that kind admits only the exact addresses
	// and ports the host has sent to.
	AddressAndPortDependent
	// EndpointDependent is a mapping known to change with the destination
	// when the tests could not tell whether the destination port matters
	// (AddressDependent or AddressAndPortDependent): two single-address
	// servers differ in both IP and port.
	EndpointDependent
)

// String returns the RFC 4787 name of d.
func (d Dependence) String() string {
	switch d {
	case EndpointIndependent:
		return "endpoint-independent"
	case AddressDependent:
		return "address-dependent"
	case AddressAndPortDependent:
		return "address-and-port-dependent"
	case EndpointDependent:
		return "endpoint-dependent (address or address-and-port)"
	default:
		return "unknown"
	}
}

// Behaviour is what Discover learned about the NAT (or firewall) between
// this host and the STUN servers.
type Behaviour struct {
	// Mapping is the NAT's mapping behaviour (RFC 4787 §4.1).
	Mapping Dependence
	// Filtering is the NAT's filtering behaviour (RFC 4787 §5); for a host
	// that is not NATed it describes its firewall.
	Filtering Dependence
	// Public is the mapped address the first answering server saw.
	Public netip.AddrPort
	// Local is the local address the tests were sent from, as far as it can
	// be known (a socket bound to all addresses is resolved to the interface
	// address that routes to the server).
	Local netip.AddrPort
	// NATed is true when Public differs from Local: some device rewrote the
	// address or port.
	NATed bool
	// UDPBlocked is true when no STUN server answered at all.
	UDPBlocked bool
	// RFC5780 is true when a server offered RFC 5780 (OTHER-ADDRESS), so
	// that the full mapping and filtering tests could run.
	RFC5780 bool
	// Evidence lists each test, what was sent where and what came back, in
	// order: the reasons behind the verdict, for the user and for bug
	// reports.
	Evidence []string
}

// Classify returns the familiar (RFC 3489 era) name of the behaviour:
// "UDP blocked", "public/no NAT", "symmetric UDP firewall" (no NAT, but
// filtering), "full cone", "restricted cone", "port-restricted cone",
// "cone, filtering unknown", "symmetric" (any endpoint-dependent mapping) or
// "unknown".
func (b Behaviour) Classify() string {
	switch {
	case b.UDPBlocked:
		return "UDP blocked"
	case !b.Public.IsValid():
		return "unknown"
	case !b.NATed:
		if b.Filtering == AddressDependent || b.Filtering == AddressAndPortDependent {
			return "symmetric UDP firewall"
		}
		return "public/no NAT"
	}
	switch b.Mapping {
	case EndpointIndependent:
		switch b.Filtering {
		case EndpointIndependent:
			return "full cone"
		case AddressDependent:
			return "restricted cone"
		case AddressAndPortDependent:
			return "port-restricted cone"
		}
		return "cone, filtering unknown"
	case AddressDependent, AddressAndPortDependent, EndpointDependent:
		return "symmetric"
	}
	return "unknown"
}

// DirectPossible says whether two peers with behaviours a and b can expect
// ICE to find a direct UDP path between them, and why. It models ICE as
// RFC 8445 runs it: each side learns its server-reflexive address from a
// STUN server, both send connectivity checks to the other's
// server-reflexive address at the same time, a check that gets through
// teaches the receiver the sender's real source (a peer-reflexive
// candidate) and triggers a check back, and a check only succeeds when its
// response comes from the address it was sent to (§7.2.5.2.1; pion enforces
// this). NATs are taken to use one public IP for all mappings ("paired"
// pooling, RFC 4787 REQ-2), as home NATs do.
//
// With EI = endpoint-independent, AD = address-dependent and APD =
// address-and-port-dependent, and "symmetric" for a mapping that is AD or
// APD, the outcome is:
//
//	both mappings EI                                -> direct (any filtering: simultaneous open)
//	A mapping EI, B symmetric: A filtering EI or AD -> direct (B's fresh port is admitted, learnt as peer-reflexive)
//	A mapping EI, B symmetric: A filtering APD      -> relay  (port-restricted cone vs symmetric)
//	both symmetric, both mappings APD               -> relay  (every answer comes from yet another port)
//	both symmetric, one filtering EI and the other
//	  EI or AD, and at least one mapping AD         -> direct
//	both symmetric, otherwise                       -> relay
//
// In the familiar names (columns and rows alike; "symmetric" with the
// address-and-port-dependent filtering such NATs normally have):
//
//	                  full cone  restricted  port-restr.  symmetric
//	full cone         direct     direct      direct       direct
//	restricted cone   direct     direct      direct       direct
//	port-restricted   direct     direct      direct       relay
//	symmetric         direct     direct      relay        relay (*)
//
// (*) direct only in the rare case above, e.g. a symmetric NAT that filters
// endpoint-independently against one that maps and filters by address only.
// A host with no NAT counts as endpoint-independent mapping with its
// firewall's filtering ("public/no NAT" is a full cone). UDP blocked on
// either side means relay. A field left unknown by discovery is tried with
// every value it could have: when all give the same answer that is the
// answer, otherwise DirectPossible says true ("worth trying") because ICE
// gathers relay candidates anyway, so an optimistic guess costs nothing
// while a pessimistic one could skip a path that works.
//
// TestDirectPossibleMatchesVNet checks this table against pion's vnet NAT
// emulation with an ICE-like exchange for every combination vnet offers.
func DirectPossible(a, b Behaviour) (bool, string) {
	if a.UDPBlocked || b.UDPBlocked {
		return false, "UDP is blocked on at least one side: only a relay reached over TCP can connect them"
	}
	yes, no := 0, 0
	var yesWhy, noWhy string
	for _, am := range mappingCandidates(a) {
		for _, af := range filteringCandidates(a) {
			for _, bm := range mappingCandidates(b) {
				for _, bf := range filteringCandidates(b) {
					ok, why := holePunch(am, af, bm, bf)
					if ok {
						yes++
						if yesWhy == "" {
							yesWhy = why
						}
					} else {
						no++
						if noWhy == "" {
							noWhy = why
						}
					}
				}
			}
		}
	}
	switch {
	case no == 0:
		return true, yesWhy
	case yes == 0:
		return false, noWhy
	default:
		return true, "depends on behaviour discovery could not measure; worth trying with a relay as fallback (if it works: " +
			yesWhy + "; if not: " + noWhy + ")"
	}
}

// mappingCandidates lists the mapping behaviours b may have.
func mappingCandidates(b Behaviour) []Dependence {
	if b.Public.IsValid() && !b.NATed {
		return []Dependence{EndpointIndependent}
	}
	switch b.Mapping {
	case EndpointIndependent, AddressDependent, AddressAndPortDependent:
		return []Dependence{b.Mapping}
	case EndpointDependent:
		return []Dependence{AddressDependent, AddressAndPortDependent}
	}
	return []Dependence{EndpointIndependent, AddressDependent, AddressAndPortDependent}
}

// filteringCandidates lists the filtering behaviours b may have.
func filteringCandidates(b Behaviour) []Dependence {
	switch b.Filtering {
	case EndpointIndependent, AddressDependent, AddressAndPortDependent:
		return []Dependence{b.Filtering}
	}
	return []Dependence{EndpointIndependent, AddressDependent, AddressAndPortDependent}
}

// holePunch is the table of DirectPossible for known behaviours: am and af
// are one side's mapping and filtering, bm and bf the other's, each one of
// EndpointIndependent, AddressDependent, AddressAndPortDependent.
func holePunch(am, af, bm, bf Dependence) (bool, string) {
	switch {
	case am == EndpointIndependent && bm == EndpointIndependent:
		return true, "both sides keep one public address for every destination, so each sends to the other's server-reflexive address and opens its own filter for the other's packets (simultaneous open)"
	case am == EndpointIndependent:
		return eiVersusSymmetric(af)
	case bm == EndpointIndependent:
		return eiVersusSymmetric(bf)
	case am == AddressAndPortDependent && bm == AddressAndPortDependent:
		return false, "both NATs pick a new port for every destination address and port, so every answer comes from a port the other side has not sent to and the checks never meet (symmetric vs symmetric)"
	case (af == EndpointIndependent && bf != AddressAndPortDependent) || (bf == EndpointIndependent && af != AddressAndPortDependent):
		return true, "both NATs map per destination, but one filters endpoint-independently so the first check reaches it, the other admits any port of an address it has sent to, and one maps per address only so the ports stop changing"
	default:
		return false, "both NATs map per destination and their filtering drops the first packets, which arrive from ports that were never sent to (symmetric vs symmetric)"
	}
}

// eiVersusSymmetric is the case of a side with endpoint-independent mapping
// and filtering f against a side whose mapping is endpoint-dependent.
func eiVersusSymmetric(f Dependence) (bool, string) {
	if f == AddressAndPortDependent {
		return false, "the symmetric side's NAT sends from a new, unpredictable port, and the other side's address-and-port-dependent filtering drops packets from any port it has not sent to (port-restricted cone vs symmetric)"
	}
	return true, "one side keeps one public address for every destination and its filtering admits the symmetric side's new port (it has sent to that address), so it learns that port as a peer-reflexive candidate and answers"
}

// ErrNoSTUNResponse is the outcome of a STUN transaction that got no answer
// after all its retransmissions: silence, as opposed to a local error.
var ErrNoSTUNResponse = errors.New("nat: no STUN response")

// ErrDiscoverConfig is a DiscoverConfig Discover cannot run with.
var ErrDiscoverConfig = errors.New("nat: invalid discovery configuration")

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

// DefaultDiscoverConfig returns the defaults; the caller sets Servers.
func DefaultDiscoverConfig() DiscoverConfig {
	return DiscoverConfig{RTO: 250 * time.Millisecond, Tries: 3}
}

// maxDiscoverTries bounds Tries: with doubling, 7 tries at 250 ms already
// wait half a minute.
const maxDiscoverTries = 7

// Discover runs NAT behaviour discovery against cfg.Servers and returns
// what it found. A network that answers nothing is a result (UDPBlocked),
// not an error; the error is for what stops the tests themselves: a bad
// configuration, a socket that cannot be opened, or ctx ending (the
// Behaviour then holds what was learnt so far). It takes between one round
// trip (no NAT, plain servers) and about four silent transactions (a filtering
// NAT, or servers that do not answer).
func Discover(ctx context.Context, cfg DiscoverConfig) (Behaviour, error) {
	var b Behaviour
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
	b       *Behaviour
	log     *zap.Logger
}

func newDiscovery(cfg DiscoverConfig, b *Behaviour) (*discovery, error) {
	d := DefaultDiscoverConfig()
	if cfg.RTO <= 0 {
		cfg.RTO = d.RTO
	}
	if cfg.Tries <= 0 {
		cfg.Tries = d.Tries
	}
	if cfg.Tries > maxDiscoverTries {
		cfg.Tries = maxDiscoverTries
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	var servers []netip.AddrPort
	for _, s := range cfg.Servers {
		s = netip.AddrPortFrom(s.Addr().Unmap(), s.Port())
		if !s.IsValid() || s.Port() == 0 || s.Addr().IsUnspecified() {
			return nil, fmt.Errorf("%w: bad STUN server address %s", ErrDiscoverConfig, s)
		}
		if len(servers) > 0 && s.Addr().Is4() != servers[0].Addr().Is4() {
			b.Evidence = append(b.Evidence, fmt.Sprintf("skipped %s: not of the same address family as %s", s, servers[0]))
			continue
		}
		servers = append(servers, s)
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("%w: no STUN server", ErrDiscoverConfig)
	}
	n := cfg.Net
	if n == nil {
		sn, err := stdnet.NewNet()
		if err != nil {
			return nil, fmt.Errorf("nat: discovery: host network: %w", err)
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
		return nil, fmt.Errorf("nat: discovery: open socket on %s: %w", laddr, err)
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
		case errors.Is(err, ErrNoSTUNResponse):
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
		d.b.Mapping, d.b.Filtering = DependenceUnknown, DependenceUnknown
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
		d.b.Mapping = EndpointIndependent
		d.note("mapping: mapped address equals the local address, so there is no NAT")
	case rfc5780:
		if err := d.mapping5780(ctx, mc, server, other, first.mapped); err != nil {
			return err
		}
	}
	if d.b.NATed && d.b.Mapping == DependenceUnknown {
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
		d.b.Mapping = EndpointIndependent
		d.note("mapping test II: %s saw %s, as %s did: endpoint-independent mapping", t2, a2.mapped, server)
		return nil
	}
	d.note("mapping test II: %s saw %s, not %s: the mapping depends on the destination", t2, a2.mapped, mapped1)
	a3, err := mc.roundTrip(ctx, other, 0)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if !d.answered("mapping test III", other, a3, err) {
		d.b.Mapping = EndpointDependent
		d.note("mapping: endpoint-dependent; whether the port matters is unknown (test III got no answer)")
		return nil
	}
	if a3.mapped == a2.mapped {
		d.b.Mapping = AddressDependent
		d.note("mapping test III: %s saw %s, as %s did: address-dependent mapping", other, a3.mapped, t2)
	} else {
		d.b.Mapping = AddressAndPortDependent
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
			d.b.Mapping = EndpointIndependent
			d.note("mapping: endpoint-independent (two servers on different addresses saw the same mapping)")
			return nil
		case portKnown && portChanges:
			d.b.Mapping = AddressAndPortDependent
			d.note("mapping: address-and-port-dependent (another port of the same server saw another mapping)")
			return nil
		case addrKnown && portKnown:
			d.b.Mapping = AddressDependent
			d.note("mapping: address-dependent (another server address saw another mapping, another port of the same address did not)")
			return nil
		}
	}
	switch {
	case addrKnown:
		d.b.Mapping = EndpointDependent
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
		d.b.Filtering = EndpointIndependent
		d.note("filtering test II: an answer from %s, never sent to, got through: endpoint-independent filtering", other)
		return nil
	case errors.Is(err, ErrNoSTUNResponse):
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
		d.b.Filtering = AddressDependent
		d.note("filtering test III: an answer from %s (same IP, port never sent to) got through: address-dependent filtering", want)
	case errors.Is(err, ErrNoSTUNResponse):
		d.b.Filtering = AddressAndPortDependent
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
	case errors.Is(err, ErrNoSTUNResponse):
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
	msg   stun.Message
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
// ErrNoSTUNResponse when every try went unanswered, ctx.Err() when ctx ends,
// and other errors for socket failures. Datagrams that are not the awaited
// response (late answers to earlier tests, strangers) are skipped.
func (c *stunClient) roundTrip(ctx context.Context, to netip.AddrPort, change uint32) (stunAnswer, error) {
	req := stun.New()
	req.Type = stun.BindingRequest
	req.TransactionID = stun.NewTransactionID()
	req.WriteHeader()
	if change != 0 {
		var v [4]byte
		binary.BigEndian.PutUint32(v[:], change)
		req.Add(stun.AttrChangeRequest, v[:])
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
	return stunAnswer{}, ErrNoSTUNResponse
}

// parse decodes a Binding response to transaction id. It rejects anything
// else, including responses without a usable mapped address.
func (c *stunClient) parse(b []byte, id [stun.TransactionIDSize]byte) (stunAnswer, bool) {
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
	case stun.BindingError:
		var ec stun.ErrorCodeAttribute
		a.code = 400 // an error response without ERROR-CODE is still an error
		if ec.GetFrom(m) == nil && ec.Code > 0 {
			a.code = int(ec.Code)
		}
		return a, true
	case stun.BindingSuccess:
	default:
		return stunAnswer{}, false
	}
	var x stun.XORMappedAddress
	if err := x.GetFrom(m); err == nil {
		a.mapped = stunAddrPort(x.IP, x.Port)
	} else {
		var ma stun.MappedAddress
		if ma.GetFrom(m) != nil {
			return stunAnswer{}, false
		}
		a.mapped = stunAddrPort(ma.IP, ma.Port)
	}
	if !a.mapped.IsValid() {
		return stunAnswer{}, false
	}
	var o stun.OtherAddress
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
