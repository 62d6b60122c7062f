package nat

// This file holds the named kinds of NAT: the ones the NAT lab builds, the
// simulator models and the population mix weighs.

import (
	"fmt"
	"net/netip"
	"strings"
)

// Kind is the internet access a host has: directly on the internet (Public),
// or behind one of the common kinds of home NAT. The NAT lab
// (internal/natlab) builds each kind from nftables, the simulator models a
// population of them, and Population weighs them. The names follow the
// classic STUN (RFC 3489) vocabulary; Mapping and Filtering give the same
// behaviour in RFC 4787 terms, and Behaviour feeds them to DirectPossible.
//
// The zero value is not a valid kind, so that a forgotten kind is an error
// rather than a silent default.
type Kind uint8

// The kinds of access. In the NAT lab each home router NATs one home host;
// the nftables recipe the lab uses is given with each kind.
const (
	// Public is no NAT at all: the host's own address is on the internet
	// segment, and anyone can reach any port it listens on.
	Public Kind = iota + 1
	// FullCone maps endpoint-independently, preserving the port, and
	// forwards every inbound UDP packet to the home host: once the host has
	// sent from a port, anyone can reach that port. nftables: masquerade
	// outbound plus a dnat of all inbound UDP on the WAN to the home host.
	FullCone
	// RestrictedCone maps like FullCone but lets an inbound packet in only
	// from an address the home host has sent to (any port of it). nftables:
	// FullCone plus a forward filter that records destinations in a dynamic
	// set and drops new inbound flows from addresses not in it.
	RestrictedCone
	// PortRestrictedCone maps endpoint-independently and lets in only
	// replies from the exact address and port the host sent to: the common
	// Linux home router. nftables: masquerade; conntrack does the filtering.
	PortRestrictedCone
	// Symmetric gives every destination its own random public port, and
	// lets in only replies. nftables: masquerade random,fully-random.
	Symmetric
	// CGNAT is a PortRestrictedCone home router whose WAN is not on the
	// internet but on a carrier network in 100.64.0.0/10 (RFC 6598), behind
	// a second, carrier-grade PortRestrictedCone NAT. Two layers of mapping;
	// the address the internet sees is the carrier's.
	CGNAT
	// UDPBlocked is a home router that NATs TCP like PortRestrictedCone but
	// drops every forwarded UDP packet (in the NAT lab, except to and from
	// the destinations given with natlab.WithUDPAllowed): only TCP paths (and
	// relays reachable over TCP or the allowed UDP destinations) work, as
	// behind strict corporate firewalls.
	UDPBlocked
)

var kindNames = map[Kind]string{
	Public:             "public",
	FullCone:           "full-cone",
	RestrictedCone:     "restricted-cone",
	PortRestrictedCone: "port-restricted-cone",
	Symmetric:          "symmetric",
	CGNAT:              "cgnat",
	UDPBlocked:         "udp-blocked",
}

// Kinds returns every kind, Public first, in the order of the constants: the
// rows and columns of the NAT matrix test and of the simulator's table.
func Kinds() []Kind {
	return []Kind{Public, FullCone, RestrictedCone, PortRestrictedCone, Symmetric, CGNAT, UDPBlocked}
}

// String returns the kind's name as ParseKind accepts it, e.g. "full-cone".
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// ParseKind returns the kind named s (as String writes it; case is ignored).
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds() {
		if strings.EqualFold(s, k.String()) {
			return k, nil
		}
	}
	names := make([]string, 0, len(kindNames))
	for _, k := range Kinds() {
		names = append(names, k.String())
	}
	return 0, fmt.Errorf("%w %q (want one of %s)", ErrUnknownKind, s, strings.Join(names, ", "))
}

// MarshalText implements encoding.TextMarshaler with the kind's name.
func (k Kind) MarshalText() ([]byte, error) {
	if _, ok := kindNames[k]; !ok {
		return nil, fmt.Errorf("%w: %d", ErrUnknownKind, int(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseKind.
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := ParseKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// NATed reports whether a host of this kind is behind at least one NAT.
func (k Kind) NATed() bool { return k != Public }

// BlocksUDP reports whether the kind drops UDP to and from the internet
// (apart, in the NAT lab, from the destinations allowed with
// natlab.WithUDPAllowed).
func (k Kind) BlocksUDP() bool { return k == UDPBlocked }

// Mapping is the kind's mapping behaviour (RFC 4787 section 4.1) for the
// protocols it lets through. It is the ground truth a NAT behaviour
// discovery test compares its result with.
func (k Kind) Mapping() Dependence {
	if k == Symmetric {
		return AddressAndPortDependent
	}
	return EndpointIndependent
}

// Filtering is the kind's filtering behaviour (RFC 4787 section 5) for the
// protocols it lets through; for CGNAT, the stricter of its two layers.
func (k Kind) Filtering() Dependence {
	switch k {
	case Public, FullCone:
		return EndpointIndependent
	case RestrictedCone:
		return AddressDependent
	}
	return AddressAndPortDependent
}

// Behaviour is the Behaviour behaviour discovery should find behind a NAT of
// kind k, in the form DirectPossible takes, so that the rule can be applied
// to kinds. Public and Local are placeholders from the documentation ranges
// (equal when k is not NATed): DirectPossible looks only at whether they
// differ. Behind a UDPBlocked router discovery gets no STUN answer at all, so
// its mapping and filtering stay unknown.
func (k Kind) Behaviour() Behaviour {
	b := Behaviour{
		Mapping:    k.Mapping(),
		Filtering:  k.Filtering(),
		Public:     netip.MustParseAddrPort("192.0.2.2:7373"),
		Local:      netip.MustParseAddrPort("192.168.1.2:7373"),
		NATed:      k.NATed(),
		UDPBlocked: k.BlocksUDP(),
	}
	if !b.NATed {
		b.Public = netip.MustParseAddrPort("203.0.113.2:7373")
		b.Local = b.Public
	}
	if b.UDPBlocked {
		b.Mapping, b.Filtering = DependenceUnknown, DependenceUnknown
	}
	return b
}
