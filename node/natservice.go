package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/nat/portmap"
	"github.com/canopy-p2p/canopy/nat/relay"
	"github.com/canopy-p2p/canopy/nat/stun"
	"github.com/canopy-p2p/canopy/promotion"
	"github.com/canopy-p2p/canopy/wire"
)

// natRecheck is how often the NAT behaviour is discovered again while the
// discovery servers stay the same: a home router that reboots or changes
// its address is noticed within this (gtk-gnutella re-checks its firewall
// every 20 min; docs/field-numbers.md).
const natRecheck = 20 * time.Minute

// Relayed ports at home. A TURN allocation's relayed address is the
// advertised IP with the relay socket's port; behind a home router that
// port must be forwarded too, or a peer whose packets the router has no
// conntrack entry for (one behind a symmetric NAT, whose source port
// changes per destination) is dropped at the router, and the relayed
// transfer fails. Mapping every port the kernel might pick is not possible,
// so a home supernode restricts its relay to a small range of ports it has
// mapped (UDP), each to the same external port, and caps its allocations at
// the number mapped.
const (
	// DefaultMappedRelayPorts is the size of that range: 16 allocations,
	// four leaves at relay.DefaultMaxAllocationsPerLeaf. A home relay
	// shares half the upstream (relay.DefaultMaxBytesPerSecond when none
	// is declared) at relay.DefaultMaxBytesPerSecondPerLeaf per leaf, so
	// two or three relayed transfers at a time are what it can carry; and
	// home routers' UPnP tables hold a few dozen mappings, of which this is
	// the largest share Canopy takes (with the control, gossip and TURN
	// ports).
	DefaultMappedRelayPorts = 16
	// relayPortOffset puts the range just above the TURN port, skipping
	// the next one, which RFC 5780 services conventionally use as their
	// alternate port (3479 next to 3478): 3480-3495 by default.
	relayPortOffset = 2
)

// natServices are the STUN and TURN services a supernode runs for its
// leaves: the TURN relay (which also answers plain STUN binding requests, so
// it is every leaf's server-reflexive source) and, optionally, an RFC 5780
// STUN service for NAT behaviour discovery.
type natServices struct {
	relay *relay.Relay // nil when TURN is off
	creds *relay.Creds // with relay
	stun  *stun.Server // nil when the discovery service is off

	// mu guards at: the advertiser moves it while leaf slots read it.
	mu sync.Mutex
	at natAddrs
}

// natAddrs is where leaves reach a supernode's services: the host of its
// advertised control address, on the ports as seen from there (the
// router's mapping for a home supernode). A zero port is not announced.
type natAddrs struct {
	IP       netip.Addr
	UDP, TCP uint16 // the TURN relay (UDP also STUN binding)
	STUN     uint16 // the RFC 5780 service
	// Why says what is left unannounced and why, "" when nothing is.
	Why string
}

// startNATServices starts the services cfg asks for, bound on this host; a
// service that cannot run (a port in use) is logged and left out rather
// than failing the promotion: leaves then fall back on the other
// supernodes' services. Where they are announced is setNATAddrs's.
func (n *Node) startNATServices(advertised string) *natServices {
	svc := &natServices{}
	local := hostIP(n.control)
	ip := hostIP(advertised).Unmap()
	if !ip.IsValid() {
		n.log.Warn("no STUN/TURN services: the advertised control host is not an IP address", zap.String("control", advertised))
		return svc
	}
	var err error
	if n.cfg.TURN != Off {
		svc.creds = relay.NewCreds(relay.CredsConfig{})
		rc := relay.DefaultConfig()
		rc.ListenUDP, rc.ListenTCP = []string{n.cfg.TURN}, n.cfg.TURN
		// Relayed candidates name the advertised IP: behind a home router
		// that is the router's, where the peer's packets arrive (the
		// relay's own sends open the router's filter for them).
		rc.RelayIP, rc.Creds, rc.Logger = ip, svc.creds, n.log
		rc.Quotas = n.cfg.RelayQuotas
		if q := &rc.Quotas; q.MaxBytesPerSecond == 0 {
			// A relay of last resort may take half the declared upstream
			// (the user's own transfers keep the rest), and at least what
			// one leaf may use.
			q.MaxBytesPerSecond = relay.DefaultMaxBytesPerSecond
			if n.cfg.UpBandwidth > 0 {
				q.MaxBytesPerSecond = int64(n.cfg.UpBandwidth / 2)
			}
			q.MaxBytesPerSecond = max(q.MaxBytesPerSecond, q.MaxBytesPerSecondPerLeaf)
		}
		if bind := hostIP(n.cfg.TURN); bind.IsValid() && !bind.IsUnspecified() {
			rc.RelayBindIP = bind
		} else {
			rc.RelayBindIP = netip.IPv4Unspecified()
		}
		if lo, hi, k := n.nat.relayPorts(); k > 0 && !publicIP(hostIP(n.control)) {
			// Behind the router that mapped them: relay sockets only on
			// the mapped ports, and no more allocations than there are.
			rc.RelayPortMin, rc.RelayPortMax = lo, hi
			q := &rc.Quotas
			if q.MaxAllocations == 0 {
				q.MaxAllocations = relay.DefaultMaxAllocations
			}
			if q.MaxAllocations == relay.Unlimited || q.MaxAllocations > int64(k) {
				q.MaxAllocations = int64(k)
			}
			if q.MaxAllocationsPerLeaf == 0 {
				q.MaxAllocationsPerLeaf = relay.DefaultMaxAllocationsPerLeaf
			}
			if q.MaxAllocationsPerLeaf == relay.Unlimited || q.MaxAllocationsPerLeaf > q.MaxAllocations {
				q.MaxAllocationsPerLeaf = q.MaxAllocations
			}
			n.log.Info("TURN relay restricted to the mapped ports", zap.Uint16("first", lo), zap.Uint16("last", hi),
				zap.Int64("max_allocations", q.MaxAllocations))
		}
		if svc.relay, err = relay.New(rc); err != nil {
			n.log.Warn("no TURN relay", zap.String("listen", n.cfg.TURN), zap.Error(err))
			svc.relay = nil
		}
	}
	if n.cfg.STUN != Off {
		primary, err := netip.ParseAddrPort(n.cfg.STUN)
		if err != nil {
			// A bare port binds this host's control address: the service
			// needs addresses of its own (RFC 5780), never the router's.
			primary = netip.AddrPortFrom(local, uint16(portOf(n.cfg.STUN)))
		}
		sc := stun.DefaultServerConfig()
		sc.Primary, sc.Alternate, sc.Logger = primary, n.cfg.STUNAlternate, n.log
		if s, err := stun.NewServer(sc); err != nil {
			n.log.Warn("no STUN discovery service", zap.String("listen", n.cfg.STUN), zap.Error(err))
		} else {
			svc.stun = s
		}
	}
	return svc
}

// natAddrsFor is where leaves reach svc's services while the supernode
// advertises control address advertised (announceAt, with what the node
// knows now).
func (n *Node) natAddrsFor(svc *natServices, advertised string) natAddrs {
	in := announceInput{Advertised: advertised}
	in.Control, _ = n.nat.mappings()
	in.TURNUDP, in.TURNTCP = n.nat.turnMappings()
	for _, p := range localNets() {
		in.LocalIPs = append(in.LocalIPs, p.Addr())
	}
	if r := svc.relay; r != nil {
		in.Relay = true
		if a := r.UDPAddrs(); len(a) > 0 {
			in.RelayUDP = a[0].Port()
		}
		in.RelayTCP = r.TCPAddr().Port()
	}
	if svc.stun != nil {
		in.STUN = svc.stun.Addrs()[0].Port()
	}
	return announceAt(in)
}

// announceInput is what decides where a supernode's services are
// announced.
type announceInput struct {
	// Advertised is the control address the supernode advertises.
	Advertised string
	// Control is the router's TCP mapping of the control port, and
	// TURNUDP, TURNTCP its mappings of the TURN port; invalid when none.
	Control, TURNUDP, TURNTCP netip.AddrPort
	// LocalIPs are this host's interface addresses.
	LocalIPs []netip.Addr
	// Relay says the TURN relay runs, bound on RelayUDP and RelayTCP (0:
	// no listener of that protocol).
	Relay              bool
	RelayUDP, RelayTCP uint16
	// STUN is the bound port of the RFC 5780 service, 0 without.
	STUN uint16
}

// announceAt says where leaves reach the services. On this host's own
// address (loopback, public, --advertise, or one dial-backs confirmed)
// they are on their bound ports. On the router's mapping they are on the
// router's mapping of the TURN port, UDP and TCP each as granted; a
// protocol the router did not map is not announced, since leaves would
// only wait for it, and neither is the RFC 5780 service (it needs two
// public addresses of its own).
func announceAt(in announceInput) natAddrs {
	at := natAddrs{IP: hostIP(in.Advertised).Unmap()}
	if !at.IP.IsValid() {
		at.Why = "the advertised control host is not an IP address"
		return at
	}
	viaRouter := in.Control.IsValid() && in.Control.Addr().Unmap() == at.IP &&
		!slices.ContainsFunc(in.LocalIPs, func(a netip.Addr) bool { return a.Unmap() == at.IP })
	granted := func(m netip.AddrPort) bool { return m.IsValid() && m.Port() != 0 && m.Addr().Unmap() == at.IP }
	var why []string
	switch {
	case !in.Relay:
	case !viaRouter:
		at.UDP, at.TCP = in.RelayUDP, in.RelayTCP
	default:
		if at.UDP = in.TURNUDP.Port(); in.RelayUDP == 0 || !granted(in.TURNUDP) {
			at.UDP = 0
			if in.RelayUDP != 0 {
				why = append(why, "TURN/UDP: the router does not map the TURN port")
			}
		}
		if at.TCP = in.TURNTCP.Port(); in.RelayTCP == 0 || !granted(in.TURNTCP) {
			at.TCP = 0
			if in.RelayTCP != 0 {
				why = append(why, "TURN/TCP: the router does not map the TURN port")
			}
		}
	}
	if in.STUN != 0 {
		if viaRouter {
			why = append(why, "RFC 5780 STUN: needs two public addresses of this host, and the router maps neither")
		} else {
			at.STUN = in.STUN
		}
	}
	at.Why = strings.Join(why, "; ")
	return at
}

// setNATAddrs announces svc's services where leaves reach them while the
// supernode advertises advertised (natAddrsFor), and moves the relay's
// address there. It reports whether anything changed, for the caller to
// send leaves their ICE servers again.
func (n *Node) setNATAddrs(svc *natServices, advertised string) bool {
	at := n.natAddrsFor(svc, advertised)
	if svc.relay != nil && at.IP.IsValid() && (at.UDP != 0 || at.TCP != 0) {
		if err := svc.relay.SetRelayIP(at.IP); err != nil {
			at.UDP, at.TCP = 0, 0
			at.Why = strings.TrimPrefix(at.Why+"; TURN: "+err.Error(), "; ")
		}
	}
	svc.mu.Lock()
	prev := svc.at
	svc.at = at
	svc.mu.Unlock()
	if prev == at {
		return false
	}
	if prev.IP.IsValid() {
		n.advert.stats.servicesMoved.Add(1)
	}
	if at.Why != "" {
		n.advert.stats.servicesWithheld.Add(1)
	}
	// Logged on a change only: the advertiser asks every few seconds.
	n.log.Info("STUN/TURN services announced", zap.Stringer("ip", at.IP), zap.Uint16("turn_udp", at.UDP),
		zap.Uint16("turn_tcp", at.TCP), zap.Uint16("stun", at.STUN), zap.String("not_announced", at.Why))
	return true
}

// iceServers is supernode.Config.ICEServers: the services where leaves
// reach them now, and one leaf's TURN credentials.
func (s *natServices) iceServers(leaf identity.NodeID, now time.Time) wire.ICEServers {
	s.mu.Lock()
	at := s.at
	s.mu.Unlock()
	var out wire.ICEServers
	if !at.IP.IsValid() {
		return out
	}
	if at.UDP != 0 {
		// The relay answers STUN binding requests on its UDP port.
		bound := netip.AddrPortFrom(at.IP, at.UDP).String()
		out.Servers = append(out.Servers, wire.ICEServer{URLs: []string{"stun:" + bound}})
		out.Discovery = bound
	}
	if at.STUN != 0 {
		out.Discovery = netip.AddrPortFrom(at.IP, at.STUN).String()
	}
	if s.relay == nil || (at.UDP == 0 && at.TCP == 0) {
		return out
	}
	// The relay's own URLs name its bound ports; leaves reach it at at's.
	turns := s.relay.TURNServers(leaf, now)
	if len(turns) == 0 {
		return out // the leaf is not attached (any more)
	}
	exp := now.Add(s.creds.TTL()).Unix()
	add := func(port uint16, transport string) {
		if port != 0 {
			url := "turn:" + netip.AddrPortFrom(at.IP, port).String() + "?transport=" + transport
			out.Servers = append(out.Servers, wire.ICEServer{URLs: []string{url}, Username: turns[0].Username, Credential: turns[0].Credential, Expires: exp})
		}
	}
	add(at.UDP, "udp")
	add(at.TCP, "tcp")
	return out
}

// Attach is supernode.RelayLeaves: the relay issues TURN credentials only
// to attached leaves and charges allocations only to them.
func (s *natServices) Attach(leaf identity.NodeID) {
	if s.relay != nil {
		s.relay.Attach(leaf)
	}
}

// Detach is supernode.RelayLeaves: the leaf's credentials stop working and
// its allocations close.
func (s *natServices) Detach(leaf identity.NodeID) {
	if s.relay != nil {
		s.relay.Detach(leaf)
	}
}

// close stops the services.
func (s *natServices) close() error {
	var errs []error
	if s.relay != nil {
		errs = append(errs, s.relay.Close())
	}
	if s.stun != nil {
		errs = append(errs, s.stun.Close())
	}
	return errors.Join(errs...)
}

// hostIP is the IP of a host:port listen address, or the zero Addr.
func hostIP(hostport string) netip.Addr {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return netip.Addr{}
	}
	ip, _ := netip.ParseAddr(host)
	return ip
}

// portOf is the port of a host:port (or ":port") address, 0 if none.
func portOf(hostport string) int {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0
	}
	port, _ := strconv.Atoi(p)
	return port
}

// natState is the node's knowledge of its own NAT: the last behaviour
// discovery against its supernodes' STUN services and the port mapping. The
// role loop starts discoveries; `canopy natcheck` runs one on demand.
type natState struct {
	mu      sync.Mutex
	last    api.NAT
	servers string // the servers of the last discovery, joined
	running bool
	mapper  *portmap.Mapper
	// gossipMapper maps the gossip port; nil when the node never becomes
	// a supernode or the port is not known before the role starts.
	gossipMapper *portmap.Mapper
	// turnMapper maps the TURN port (UDP and TCP), on the same terms.
	turnMapper *portmap.Mapper
	// relayMappers map the relay's port range (UDP), starting at
	// relayFirst, once the TURN port is mapped; nil otherwise.
	relayMappers []*portmap.Mapper
	relayFirst   uint16
}

// natDue reports whether a discovery should start: the node has discovery
// servers, none is running, and the servers changed or the last result is
// natRecheck old. It marks one as running when it says yes.
func (s *natState) natDue(now time.Time, servers []string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.Join(servers, ",")
	if len(servers) == 0 || s.running || (key == s.servers && now.Sub(s.last.CheckedAt) < natRecheck) {
		return false
	}
	s.running = true
	return true
}

// discoverNAT runs NAT behaviour discovery against the attached supernodes'
// STUN services and records the result.
func (n *Node) discoverNAT(ctx context.Context, servers []string) api.NAT {
	res := api.NAT{CheckedAt: time.Now()}
	var addrs []netip.AddrPort
	for _, s := range servers {
		if a, err := netip.ParseAddrPort(s); err == nil {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		res.Kind, res.Error = "unknown", "no supernode with a STUN service is attached yet"
	} else {
		cfg := stun.DefaultDiscoverConfig()
		cfg.Servers, cfg.Logger = addrs, n.log
		b, err := stun.Discover(ctx, cfg)
		res.Kind, res.Mapping, res.Filtering = b.Classify(), b.Mapping.String(), b.Filtering.String()
		res.Evidence = slices.Clone(b.Evidence)
		if b.Public.IsValid() {
			res.Public = b.Public.String()
		}
		if b.Local.IsValid() {
			res.Local = b.Local.String()
		}
		if err != nil {
			res.Error = err.Error()
		}
	}
	n.nat.mu.Lock()
	n.nat.last, n.nat.servers, n.nat.running = res, strings.Join(servers, ","), false
	n.nat.mu.Unlock()
	n.log.Info("NAT behaviour", zap.String("kind", res.Kind), zap.String("mapping", res.Mapping),
		zap.String("filtering", res.Filtering), zap.String("public", res.Public), zap.String("error", res.Error))
	return res
}

// maybeDiscoverNAT starts a discovery in the background when one is due.
func (n *Node) maybeDiscoverNAT(now time.Time) {
	servers := n.leaf.DiscoveryServers()
	if !n.nat.natDue(now, servers) {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
		defer cancel()
		n.discoverNAT(ctx, servers)
	}()
}

// NATCheck runs NAT behaviour discovery now and returns what the node knows
// of its NAT, reachability and port mapping.
func (n *Node) NATCheck(ctx context.Context) api.NAT {
	n.discoverNAT(ctx, n.leaf.DiscoveryServers())
	return n.natStatus()
}

// natStatus is the last discovery with the port mapping and the
// reachability verdict.
func (n *Node) natStatus() api.NAT {
	n.nat.mu.Lock()
	st, mapper := n.nat.last, n.nat.mapper
	n.nat.mu.Unlock()
	if st.CheckedAt.IsZero() {
		st.Kind = "unknown"
		st.Error = "not checked yet: discovery runs once a supernode with a STUN service is attached"
	}
	if mapper != nil {
		st.PortMap = mapper.State().String()
	} else if n.cfg.PortMap {
		st.PortMap = "trying the router (NAT-PMP, UPnP-IGD)…"
	} else {
		st.PortMap = "off"
	}
	now := time.Now()
	st.Reachability.Verdict, st.Reachability.Evidence = n.reach.evidence(now)
	st.Reachability.ProbesReceived, _ = n.probes.get()
	return st
}

// mapPort asks the router to forward the control port (NAT-PMP, then
// UPnP-IGD), so that a node behind a cooperative home router becomes
// reachable; the mapper renews the mapping and removes it on close. A node
// that may become a supernode maps its gossip port too, UDP and TCP as
// memberlist uses both, so that the ring can gossip with it behind the
// router: the supernode advertises the mapped ports (startSupernode). It
// maps the TURN port too, UDP and TCP, so that leaves reach the relay (and
// its STUN binding service) at the router's address (natAddrsFor).
func (n *Node) mapPort() {
	defer n.wg.Done()
	port := n.ln.Addr().(*net.TCPAddr).Port
	cfg := portmap.DefaultConfig()
	cfg.LocalPort, cfg.TCP, cfg.Logger, cfg.Description = uint16(port), true, n.log, fmt.Sprintf("canopy %s", n.id.ID.Short())
	m, err := portmap.Map(n.ctx, cfg)
	if err != nil {
		n.log.Info("port mapping", zap.Error(err))
	}
	var gm *portmap.Mapper
	// Port 0 (tests) means memberlist picks one when the role starts, too
	// late to map it for the address the supernode advertises.
	if gp := portOf(n.cfg.gossipAddr(n.ln.Addr().(*net.TCPAddr))); n.cfg.Consent != promotion.ConsentNever && gp > 0 && gp != port {
		gcfg := cfg
		gcfg.LocalPort, gcfg.Description = uint16(gp), cfg.Description+" gossip"
		if gm, err = portmap.Map(n.ctx, gcfg); err != nil {
			n.log.Info("gossip port mapping", zap.Error(err))
		}
	}
	var tm *portmap.Mapper
	// Port 0 is left alone for the same reason; a TURN port that is the
	// control or gossip port is already mapped (and would clash).
	if tp := portOf(n.cfg.TURN); n.cfg.Consent != promotion.ConsentNever && n.cfg.TURN != Off && tp > 0 && tp != port &&
		tp != portOf(n.cfg.gossipAddr(n.ln.Addr().(*net.TCPAddr))) {
		tcfg := cfg
		tcfg.LocalPort, tcfg.Description = uint16(tp), cfg.Description+" turn"
		if tm, err = portmap.Map(n.ctx, tcfg); err != nil {
			n.log.Info("TURN port mapping", zap.Error(err))
		}
	}
	var rms []*portmap.Mapper
	first := uint16(0)
	// Only behind a router that mapped the TURN port: without one, each
	// of the range's mappings would wait out the router's timeouts.
	if tm != nil && tm.State().External.IsValid() {
		tp := portOf(n.cfg.TURN)
		first = uint16(tp + relayPortOffset)
		busy := []int{port, portOf(n.cfg.gossipAddr(n.ln.Addr().(*net.TCPAddr))), tp}
		for i := range DefaultMappedRelayPorts {
			p := tp + relayPortOffset + i
			if p > 65535 || slices.Contains(busy, p) {
				break // the range ends before a port used otherwise
			}
			rcfg := cfg
			rcfg.LocalPort, rcfg.TCP, rcfg.Description = uint16(p), false, fmt.Sprintf("%s relay %d", cfg.Description, i)
			rm, err := portmap.Map(n.ctx, rcfg)
			if err != nil {
				n.log.Info("relay port mapping", zap.Int("port", p), zap.Error(err))
				break
			}
			rms = append(rms, rm)
		}
		lo, hi, k := relayRun(first, tm.State().External.Addr(), mapperStates(rms))
		n.log.Info("relay ports mapped", zap.Uint16("first", lo), zap.Uint16("last", hi), zap.Int("ports", k),
			zap.Int("asked", len(rms)))
	}
	n.nat.mu.Lock()
	n.nat.mapper, n.nat.gossipMapper, n.nat.turnMapper = m, gm, tm
	n.nat.relayMappers, n.nat.relayFirst = rms, first
	n.nat.mu.Unlock()
}

// mapperStates returns the mappers' states, in order.
func mapperStates(ms []*portmap.Mapper) []portmap.State {
	out := make([]portmap.State, len(ms))
	for i, m := range ms {
		out[i] = m.State()
	}
	return out
}

// relayRun is the range of relay ports usable behind the router: the
// ports first, first+1, ... whose UDP mapping (states, in that order) the
// router granted on the external address ext at the same port number,
// since a relayed address names the relay socket's own port. It stops at
// the first port that is not so mapped. n is 0 when none is.
func relayRun(first uint16, ext netip.Addr, states []portmap.State) (lo, hi uint16, n int) {
	for i, st := range states {
		want := int(first) + i
		if !st.External.IsValid() || st.External.Addr().Unmap() != ext.Unmap() || int(st.External.Port()) != want {
			break
		}
		n++
	}
	if n == 0 {
		return 0, 0, 0
	}
	return first, first + uint16(n-1), n
}

// relayPorts is the mapped relay port range now (relayRun), n 0 when
// there is none.
func (s *natState) relayPorts() (lo, hi uint16, n int) {
	s.mu.Lock()
	tm, rms, first := s.turnMapper, s.relayMappers, s.relayFirst
	s.mu.Unlock()
	if tm == nil || len(rms) == 0 {
		return 0, 0, 0
	}
	ext := tm.State().External
	if !ext.IsValid() {
		return 0, 0, 0
	}
	return relayRun(first, ext.Addr(), mapperStates(rms))
}

// closeMappers deletes the port mappings; the node has stopped mapPort.
func (s *natState) closeMappers() error {
	s.mu.Lock()
	m, gm, tm := s.mapper, s.gossipMapper, s.turnMapper
	all := append([]*portmap.Mapper{m, gm, tm}, s.relayMappers...)
	s.mu.Unlock()
	var errs []error
	for _, x := range all {
		if x != nil {
			errs = append(errs, x.Close())
		}
	}
	return errors.Join(errs...)
}

// mappings returns the router's TCP mapping of the control port and the
// mapping of the gossip port (valid only when UDP and TCP got the same
// external port, since memberlist advertises one port for both).
func (s *natState) mappings() (control, gossip netip.AddrPort) {
	s.mu.Lock()
	m, gm := s.mapper, s.gossipMapper
	s.mu.Unlock()
	if m != nil {
		control = m.State().ExternalTCP
	}
	if gm != nil {
		if st := gm.State(); st.External.IsValid() && st.External == st.ExternalTCP {
			gossip = st.External
		}
	}
	return control, gossip
}

// turnMappings returns the router's mappings of the TURN port, UDP and
// TCP; each is invalid when the router did not grant it. The external
// ports may differ from the local one and from each other.
func (s *natState) turnMappings() (udp, tcp netip.AddrPort) {
	s.mu.Lock()
	tm := s.turnMapper
	s.mu.Unlock()
	if tm == nil {
		return udp, tcp
	}
	st := tm.State()
	return st.External, st.ExternalTCP
}

// needsMapping reports whether a control address on this host is one that
// others could not reach without the router's help: neither loopback nor
// public.
func needsMapping(control string) bool {
	ip := hostIP(control)
	return !ip.IsValid() || !(ip.IsLoopback() || publicIP(ip))
}

// chooseAdvert chooses the control address the supernode role advertises
// (chooseAdvertise), from what the node knows now; seeds are ring members'
// control addresses the caller knows of beyond the node's own view (those
// it joins through). A node that founds a network, no seed having
// answered, has no ring yet: its own network is the whole ring until its
// advertLoop finds better (a mapping granted later).
func (n *Node) chooseAdvert(now time.Time, seeds []string) advertChoice {
	in := advertInput{Explicit: n.cfg.Advertise, LocalNets: localNets(), Ring: slices.Clone(seeds)}
	in.Local, _ = netip.ParseAddrPort(n.control)
	in.Mapped, _ = n.nat.mappings()
	in.Observed = n.advert.obs.list(now)
	if l := n.leaf; l != nil {
		for _, p := range l.Known() {
			if p.ID != n.id.ID {
				in.Ring = append(in.Ring, p.Control)
			}
		}
	}
	if sn := n.Supernode(); sn != nil {
		for _, m := range sn.Members() {
			if !m.Self {
				in.Ring = append(in.Ring, m.Meta.Control)
			}
		}
	}
	in.Ring = slices.DeleteFunc(in.Ring, func(r string) bool { return r == "" || r == n.control || r == in.Explicit })
	slices.Sort(in.Ring)
	in.Ring = slices.Compact(in.Ring)
	return chooseAdvertise(in)
}

// gossipAdvertise is supernode.Config.GossipAdvertise for a supernode
// advertising control: the router's mapping of the gossip port when the
// control address is the router's too; otherwise "" (the control host and
// the bound port).
func (n *Node) gossipAdvertise(control string) string {
	_, g := n.nat.mappings()
	if !g.IsValid() || hostIP(control).Unmap() != g.Addr().Unmap() {
		return ""
	}
	return g.String()
}

// refuseAdvert counts and logs (one line per DefaultAdvertLogInterval) a
// supernode role refused for want of an address others could reach.
func (n *Node) refuseAdvert(now time.Time, c advertChoice) error {
	n.advert.stats.refused.Add(1)
	if last := n.advert.lastLog.Load(); now.UnixNano()-last >= int64(DefaultAdvertLogInterval) && n.advert.lastLog.CompareAndSwap(last, now.UnixNano()) {
		n.log.Warn("not becoming a supernode: no address others could reach", zap.String("reason", c.Reason),
			zap.Uint64("refused", n.advert.stats.refused.Load()))
	}
	return fmt.Errorf("%w: %s (set --advertise, or let the router map the port)", ErrNoReachableAddress, c.Reason)
}

// onDialBack is the leaf side's dial-back callback: a success confirms the
// address the supernode dialled (the host it saw the leaf's link come from,
// the control port) for the advertised address, a failure withdraws that
// supernode's confirmation; then the reachability verdict gets it.
func (n *Node) onDialBack(from identity.NodeID, res wire.DialBackResult) {
	if from != n.id.ID {
		n.advert.obs.record(time.Now(), from.String(), res.Addr, res.OK)
	}
	n.dialBackResult(from, res)
}

// advertLoop keeps a running supernode's advertised control address the one
// others can reach: when the router's mapping is renewed with another port,
// or dial-backs confirm a new public address, the supernode republishes its
// metadata (and the ring verifies it at the new address), and its leaves
// get their ICE servers again at the new address. It is the only
// goroutine that changes the address, or the services', after the role
// starts.
func (n *Node) advertLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(DefaultAdvertInterval)
	defer tick.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		}
		n.mu.Lock()
		sn, svc := n.sn, n.svc
		n.mu.Unlock()
		if sn == nil {
			continue
		}
		if c := n.chooseAdvert(time.Now(), nil); c.Source != AdvertExplicit && c.Addr != "" && c.Addr != sn.Control() {
			prev := sn.Control()
			if err := sn.SetControl(c.Addr); err != nil {
				n.log.Debug("republishing the advertised address", zap.Error(err))
			}
			n.advert.stats.changed.Add(1)
			n.log.Info("advertised control address changed", zap.String("from", prev), zap.String("to", c.Addr),
				zap.String("source", c.Source), zap.String("why", c.Reason))
		}
		// The services follow the advertised address, and the router's
		// mapping of the TURN port, which a renewal may move on its own.
		if svc != nil && n.setNATAddrs(svc, sn.Control()) {
			sn.RefreshICEServers()
		}
	}
}

// AdvertStats returns the counts of advertised-address decisions.
func (n *Node) AdvertStats() AdvertStats { return n.advert.stats.Snapshot() }
