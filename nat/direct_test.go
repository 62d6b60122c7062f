package nat

import (
	"net/netip"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	pub := netip.MustParseAddrPort("198.51.100.60:49152")
	for _, c := range []struct {
		b    Behaviour
		want string
	}{
		{Behaviour{UDPBlocked: true}, "UDP blocked"},
		{Behaviour{}, "unknown"},
		{Behaviour{Public: pub, Mapping: EndpointIndependent, Filtering: EndpointIndependent}, "public/no NAT"},
		{Behaviour{Public: pub, Mapping: EndpointIndependent}, "public/no NAT"},
		{Behaviour{Public: pub, Mapping: EndpointIndependent, Filtering: AddressAndPortDependent}, "symmetric UDP firewall"},
		{Behaviour{Public: pub, NATed: true, Mapping: EndpointIndependent, Filtering: EndpointIndependent}, "full cone"},
		{Behaviour{Public: pub, NATed: true, Mapping: EndpointIndependent, Filtering: AddressDependent}, "restricted cone"},
		{Behaviour{Public: pub, NATed: true, Mapping: EndpointIndependent, Filtering: AddressAndPortDependent}, "port-restricted cone"},
		{Behaviour{Public: pub, NATed: true, Mapping: EndpointIndependent}, "cone, filtering unknown"},
		{Behaviour{Public: pub, NATed: true, Mapping: AddressDependent, Filtering: AddressDependent}, "symmetric"},
		{Behaviour{Public: pub, NATed: true, Mapping: EndpointDependent}, "symmetric"},
		{Behaviour{Public: pub, NATed: true}, "unknown"},
	} {
		if got := c.b.Classify(); got != c.want {
			t.Errorf("%+v: Classify = %q, want %q", c.b, got, c.want)
		}
	}
}

// nated returns the behaviour of a NAT with mapping m and filtering f.
func nated(m, f Dependence) Behaviour {
	return Behaviour{Mapping: m, Filtering: f, NATed: true, Public: netip.MustParseAddrPort("198.51.100.60:49152")}
}

func TestDirectPossible(t *testing.T) {
	const (
		EI  = EndpointIndependent
		AD  = AddressDependent
		APD = AddressAndPortDependent
	)
	public := Behaviour{Mapping: EI, Filtering: EI, Public: netip.MustParseAddrPort("198.51.100.50:5000")}
	fullCone, restricted, portRestricted := nated(EI, EI), nated(EI, AD), nated(EI, APD)
	symmetric := nated(APD, APD)
	for _, c := range []struct {
		name string
		a, b Behaviour
		want bool
	}{
		{"public vs symmetric", public, symmetric, true},
		{"full cone vs symmetric", fullCone, symmetric, true},
		{"restricted vs symmetric", restricted, symmetric, true},
		{"port-restricted vs port-restricted", portRestricted, portRestricted, true},
		{"port-restricted vs symmetric", portRestricted, symmetric, false},
		{"symmetric vs port-restricted", symmetric, portRestricted, false},
		{"symmetric vs symmetric", symmetric, symmetric, false},
		{"symmetric EI-filtering vs address-dependent symmetric", nated(APD, EI), nated(AD, AD), true},
		{"both APD mapping, open filtering", nated(APD, EI), nated(APD, EI), false},
		{"blocked", Behaviour{UDPBlocked: true}, public, false},
		// Unknown filtering on a cone: works whatever it is against a
		// restricted cone, may fail against a symmetric NAT.
		{"cone, filtering unknown vs restricted", nated(EI, DependenceUnknown), restricted, true},
		{"cone, filtering unknown vs symmetric", nated(EI, DependenceUnknown), symmetric, true},
		// Two-server mode's EndpointDependent against a port-restricted
		// cone fails whichever it is.
		{"endpoint-dependent vs port-restricted", nated(EndpointDependent, DependenceUnknown), portRestricted, false},
	} {
		got, why := DirectPossible(c.a, c.b)
		if got != c.want || why == "" {
			t.Errorf("%s: DirectPossible = %v (%s), want %v", c.name, got, why, c.want)
		}
		if back, _ := DirectPossible(c.b, c.a); back != got {
			t.Errorf("%s: not symmetric", c.name)
		}
	}
	if _, why := DirectPossible(nated(EI, DependenceUnknown), symmetric); !strings.Contains(why, "worth trying") {
		t.Errorf("uncertain verdict without saying so: %s", why)
	}
}
