package nat

// This file holds the rule saying which pairs of NAT behaviours ICE can
// connect directly and which need a relay.

// DirectPossible says whether two peers with behaviours a and b can expect
// ICE to find a direct UDP path between them, and why. It models ICE as
// RFC 8445 runs it: each side learns its server-reflexive address from a
// STUN server, both send connectivity checks to the other's
// server-reflexive address at the same time, a check that gets through
// teaches the receiver the sender's real source (a peer-reflexive
// candidate) and triggers a check back, and a check only succeeds when its
// response comes from the address it was sent to (§7.2.5.2.1; pion enforces
// this). NATs are taken to use one public IP for all mappings ("paired"
// pooling, RFC 4787 REQ-2), as home NATs do.
//
// With EI = endpoint-independent, AD = address-dependent and APD =
// address-and-port-dependent, and "symmetric" for a mapping that is AD or
// APD, the outcome is:
//
//	both mappings EI                                -> direct (any filtering: simultaneous open)
//	A mapping EI, B symmetric: A filtering EI or AD -> direct (B's fresh port is admitted, learnt as peer-reflexive)
//	A mapping EI, B symmetric: A filtering APD      -> relay  (port-restricted cone vs symmetric)
//	both symmetric, both mappings APD               -> relay  (every answer comes from yet another port)
//	both symmetric, one filtering EI and the other
//	  EI or AD, and at least one mapping AD         -> direct
//	both symmetric, otherwise                       -> relay
//
// In the familiar names (columns and rows alike; "symmetric" with the
// address-and-port-dependent filtering such NATs normally have):
//
//	                  full cone  restricted  port-restr.  symmetric
//	full cone         direct     direct      direct       direct
//	restricted cone   direct     direct      direct       direct
//	port-restricted   direct     direct      direct       relay
//	symmetric         direct     direct      relay        relay (*)
//
// (*) direct only in the rare case above, e.g. a symmetric NAT that filters
// endpoint-independently against one that maps and filters by address only.
// A host with no NAT counts as endpoint-independent mapping with its
// firewall's filtering ("public/no NAT" is a full cone). UDP blocked on
// either side means relay. A field left unknown by discovery is tried with
// every value it could have: when all give the same answer that is the
// answer, otherwise DirectPossible says true ("worth trying") because ICE
// gathers relay candidates anyway, so an optimistic guess costs nothing
// while a pessimistic one could skip a path that works.
//
// TestDirectPossibleMatchesVNet (in package nat/stun, next to the STUN server
// and client it runs) checks this table against pion's vnet NAT emulation
// with an ICE-like exchange for every combination vnet offers; the NAT matrix
// test (internal/natmatrix) checks it against real nodes behind the lab's
// nftables NATs.
func DirectPossible(a, b Behaviour) (bool, string) {
	if a.UDPBlocked || b.UDPBlocked {
		return false, "UDP is blocked on at least one side: only a relay reached over TCP can connect them"
	}
	yes, no := 0, 0
	var yesWhy, noWhy string
	for _, am := range mappingCandidates(a) {
		for _, af := range filteringCandidates(a) {
			for _, bm := range mappingCandidates(b) {
				for _, bf := range filteringCandidates(b) {
					ok, why := holePunch(am, af, bm, bf)
					if ok {
						yes++
						if yesWhy == "" {
							yesWhy = why
						}
					} else {
						no++
						if noWhy == "" {
							noWhy = why
						}
					}
				}
			}
		}
	}
	switch {
	case no == 0:
		return true, yesWhy
	case yes == 0:
		return false, noWhy
	default:
		return true, "depends on behaviour discovery could not measure; worth trying with a relay as fallback (if it works: " +
			yesWhy + "; if not: " + noWhy + ")"
	}
}

// mappingCandidates lists the mapping behaviours b may have.
func mappingCandidates(b Behaviour) []Dependence {
	if b.Public.IsValid() && !b.NATed {
		return []Dependence{EndpointIndependent}
	}
	switch b.Mapping {
	case EndpointIndependent, AddressDependent, AddressAndPortDependent:
		return []Dependence{b.Mapping}
	case EndpointDependent:
		return []Dependence{AddressDependent, AddressAndPortDependent}
	}
	return []Dependence{EndpointIndependent, AddressDependent, AddressAndPortDependent}
}

// filteringCandidates lists the filtering behaviours b may have.
func filteringCandidates(b Behaviour) []Dependence {
	switch b.Filtering {
	case EndpointIndependent, AddressDependent, AddressAndPortDependent:
		return []Dependence{b.Filtering}
	}
	return []Dependence{EndpointIndependent, AddressDependent, AddressAndPortDependent}
}

// holePunch is the table of DirectPossible for known behaviours: am and af
// are one side's mapping and filtering, bm and bf the other's, each one of
// EndpointIndependent, AddressDependent, AddressAndPortDependent.
func holePunch(am, af, bm, bf Dependence) (bool, string) {
	switch {
	case am == EndpointIndependent && bm == EndpointIndependent:
		return true, "both sides keep one public address for every destination, so each sends to the other's server-reflexive address and opens its own filter for the other's packets (simultaneous open)"
	case am == EndpointIndependent:
		return eiVersusSymmetric(af)
	case bm == EndpointIndependent:
		return eiVersusSymmetric(bf)
	case am == AddressAndPortDependent && bm == AddressAndPortDependent:
		return false, "both NATs pick a new port for every destination address and port, so every answer comes from a port the other side has not sent to and the checks never meet (symmetric vs symmetric)"
	case (af == EndpointIndependent && bf != AddressAndPortDependent) || (bf == EndpointIndependent && af != AddressAndPortDependent):
		return true, "both NATs map per destination, but one filters endpoint-independently so the first check reaches it, the other admits any port of an address it has sent to, and one maps per address only so the ports stop changing"
	default:
		return false, "both NATs map per destination and their filtering drops the first packets, which arrive from ports that were never sent to (symmetric vs symmetric)"
	}
}

// eiVersusSymmetric is the case of a side with endpoint-independent mapping
// and filtering f against a side whose mapping is endpoint-dependent.
func eiVersusSymmetric(f Dependence) (bool, string) {
	if f == AddressAndPortDependent {
		return false, "the symmetric side's NAT sends from a new, unpredictable port, and the other side's address-and-port-dependent filtering drops packets from any port it has not sent to (port-restricted cone vs symmetric)"
	}
	return true, "one side keeps one public address for every destination and its filtering admits the symmetric side's new port (it has sent to that address), so it learns that port as a peer-reflexive candidate and answers"
}
