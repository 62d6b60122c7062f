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
	"github.com/canopy-p2p/canopy/wire"
)

// natRecheck is how often the NAT behaviour is discovered again while the
// discovery servers stay the same: a home router that reboots or changes
// its address is noticed within this (gtk-gnutella re-checks its firewall
// every 20 min; docs/field-numbers.md).
const natRecheck = 20 * time.Minute

// natServices are the STUN and TURN services a supernode runs for its
// leaves: the TURN relay (which also answers plain STUN binding requests, so
// it is every leaf's server-reflexive source) and, optionally, an RFC 5780
// STUN service for NAT behaviour discovery.
type natServices struct {
	relay     *relay.Relay // nil when TURN is off
	creds     *relay.Creds // with relay
	stun      *stun.Server // nil when the discovery service is off
	stunURLs  []string     // binding services, as ICE URLs
	discovery string       // host:port leaves run discovery against
}

// startNATServices starts the services cfg asks for, on the node's
// advertised IP; a service that cannot run (no IP address to advertise, a
// port in use) is logged and left out rather than failing the promotion:
// leaves then fall back on the other supernodes' services.
func (n *Node) startNATServices() *natServices {
	svc := &natServices{}
	host, _, _ := net.SplitHostPort(n.control)
	ip, err := netip.ParseAddr(host)
	if err != nil {
		n.log.Warn("no STUN/TURN services: the advertised control host is not an IP address", zap.String("host", host))
		return svc
	}
	if n.cfg.TURN != Off {
		svc.creds = relay.NewCreds(relay.CredsConfig{})
		rc := relay.DefaultConfig()
		rc.ListenUDP, rc.ListenTCP = []string{n.cfg.TURN}, n.cfg.TURN
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
		if svc.relay, err = relay.New(rc); err != nil {
			n.log.Warn("no TURN relay", zap.String("listen", n.cfg.TURN), zap.Error(err))
			svc.relay = nil
		} else if addrs := svc.relay.UDPAddrs(); len(addrs) > 0 {
			bound := netip.AddrPortFrom(ip, addrs[0].Port())
			svc.stunURLs = append(svc.stunURLs, "stun:"+bound.String())
			svc.discovery = bound.String()
		}
	}
	if n.cfg.STUN != Off {
		primary, err := netip.ParseAddrPort(n.cfg.STUN)
		if err != nil {
			port := portOf(n.cfg.STUN)
			primary = netip.AddrPortFrom(ip, uint16(port))
		}
		sc := stun.DefaultServerConfig()
		sc.Primary, sc.Alternate, sc.Logger = primary, n.cfg.STUNAlternate, n.log
		if s, err := stun.NewServer(sc); err != nil {
			n.log.Warn("no STUN discovery service", zap.String("listen", n.cfg.STUN), zap.Error(err))
		} else {
			svc.stun = s
			// Leaves reach it at the advertised IP, on the port it bound.
			svc.discovery = netip.AddrPortFrom(ip, s.Addrs()[0].Port()).String()
		}
	}
	return svc
}

// iceServers is supernode.Config.ICEServers: the services and one leaf's
// TURN credentials.
func (s *natServices) iceServers(leaf identity.NodeID, now time.Time) wire.ICEServers {
	out := wire.ICEServers{Discovery: s.discovery}
	if len(s.stunURLs) > 0 {
		out.Servers = append(out.Servers, wire.ICEServer{URLs: s.stunURLs})
	}
	if s.relay != nil {
		exp := now.Add(s.creds.TTL()).Unix()
		for _, t := range s.relay.TURNServers(leaf, now) {
			out.Servers = append(out.Servers, wire.ICEServer{URLs: []string{t.URL}, Username: t.Username, Credential: t.Credential, Expires: exp})
		}
	}
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
// reachable; the mapper renews the mapping and removes it on close.
func (n *Node) mapPort() {
	defer n.wg.Done()
	port := n.ln.Addr().(*net.TCPAddr).Port
	cfg := portmap.DefaultConfig()
	cfg.LocalPort, cfg.TCP, cfg.Logger, cfg.Description = uint16(port), true, n.log, fmt.Sprintf("canopy %s", n.id.ID.Short())
	m, err := portmap.Map(n.ctx, cfg)
	if err != nil {
		n.log.Info("port mapping", zap.Error(err))
	}
	n.nat.mu.Lock()
	n.nat.mapper = m
	n.nat.mu.Unlock()
}
