package natlab

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/canopy-p2p/canopy/nat"
)

// natRules describes the nftables ruleset of one NAT router. Its interfaces
// are always "wan" (upstream) and "lan" (the home or carrier network).
type natRules struct {
	kind     nat.Kind
	inside   netip.Prefix     // the addresses behind the router, which it masquerades
	host     netip.Addr       // the one host behind it: cone kinds forward inbound UDP there
	udpAllow []netip.AddrPort // nat.UDPBlocked: destinations UDP may still reach
}

// coneMark is the conntrack mark of flows that the cone kinds' "forward all
// inbound UDP to the home host" rule created. The restricted cone filter
// applies to these only, so that ports mapped by miniupnpd, which are
// forwarded by miniupnpd's own rules, stay open to everyone as on a real
// router.
const coneMark = "0x00000001"

// seenTimeout is how long a restricted cone remembers a destination address:
// the kernel's timeout of a UDP flow that has seen replies
// (nf_conntrack_udp_timeout_stream), so the "door" lives as long as a
// mapping would.
const seenTimeout = "120s"

// ruleset returns the router's table, in nft -f syntax, one recipe per
// kind (the table in doc.go); nftables 1.0.6 wants each rule and each set
// attribute on its own line.
//
// Only traffic from inside is masqueraded, never the router's own: a
// symmetric masquerade would otherwise randomise the ports of miniupnpd's
// STUN check too, and the check would fail.
func (r natRules) ruleset() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }

	masq := "masquerade"
	if r.kind == nat.Symmetric {
		// A fresh random port for every new flow, hence for every
		// destination: address-and-port-dependent mapping.
		masq = "masquerade random,fully-random"
	}
	cone := r.kind == nat.FullCone || r.kind == nat.RestrictedCone

	p("table ip natlab {")
	if r.kind == nat.RestrictedCone {
		p("\tset seen {")
		p("\t\ttype ipv4_addr . inet_service")
		p("\t\tflags dynamic,timeout")
		p("\t\ttimeout %s", seenTimeout)
		p("\t}")
	}
	if cone {
		p("\tchain prerouting {")
		p("\t\ttype nat hook prerouting priority dstnat; policy accept;")
		// The router's own sockets (miniupnpd's STUN check) keep their
		// packets; the home host's port is mapped to the same public
		// port (masquerade keeps ports when it can), so inbound UDP to
		// WAN:p goes to host:p.
		p("\t\tiifname \"wan\" meta l4proto udp socket transparent 0 accept")
		p("\t\tiifname \"wan\" meta l4proto udp ct mark set %s dnat to %s", coneMark, r.host)
		p("\t}")
	}
	// Unsolicited UDP for the router itself is dropped, as home routers
	// do. Accepted, such a packet (a peer's hole-punching probe arriving
	// before the home host has sent anything) would leave a conntrack
	// entry on the very tuple the host's outbound mapping needs, and Linux
	// would then give the host a different public port towards that peer:
	// a port-restricted cone turned symmetric for the pair, and hole
	// punching between two of them would fail. A dropped packet is never
	// confirmed into conntrack. Packets for the router's own sockets
	// (miniupnpd's STUN check, whose CHANGE-REQUEST answers come from other
	// addresses) are kept, and the cone kinds' inbound UDP is forwarded,
	// not delivered here.
	p("\tchain input {")
	p("\t\ttype filter hook input priority filter; policy accept;")
	p("\t\tiifname \"wan\" meta l4proto udp socket transparent 0 accept")
	p("\t\tiifname \"wan\" meta l4proto udp ct state new counter drop")
	p("\t}")
	p("\tchain postrouting {")
	p("\t\ttype nat hook postrouting priority srcnat; policy accept;")
	p("\t\toifname \"wan\" ip saddr %s %s", r.inside, masq)
	p("\t}")
	switch r.kind {
	case nat.RestrictedCone:
		p("\tchain forward {")
		p("\t\ttype filter hook forward priority filter; policy accept;")
		// Keyed by remote address and the home host's port, which the
		// cone mapping preserves: each mapping lets in only the
		// addresses it has sent to (RFC 4787 5, per mapping). Keyed by
		// address alone, a port would open to addresses another port
		// had contacted.
		p("\t\toifname \"wan\" meta l4proto udp update @seen { ip daddr . udp sport }")
		p("\t\tiifname \"wan\" ct state new ct mark %s ip saddr . udp dport != @seen counter drop", coneMark)
		p("\t}")
	case nat.UDPBlocked:
		p("\tchain forward {")
		p("\t\ttype filter hook forward priority filter; policy accept;")
		if len(r.udpAllow) > 0 {
			set := make([]string, len(r.udpAllow))
			for i, d := range r.udpAllow {
				set[i] = fmt.Sprintf("%s . %d", d.Addr(), d.Port())
			}
			elems := strings.Join(set, ", ")
			p("\t\toifname \"wan\" ip daddr . udp dport { %s } accept", elems)
			p("\t\tiifname \"wan\" ct state established ip saddr . udp sport { %s } accept", elems)
		}
		p("\t\tmeta l4proto udp counter drop")
		p("\t}")
	}
	p("}")
	return b.String()
}

// upnpTables is the nftables structure miniupnpd 2.x (nftables backend)
// writes its rules into but does not create: Debian ships an nft_init.sh for
// that, which we do not use because its forward chain has policy drop and
// would override the lab's NATs. The table and chain names are the ones
// upnpConfig gives miniupnpd.
//
// Priorities: miniupnpd's dnat (prerouting, -110) comes before the cone
// kinds' catch-all dnat (-100), and the first NAT binding of a flow wins, so
// a mapped port goes where miniupnpd says. Its snat (postrouting, 90) keeps
// the mapped public port for the host's outbound flows from that port. Its
// forward chain only ever accepts, and the lab's own filters still apply:
// an UDPBlocked router drops UDP whatever miniupnpd maps.
const upnpTables = `table inet natlab_upnp {
	chain forward {
		type filter hook forward priority filter; policy accept;
		jump miniupnpd
	}
	chain miniupnpd {
	}
	chain prerouting {
		type nat hook prerouting priority -110; policy accept;
		jump prerouting_miniupnpd
	}
	chain postrouting {
		type nat hook postrouting priority 90; policy accept;
		jump postrouting_miniupnpd
	}
	chain prerouting_miniupnpd {
	}
	chain postrouting_miniupnpd {
	}
}
`
