package sim

// natKind is a NAT behaviour of the NAT lab, in RFC 4787 terms.
type natKind uint8

const (
	natNone natKind = iota
	natFullCone
	natRestrictedCone
	natPortRestrictedCone
	natSymmetric
	natCGNAT
	natUDPBlocked
)

var natKinds = map[string]natKind{
	"none":                 natNone,
	"full-cone":            natFullCone,
	"restricted-cone":      natRestrictedCone,
	"port-restricted-cone": natPortRestrictedCone,
	"symmetric":            natSymmetric,
	"cgnat":                natCGNAT,
	"udp-blocked":          natUDPBlocked,
}

// direct reports whether two leaves behind NATs a and b can connect directly
// with ICE (host and server-reflexive candidates), or need a relay. This is
// the textbook model of UDP hole punching (Ford, Srisuresh & Kegel 2005):
// it works when at most one side maps address-and-port dependently
// (symmetric) and the other side's filtering lets the first packet in, i.e.
// is not itself port-restricted or symmetric; a carrier-grade NAT in front of
// a home NAT behaves like its stricter layer (port-restricted here); no UDP
// means no direct path at all. The NAT lab measures the real answer for each
// pair; until it does, this table is the model.
func direct(a, b natKind) bool {
	if a == natUDPBlocked || b == natUDPBlocked {
		return false
	}
	hard := func(k natKind) bool { return k == natSymmetric }
	strictFilter := func(k natKind) bool {
		return k == natPortRestrictedCone || k == natSymmetric || k == natCGNAT
	}
	switch {
	case hard(a) && hard(b):
		return false
	case hard(a):
		return !strictFilter(b)
	case hard(b):
		return !strictFilter(a)
	}
	return true
}
