package natlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"

	"github.com/canopy-p2p/canopy/nat"
)

// Host is a machine of the lab: a network namespace with one interface,
// eth0, either on the internet segment (a public host) or on a home LAN
// behind its router.
type Host struct {
	// Name is the name given to Public or Home.
	Name string
	// NS is the host's network namespace, for `ip netns exec NS ...`.
	NS string
	// Kind is the host's internet access.
	Kind nat.Kind
	// Addr is the host's own (first) address: public for a public host,
	// private (on the home LAN) for a home host.
	Addr netip.Addr
	// Addrs are all of the host's addresses; Addrs[0] == Addr. Only public
	// hosts have more than one.
	Addrs []netip.Addr
	// Public is the address the internet sees the host's traffic come from:
	// Addr for a public host, the router's WAN address for a home host, the
	// carrier router's WAN address for CGNAT.
	Public netip.Addr
	// Gateway is the host's default gateway: its router's LAN address. A
	// public host has none (the zero Addr): every internet address is on
	// its segment.
	Gateway netip.Addr
	// Router is the home router NATing this host; nil for a public host.
	Router *Router
	// Carrier is the carrier-grade NAT in front of Router, for CGNAT only.
	Carrier *Router

	lab *Lab
}

// Router is a NAT router of a home (or the carrier-grade NAT in front of
// one): a namespace with a WAN interface "wan" and a LAN interface "lan".
type Router struct {
	// NS is the router's network namespace.
	NS string
	// Kind is the NAT behaviour the router implements: the home's kind, or
	// PortRestrictedCone for a CGNAT home's two routers.
	Kind nat.Kind
	// WAN is the router's address on its upstream side: on the internet,
	// or on the carrier network (100.64.0.0/10) for a CGNAT home router.
	WAN netip.Addr
	// LAN is the router's address on its downstream side.
	LAN netip.Addr
	// LANPrefix is the network behind the router.
	LANPrefix netip.Prefix

	lab  *Lab
	upnp *upnpDaemon
}

// String describes the host, e.g.
// "alice (port-restricted-cone, 192.168.1.2 behind 192.0.2.2)".
func (h *Host) String() string {
	if h.Kind == nat.Public {
		return fmt.Sprintf("%s (public, %s)", h.Name, h.Addr)
	}
	return fmt.Sprintf("%s (%s, %s behind %s)", h.Name, h.Kind, h.Addr, h.Public)
}

// Command returns a command that runs name with args inside the host's
// namespace, through `ip netns exec`. Like exec.CommandContext, ctx kills
// the process. A process still running when the lab is closed is killed.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return commandIn(ctx, h.lab.ipPath, h.NS, name, args...)
}

// Do runs fn inside the host's namespace: on the calling goroutine, locked
// to its OS thread, which is switched into the namespace (setns) for the
// duration of fn and switched back afterwards. It returns fn's error.
//
// Sockets opened inside fn belong to the host's namespace for their whole
// life, so they may be used, read and closed from any goroutine after Do
// returns. But goroutines started inside fn do NOT run in the namespace:
// they run on other threads, in the test process's own namespace. So
// anything that creates its sockets lazily on other goroutines (an
// http.Client's transport, a resolver) must be given a dialer that goes
// through Do, like DialContext. Use numeric addresses: the lab has no DNS.
//
// t.Fatal inside fn is fine: the namespace is restored as the goroutine
// unwinds.
func (h *Host) Do(fn func() error) error { return doIn(h.NS, fn) }

// ListenPacket is net.ListenPacket inside the host's namespace.
func (h *Host) ListenPacket(network, address string) (net.PacketConn, error) {
	var c net.PacketConn
	err := h.Do(func() (err error) {
		c, err = net.ListenPacket(network, address)
		return err
	})
	return c, err
}

// Listen is net.Listen inside the host's namespace.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	err := h.Do(func() (err error) {
		ln, err = net.Listen(network, address)
		return err
	})
	return ln, err
}

// DialContext is a net.Dialer's DialContext inside the host's namespace. Its
// signature fits http.Transport.DialContext and similar hooks.
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// Command returns a command that runs inside the router's namespace, e.g.
// `nft list ruleset` or `conntrack -L` to see what the NAT did.
func (r *Router) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return commandIn(ctx, r.lab.ipPath, r.NS, name, args...)
}

// Do runs fn inside the router's namespace, as Host.Do does.
func (r *Router) Do(fn func() error) error { return doIn(r.NS, fn) }

// UPnPLog returns what the router's miniupnpd has written so far, or "" if
// the home was not built WithUPnP.
func (r *Router) UPnPLog() string {
	if r.upnp == nil {
		return ""
	}
	return r.upnp.log()
}

// HostOption configures a host built by Public or Home.
type HostOption func(*hostConfig)

type hostConfig struct {
	netem    string
	shape    *linkShape // netem, parsed
	upnp     bool
	udpAllow []netip.AddrPort
	lan      netip.Prefix
}

func (c *hostConfig) parse() error {
	if c.netem == "" {
		return nil
	}
	s, err := parseNetem(c.netem)
	if err != nil {
		return fmt.Errorf("WithNetem %q: %w", c.netem, err)
	}
	c.shape = s
	return nil
}

// WithNetem shapes the host's link to the internet: spec uses the syntax
// of Linux netem (tc-netem(8)), of which "delay TIME [JITTER]" and "loss
// [random] PERCENT%" are supported, e.g. "delay 20ms 5ms loss 1%". It
// applies to each direction, so "delay 20ms" adds 40ms to a round trip. For
// a home it is the home router's WAN link; for CGNAT the link between the
// home router and the carrier. The kernels the project runs on have no netem
// qdisc, so such a link is a pair of TAP devices joined by the test process,
// which delays and drops frames itself (see wire.go): no reordering, and a
// throughput bounded by the process rather than the kernel.
func WithNetem(spec string) HostOption {
	return func(c *hostConfig) { c.netem = spec }
}

// WithUPnP runs Debian's miniupnpd on the home router (for CGNAT the inner,
// home one), so that the home host can ask for port mappings with UPnP-IGD
// (SSDP on the LAN, then SOAP) and NAT-PMP/PCP (UDP port 5351 of its
// gateway). Mapped ports forward for real: miniupnpd writes its dnat rules
// into nftables chains the lab creates for it. Home only.
//
// miniupnpd refuses to map ports when its WAN address is private or reserved
// (as the lab's documentation-range addresses are) unless a STUN check shows
// the WAN is reachable from outside; so the lab runs an RFC 5780 STUN server
// on two extra public addresses, and miniupnpd checks its WAN with it at
// start. A CGNAT home router gets no such check: miniupnpd sees its
// carrier-side address (100.64.0.0/10), answers NAT-PMP's public address
// request with result 3 (Network Failure) and refuses every mapping, as a
// real miniupnpd on a carrier-grade line does.
func WithUPnP() HostOption {
	return func(c *hostConfig) { c.upnp = true }
}

// WithUDPAllowed lets UDP between the home host and the given internet
// destinations (and their replies) through an UDPBlocked router, e.g. the
// STUN/TURN port of one supernode. UDPBlocked homes only.
func WithUDPAllowed(dsts ...netip.AddrPort) HostOption {
	return func(c *hostConfig) { c.udpAllow = append(c.udpAllow, dsts...) }
}

// WithLAN sets the home LAN, a private /24 (e.g. 192.168.1.0/24 for every
// home, as real homes have, to see how peers cope with identical private
// addresses). The router gets .1, the home host .2. Default: 192.168.N.0/24
// for the lab's Nth home. Home only.
func WithLAN(prefix netip.Prefix) HostOption {
	return func(c *hostConfig) { c.lan = prefix }
}

// hostName is what names given to Public and Home may look like: short, and
// without the "." that the lab's own namespaces (routers, the internet)
// carry, so that no host name can collide with them.
var hostName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// Public adds a host on the internet segment with naddrs (at least 1)
// addresses: the first from 203.0.113.0/24, then 198.51.100.0/24. A STUN
// server doing RFC 5780 behaviour discovery needs two. Options: WithNetem.
func (l *Lab) Public(name string, naddrs int, opts ...HostOption) *Host {
	l.tb.Helper()
	h, err := l.buildPublic(name, naddrs, opts)
	if err != nil {
		l.tb.Fatalf("natlab: public host %q: %v", name, err)
	}
	return h
}

// Home adds a home: a router of the given kind with its WAN on the internet
// segment (address from 192.0.2.0/24, then 198.51.100.0/24) and one home
// host behind it on a private LAN, whose default gateway is the router. A
// CGNAT home has a second, carrier router between the home router and the
// internet. Kind Public gives a public host, as Public(name, 1) does.
func (l *Lab) Home(name string, kind nat.Kind, opts ...HostOption) *Host {
	l.tb.Helper()
	if kind == nat.Public {
		return l.Public(name, 1, opts...)
	}
	cfg := configure(opts)
	if cfg.upnp {
		if _, err := findTool("miniupnpd"); err != nil {
			unavailable(l.tb, fmt.Errorf("WithUPnP: %v: install miniupnpd (.ci/natlab-deps)", err))
		}
	}
	h, err := l.buildHome(name, kind, cfg)
	if err != nil {
		l.tb.Fatalf("natlab: home %q (%s): %v", name, kind, err)
	}
	return h
}

func configure(opts []HostOption) hostConfig {
	var c hostConfig
	for _, o := range opts {
		o(&c)
	}
	return c
}

// claim checks a host name and reserves it. l.mu must be held.
func (l *Lab) claim(name string) error {
	if l.closed {
		return errors.New("lab is closed")
	}
	if !hostName.MatchString(name) {
		return fmt.Errorf("bad host name: want %s", hostName)
	}
	if _, ok := l.hosts[name]; ok {
		return errors.New("host name already used in this lab")
	}
	l.hosts[name] = nil
	return nil
}

func (l *Lab) buildPublic(name string, naddrs int, opts []HostOption) (*Host, error) {
	cfg := configure(opts)
	if cfg.upnp || cfg.udpAllow != nil || cfg.lan.IsValid() {
		return nil, errors.New("WithUPnP, WithUDPAllowed and WithLAN apply to homes only")
	}
	if naddrs < 1 {
		return nil, fmt.Errorf("naddrs %d: a host needs an address", naddrs)
	}
	if err := cfg.parse(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.claim(name); err != nil {
		return nil, err
	}
	h, err := l.publicLocked(name, l.prefix+"-"+name, naddrs, cfg)
	if err != nil {
		return nil, err
	}
	l.hosts[name] = h
	return h, nil
}

// publicLocked builds a public host in namespace ns. l.mu must be held.
func (l *Lab) publicLocked(name, ns string, naddrs int, cfg hostConfig) (*Host, error) {
	addrs := make([]netip.Addr, naddrs)
	for i := range addrs {
		a, err := allocAddr(publicPool, &l.nextPub)
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	if err := l.addNS(ns); err != nil {
		return nil, err
	}
	if err := l.attach(ns, "eth0", addrs, cfg.shape); err != nil {
		return nil, err
	}
	return &Host{Name: name, NS: ns, Kind: nat.Public, Addr: addrs[0], Addrs: addrs, Public: addrs[0], lab: l}, nil
}

func (l *Lab) buildHome(name string, kind nat.Kind, cfg hostConfig) (*Host, error) {
	if _, err := kind.MarshalText(); err != nil {
		return nil, err
	}
	if cfg.udpAllow != nil && kind != nat.UDPBlocked {
		return nil, errors.New("WithUDPAllowed applies to udp-blocked homes only")
	}
	for _, d := range cfg.udpAllow {
		if !d.Addr().Is4() {
			return nil, fmt.Errorf("WithUDPAllowed %s: the lab is IPv4 only", d)
		}
	}
	if err := cfg.parse(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.claim(name); err != nil {
		return nil, err
	}
	if l.nextHome >= maxHomes {
		return nil, fmt.Errorf("at most %d homes per lab", maxHomes)
	}
	l.nextHome++
	idx := l.nextHome

	lan := cfg.lan
	if !lan.IsValid() {
		lan = netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(idx), 0}), 24)
	}
	if lan.Bits() != 24 || !lan.Addr().Is4() || !lan.Addr().IsPrivate() || lan.Masked() != lan {
		return nil, fmt.Errorf("WithLAN %s: want a private IPv4 /24 such as 192.168.1.0/24", lan)
	}
	gw := lan.Addr().Next()
	hostAddr := gw.Next()

	router := &Router{NS: l.prefix + "-" + name + ".gw", Kind: kind, LAN: gw, LANPrefix: lan, lab: l}
	h := &Host{
		Name: name, NS: l.prefix + "-" + name, Kind: kind,
		Addr: hostAddr, Addrs: []netip.Addr{hostAddr}, Gateway: gw,
		Router: router, lab: l,
	}
	for _, ns := range []string{router.NS, h.NS} {
		if err := l.addNS(ns); err != nil {
			return nil, err
		}
	}
	if err := writeSysctls(router.NS, "net.ipv4.ip_forward", "1"); err != nil {
		return nil, err
	}

	// The router's upstream: the internet, or a carrier router for CGNAT.
	// WithNetem shapes the home router's WAN link.
	if kind == nat.CGNAT {
		carrierNet := netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(idx), 0}), 24)
		carrierLAN := carrierNet.Addr().Next()
		router.WAN = carrierLAN.Next()
		router.Kind = nat.PortRestrictedCone
		carrier := &Router{NS: l.prefix + "-" + name + ".cgn", Kind: nat.PortRestrictedCone, LAN: carrierLAN, LANPrefix: carrierNet, lab: l}
		if err := l.addNS(carrier.NS); err != nil {
			return nil, err
		}
		if err := writeSysctls(carrier.NS, "net.ipv4.ip_forward", "1"); err != nil {
			return nil, err
		}
		wan, err := allocAddr(wanPool, &l.nextWAN)
		if err != nil {
			return nil, err
		}
		carrier.WAN = wan
		if err := l.attach(carrier.NS, "wan", []netip.Addr{wan}, nil); err != nil {
			return nil, err
		}
		if err := l.link(carrier.NS, carrierNet, carrierLAN, router.NS, router.WAN, cfg.shape); err != nil {
			return nil, err
		}
		if err := l.nftables(carrier.NS, natRules{kind: nat.PortRestrictedCone, inside: carrierNet, host: router.WAN}.ruleset()); err != nil {
			return nil, err
		}
		h.Carrier = carrier
		h.Public = carrier.WAN
	} else {
		wan, err := allocAddr(wanPool, &l.nextWAN)
		if err != nil {
			return nil, err
		}
		router.WAN = wan
		if err := l.attach(router.NS, "wan", []netip.Addr{wan}, cfg.shape); err != nil {
			return nil, err
		}
		h.Public = wan
	}
	if err := l.link(router.NS, lan, gw, h.NS, hostAddr, nil); err != nil {
		return nil, err
	}
	rules := natRules{kind: router.Kind, inside: lan, host: hostAddr, udpAllow: cfg.udpAllow}
	if kind == nat.UDPBlocked {
		rules.kind = nat.UDPBlocked
	}
	ruleset := rules.ruleset()
	if cfg.upnp {
		ruleset += upnpTables
	}
	if err := l.nftables(router.NS, ruleset); err != nil {
		return nil, err
	}
	if cfg.upnp {
		if err := l.startUPnP(router, kind == nat.CGNAT); err != nil {
			return nil, err
		}
	}
	l.hosts[name] = h
	return h, nil
}

// link makes the LAN between an upstream router and the namespace below it:
// a link from "lan" in the upstream namespace (address upAddr on prefix) to
// "wan" in down for a router or "eth0" for a host (address downAddr), whose
// default route goes through upAddr. l.mu must be held.
func (l *Lab) link(up string, prefix netip.Prefix, upAddr netip.Addr, down string, downAddr netip.Addr, shape *linkShape) error {
	downIf := "eth0"
	if strings.HasSuffix(down, ".gw") {
		downIf = "wan"
	}
	if err := l.pair(up, "lan", down, downIf, shape); err != nil {
		return err
	}
	bits := prefix.Bits()
	return l.ipSteps([][]string{
		{"-n", up, "addr", "add", netip.PrefixFrom(upAddr, bits).String(), "dev", "lan"},
		{"-n", up, "link", "set", "lan", "up"},
		{"-n", down, "addr", "add", netip.PrefixFrom(downAddr, bits).String(), "dev", downIf},
		{"-n", down, "link", "set", downIf, "up"},
		{"-n", down, "route", "add", "default", "via", upAddr.String()},
	})
}

// pair makes a point-to-point link between interface ifA in namespace nsA
// and ifB in nsB: a veth pair, created in nsA with its peer sent straight
// into nsB (never through the machine's own namespace), or, when the link is
// shaped, a wire between two TAP devices. l.mu must be held.
func (l *Lab) pair(nsA, ifA, nsB, ifB string, shape *linkShape) error {
	if shape == nil {
		return run("", l.ipPath, "-n", nsA, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", nsB)
	}
	a, err := openTAP(nsA, ifA)
	if err != nil {
		return err
	}
	b, err := openTAP(nsB, ifB)
	if err != nil {
		a.Close()
		return err
	}
	l.wires = append(l.wires, startWire(a, b, shape))
	return nil
}

// nftables loads a ruleset into a namespace's nftables, atomically.
func (l *Lab) nftables(ns, ruleset string) error {
	return run(ruleset, l.ipPath, "netns", "exec", ns, l.nft, "-f", "-")
}
