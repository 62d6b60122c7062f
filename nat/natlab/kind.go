package natlab

import (
	"fmt"
	"strings"
)

// Kind is the internet access a lab host has: directly on the internet
// segment (Public), or behind one of the home NATs the lab builds from
// nftables. The names follow the classic STUN (RFC 3489) vocabulary; Mapping
// and Filtering give the same behaviour in RFC 4787 terms.
//
// The zero value is not a valid kind, so that a forgotten kind is an error
// rather than a silent default.
type Kind int

// The kinds the lab builds. Each home router NATs one home host.
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
	// drops every forwarded UDP packet, except to and from the destinations
	// given with WithUDPAllowed: only TCP paths (and relays reachable over
	// the allowed UDP destinations) work, as behind strict corporate
	// firewalls.
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
// rows and columns of a NAT matrix test.
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
	return 0, fmt.Errorf("natlab: unknown NAT kind %q (want one of %s)", s, strings.Join(names, ", "))
}

// MarshalText implements encoding.TextMarshaler with the kind's name.
func (k Kind) MarshalText() ([]byte, error) {
	if _, ok := kindNames[k]; !ok {
		return nil, fmt.Errorf("natlab: invalid kind %d", int(k))
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
// (apart from the destinations allowed with WithUDPAllowed).
func (k Kind) BlocksUDP() bool { return k == UDPBlocked }

// Behavior is a NAT's mapping or filtering behaviour in RFC 4787 terms
// (sections 4.1 and 5).
type Behavior int

const (
	// EndpointIndependent: one mapping (or one open door) for every
	// destination. A public host, which has no NAT, behaves this way too.
	EndpointIndependent Behavior = iota + 1
	// AddressDependent: the mapping or the filter depends on the remote
	// address but not on its port.
	AddressDependent
	// AddressAndPortDependent: the mapping or the filter depends on the
	// remote address and port.
	AddressAndPortDependent
)

// String returns the RFC 4787 name, e.g. "endpoint-independent".
func (b Behavior) String() string {
	switch b {
	case EndpointIndependent:
		return "endpoint-independent"
	case AddressDependent:
		return "address-dependent"
	case AddressAndPortDependent:
		return "address-and-port-dependent"
	}
	return fmt.Sprintf("Behavior(%d)", int(b))
}

// Mapping is the kind's mapping behaviour (RFC 4787 section 4.1) for the
// protocols it lets through. It is the ground truth a NAT behaviour
// discovery test compares its result with.
func (k Kind) Mapping() Behavior {
	if k == Symmetric {
		return AddressAndPortDependent
	}
	return EndpointIndependent
}

// Filtering is the kind's filtering behaviour (RFC 4787 section 5) for the
// protocols it lets through; for CGNAT, the stricter of its two layers.
func (k Kind) Filtering() Behavior {
	switch k {
	case Public, FullCone:
		return EndpointIndependent
	case RestrictedCone:
		return AddressDependent
	}
	return AddressAndPortDependent
}
