package nat

// This file holds the one population mix of NAT kinds that the simulator's
// default scenario and the NAT matrix test both weigh their results with.

// Share is the part of a population of home users behind one kind of NAT.
type Share struct {
	// Kind is the kind of access.
	Kind Kind
	// Share is the fraction of all peers behind Kind.
	Share float64
	// Mapped is the fraction of those peers whose router grants a port
	// mapping (UPnP-IGD, NAT-PMP or a manual forward), which makes them
	// reachable from outside.
	Mapped float64
	// Why says where Share comes from, for logs and reports.
	Why string
}

// Population returns the share of home users behind each kind, in the order
// of Kinds, adding up to 1.
//
// Two figures are measured (docs/field-numbers.md has the sources): about 73%
// of the clients on an eD2k server in 2026 were "LowID", unable to accept an
// inbound connection (a user's report from one server), and carrier-grade NAT
// is in about 13% of non-cellular networks (IMC 2016, cited second-hand). The
// split inside each group is an assumption, chosen so that the relay share it
// implies can be argued with; the cross-check is that about 22% of WebRTC
// calls needed TURN (callstats, 2015).
//
//   - The 27% that accept inbound connections are public hosts, 10% (servers,
//     campus and some ISP links), and home routers with a port mapping, 17%:
//     a mapped port lets anyone in and keeps its public port for every
//     destination, so such a host is a full cone, and every full cone here
//     is one because of its mapping (Mapped 1).
//   - Of the 73% that cannot, CGNAT takes its measured 13%; the
//     port-restricted cone, the default of Linux-based home routers
//     (masquerade with conntrack), 42%; symmetric NATs 10%; restricted cones
//     5%; networks that block UDP (corporate and guest networks) 3%.
//
// The simulator used to have its own mix (no NAT 12%, full cone 8%,
// port-restricted 37%, symmetric 15%, ...) with port mappings spread over
// three kinds, which made about 28% reachable. The two mixes cite the same
// sources; this one keeps the matrix test's split because it hits the one
// measured reachable share exactly: a port-restricted router that grants a
// mapping behaves, on the mapped port, like a full cone, so it is counted
// there instead of as a mapped share of another kind.
func Population() []Share {
	return []Share{
		{Public, 0.10, 0, "accepts inbound (27% HighID): a public address"},
		{FullCone, 0.17, 1, "accepts inbound (27% HighID): a home router with a port mapping"},
		{RestrictedCone, 0.05, 0, "cannot accept inbound (73% LowID): assumption"},
		{PortRestrictedCone, 0.42, 0, "cannot accept inbound: the common Linux home router (assumption)"},
		{Symmetric, 0.10, 0, "cannot accept inbound: assumption"},
		{CGNAT, 0.13, 0, "CGNAT in ~13% of non-cellular networks (IMC 2016)"},
		{UDPBlocked, 0.03, 0, "cannot accept inbound: corporate and guest networks (assumption)"},
	}
}
