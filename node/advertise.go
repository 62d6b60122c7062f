package node

// This file chooses the control address a supernode advertises in gossip:
// the one other nodes can reach. A home node that promotes itself sits
// behind a router, and the first address of its own interfaces is a private
// one nobody outside can dial; what others can reach is the router's port
// mapping, or the address supernodes saw it at and dialled it back on.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/canopy-p2p/canopy/nat/reach"
)

// Sources of an advertised control address (advertChoice.Source).
const (
	// AdvertExplicit is --advertise: the user knows best.
	AdvertExplicit = "explicit"
	// AdvertLoopback is a loopback control address: a test or demo network
	// on one machine.
	AdvertLoopback = "loopback"
	// AdvertPublic is this host's own address, which is public.
	AdvertPublic = "public"
	// AdvertMapped is the home router's port mapping of the control port.
	AdvertMapped = "port-mapping"
	// AdvertObserved is the address supernodes saw this node's links come
	// from and reached it at when they dialled it back.
	AdvertObserved = "observed"
	// AdvertLAN is this host's private address, when every known ring
	// member is on the same private network (or none is known yet).
	AdvertLAN = "lan"
)

// DefaultMaxAddrObservers bounds the supernodes whose last confirmed
// dial-back address the node remembers. A leaf is attached to at most a
// few (leaf.DefaultAttach, 3) and the reachability tracker needs two
// observers (reach.DefaultMinObservers); 16 keeps the confirmations of the
// supernodes of several attachment rounds, and the oldest is forgotten
// first.
const DefaultMaxAddrObservers = 16

// DefaultObservedTTL is how long a confirmed dial-back address counts: as
// long as the reachability verdict counts the dial-back itself
// (reach.DefaultResultTTL).
const DefaultObservedTTL = reach.DefaultResultTTL

// DefaultAdvertInterval is how often a supernode checks that its advertised
// control address is still the best one. Mappings change at renewal (half
// their lifetime, an hour by default) and confirmations at the dial-back
// pace (reach.DefaultRetryInterval, 30 s at most): a few seconds notices
// either well within a gossip round's spread, for a few locks each time.
const DefaultAdvertInterval = 5 * time.Second

// DefaultAdvertLogInterval paces the log line about a supernode role
// refused for want of a reachable address: the role loop asks again every
// RoleInterval (30 s), and one line a minute says it all.
const DefaultAdvertLogInterval = time.Minute

// advertState is the node's evidence for its advertised address and the
// counts of its decisions.
type advertState struct {
	obs     *observations
	stats   advertCounters
	lastLog atomic.Int64 // unix nanoseconds of the last refusal logged
}

// ErrNoReachableAddress is why a node refuses the supernode role: it knows
// no address others could reach it at, so the ring could not verify it and
// leaves could not attach.
var ErrNoReachableAddress = errors.New("node: no reachable address to advertise as a supernode")

// cgnatPrefix is the shared address space of carrier-grade NATs (RFC 6598):
// not private in Go's sense, yet nobody on the internet can dial it.
var cgnatPrefix = netip.MustParsePrefix("100.64.0.0/10")

// publicIP reports whether ip can be dialled from the internet: a global
// unicast address outside the private (RFC 1918, RFC 4193) and carrier
// (RFC 6598) ranges. The RFC 5737 documentation ranges count as public:
// the NAT lab's internet is made of them.
func publicIP(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !cgnatPrefix.Contains(ip)
}

// observedAddr is an address dial-backs confirmed, with how many distinct
// supernodes confirmed it and when the last one did.
type observedAddr struct {
	Addr      netip.AddrPort
	Observers int
	Last      time.Time
}

// advertInput is what the node knows about where it can be reached.
type advertInput struct {
	// Explicit is Config.Advertise ("" when not set).
	Explicit string
	// Local is the control address on this host: the listen host, or the
	// first address of its interfaces, with the bound port.
	Local netip.AddrPort
	// LocalNets are the networks of this host's interfaces.
	LocalNets []netip.Prefix
	// Mapped is the router's TCP mapping of the control port; invalid
	// when there is none.
	Mapped netip.AddrPort
	// Observed are the addresses dial-backs confirmed.
	Observed []observedAddr
	// Ring are the control addresses of the other ring members the node
	// knows of (seeds, ring members, supernodes its leaf side heard of).
	Ring []string
}

// advertChoice is the address to advertise and why; Addr is "" when there
// is none that others could reach.
type advertChoice struct {
	Addr   string
	Source string
	Reason string
}

// chooseAdvertise picks the control address a supernode advertises: an
// explicit one; else a loopback or public address of this host; else the
// router's port mapping; else the public address dial-backs confirmed
// (confirmed by the most supernodes, so that one lying supernode cannot
// move the node elsewhere); else this host's private address, but only if
// every ring member it knows of sits on that private network. Otherwise
// there is nothing others could reach, and Addr is "".
func chooseAdvertise(in advertInput) advertChoice {
	if in.Explicit != "" {
		return advertChoice{in.Explicit, AdvertExplicit, "set with --advertise"}
	}
	local := in.Local.Addr().Unmap()
	if in.Local.IsValid() && local.IsLoopback() {
		return advertChoice{in.Local.String(), AdvertLoopback, "the control listener is on loopback: a network on this machine"}
	}
	if in.Local.IsValid() && publicIP(local) {
		return advertChoice{in.Local.String(), AdvertPublic, "this host's own address is public"}
	}
	obs := slices.Clone(in.Observed)
	slices.SortStableFunc(obs, func(a, b observedAddr) int {
		if a.Observers != b.Observers {
			return b.Observers - a.Observers
		}
		return b.Last.Compare(a.Last)
	})
	obs = slices.DeleteFunc(obs, func(o observedAddr) bool { return !o.Addr.IsValid() || !publicIP(o.Addr.Addr()) || o.Observers <= 0 })
	if in.Mapped.IsValid() && publicIP(in.Mapped.Addr()) {
		// A router behind a second NAT maps ports on an address the
		// internet never sees: when dial-backs reached the node only at
		// another address, the mapping is not where others come from.
		confirmed := len(obs) == 0 || slices.ContainsFunc(obs, func(o observedAddr) bool { return o.Addr.Addr().Unmap() == in.Mapped.Addr().Unmap() })
		if confirmed {
			return advertChoice{in.Mapped.String(), AdvertMapped, "the home router forwards this port"}
		}
	}
	if len(obs) > 0 {
		best := obs[0]
		why := fmt.Sprintf("%d supernode(s) dialled this node back there", best.Observers)
		if in.Mapped.IsValid() && publicIP(in.Mapped.Addr()) {
			why += fmt.Sprintf("; the router's mapping %s was never reached (a second NAT in front of it?)", in.Mapped)
		}
		return advertChoice{best.Addr.String(), AdvertObserved, why}
	}
	if !in.Local.IsValid() {
		return advertChoice{"", "", "no address of this host is known"}
	}
	if len(in.Ring) == 0 {
		return advertChoice{in.Local.String(), AdvertLAN, "no other ring member is known: a network starting on this host's network"}
	}
	if p, ok := ringOnNetwork(local, in.LocalNets, in.Ring); ok {
		return advertChoice{in.Local.String(), AdvertLAN, "every known ring member is on this host's network " + p.String()}
	}
	return advertChoice{"", "", fmt.Sprintf("no reachable address: no port mapping, no dial-back confirmed a public address, and this host's address %s is private while ring members are elsewhere", local)}
}

// ringOnNetwork reports whether every ring address is an IP in the same
// private network of this host's interfaces as local, and which.
func ringOnNetwork(local netip.Addr, nets []netip.Prefix, ring []string) (netip.Prefix, bool) {
	for _, p := range nets {
		if !p.Contains(local) || !local.IsPrivate() {
			continue
		}
		all := true
		for _, r := range ring {
			host, _, err := net.SplitHostPort(r)
			ip, perr := netip.ParseAddr(host)
			if err != nil || perr != nil || !p.Contains(ip.Unmap()) {
				all = false // a name or an address elsewhere
				break
			}
		}
		if all {
			return p.Masked(), true
		}
	}
	return netip.Prefix{}, false
}

// observations remembers, per supernode, the last address its dial-back
// reached this node at. Dial-back results arrive on leaf link readers; the
// advertiser reads it.
type observations struct {
	mu  sync.Mutex
	ttl time.Duration
	max int
	by  map[string]observation
}

type observation struct {
	addr netip.AddrPort
	at   time.Time
}

func newObservations(max int, ttl time.Duration) *observations {
	return &observations{max: max, ttl: ttl, by: make(map[string]observation)}
}

// record notes a dial-back result of observer: a success confirms addr; a
// failure withdraws whatever observer confirmed before.
func (o *observations) record(now time.Time, observer, addr string, ok bool) {
	ap, err := netip.ParseAddrPort(addr)
	o.mu.Lock()
	defer o.mu.Unlock()
	if !ok || err != nil {
		delete(o.by, observer)
		return
	}
	if _, known := o.by[observer]; !known && len(o.by) >= o.max {
		oldest := ""
		for id, ob := range o.by {
			if oldest == "" || ob.at.Before(o.by[oldest].at) {
				oldest = id
			}
		}
		delete(o.by, oldest)
	}
	o.by[observer] = observation{addr: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), at: now}
}

// list returns the confirmed addresses younger than the TTL, each with its
// number of observers.
func (o *observations) list(now time.Time) []observedAddr {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []observedAddr
	for id, ob := range o.by {
		if now.Sub(ob.at) > o.ttl {
			delete(o.by, id)
			continue
		}
		i := slices.IndexFunc(out, func(x observedAddr) bool { return x.Addr == ob.addr })
		if i < 0 {
			out = append(out, observedAddr{Addr: ob.addr})
			i = len(out) - 1
		}
		out[i].Observers++
		if ob.at.After(out[i].Last) {
			out[i].Last = ob.at
		}
	}
	slices.SortFunc(out, func(a, b observedAddr) int { return strings.Compare(a.Addr.String(), b.Addr.String()) })
	return out
}

// AdvertStats counts the advertised-address decisions (Node.AdvertStats).
type AdvertStats struct {
	// Refused counts promotions refused because no address others could
	// reach was known.
	Refused uint64
	// Changed counts changes of a running supernode's advertised control
	// address, each republished in gossip.
	Changed uint64
	// ServicesMoved counts changes of where the supernode announces its
	// STUN/TURN services to its leaves, each sent to them at once.
	ServicesMoved uint64
	// ServicesWithheld counts those changes that left a service
	// unannounced (a TURN port the router did not map).
	ServicesWithheld uint64
}

type advertCounters struct {
	refused, changed                atomic.Uint64
	servicesMoved, servicesWithheld atomic.Uint64
}

// Snapshot returns the counts.
func (c *advertCounters) Snapshot() AdvertStats {
	return AdvertStats{Refused: c.refused.Load(), Changed: c.changed.Load(),
		ServicesMoved: c.servicesMoved.Load(), ServicesWithheld: c.servicesWithheld.Load()}
}

// localNets lists the networks of this host's interfaces.
func localNets() []netip.Prefix {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		raw := n.IP
		if v4 := raw.To4(); v4 != nil && len(n.Mask) == net.IPv4len {
			raw = v4
		}
		ip, ok := netip.AddrFromSlice(raw)
		ones, bits := n.Mask.Size()
		if ok && bits == ip.BitLen() {
			out = append(out, netip.PrefixFrom(ip, ones))
		}
	}
	return out
}
