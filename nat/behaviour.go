package nat

// This file holds the vocabulary of NAT behaviour: how a NAT's mapping and
// filtering depend on the remote endpoint (RFC 4787), and what behaviour
// discovery learnt about one NAT.

import "net/netip"

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

// Behaviour is what NAT behaviour discovery (stun.Discover) learned about
// the NAT (or firewall) between a host and the STUN servers.
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
