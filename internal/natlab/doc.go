// Package natlab builds real kernel NATs out of Linux network namespaces,
// veth pairs and nftables, for tests of the packages that must get through
// them: ICE, STUN and TURN, port mapping, reachability checks, and whole
// canopy nodes downloading from each other across every pair of NAT kinds.
//
// # Shape
//
//	[home host]--lan--[router: NAT]--wan--\
//	                                       [internet: bridge br0]--[public host] [public host] ...
//	[home host]--lan--[router]--[carrier]--/
//	                      (CGNAT, 100.64.0.0/10)
//
// Every box is a network namespace. The internet is one Ethernet segment, a
// bridge inside an "internet" namespace, on which public hosts and the WAN
// interfaces of routers sit with addresses from the RFC 5737 documentation
// ranges (public hosts 203.0.113.0/24 then 198.51.100.0/24; routers
// 192.0.2.0/24 then 198.51.100.128/25), each with an on-link default route.
// A home is a router namespace and a host namespace behind it on a private
// /24 (192.168.N.0/24 by default, see WithLAN), the router being the host's
// default gateway; a CGNAT home has a carrier router in front of the home
// router, on 100.64.N.0/24.
//
// # Kinds
//
// The lab builds the kinds of package nat (nat.Kind); each router's
// behaviour is an nftables ruleset (table ip natlab):
//
//	Kind                mapping (RFC 4787)        filtering (RFC 4787)        nftables
//	Public              none                      none                        -
//	FullCone            endpoint-independent      endpoint-independent        masquerade + dnat of inbound UDP to the host
//	RestrictedCone      endpoint-independent      address-dependent           FullCone + forward filter on a dynamic set
//	PortRestrictedCone  endpoint-independent      address-and-port-dependent  masquerade
//	Symmetric           address-and-port-dep.     address-and-port-dependent  masquerade random,fully-random
//	CGNAT               endpoint-independent      address-and-port-dependent  two PortRestrictedCone layers
//	UDPBlocked          (TCP as PortRestricted)   (UDP dropped)               masquerade + drop forwarded UDP
//
// TCP is NATed as by PortRestrictedCone under every kind: inbound TCP gets
// in only through a port mapping (WithUPnP). nat.Kind's Mapping and Filtering
// give the table's ground truth to tests that discover NAT behaviour. The
// package's tests check every row with UDP probes.
//
// # Use
//
//	func TestThroughNATs(t *testing.T) {
//		lab := natlab.New(t) // skips unless root with ip and nft
//		stun := lab.Public("stun", 2)
//		alice := lab.Home("alice", natlab.Symmetric)
//		bob := lab.Home("bob", natlab.FullCone, natlab.WithUPnP(), natlab.WithNetem("delay 20ms loss 1%"))
//
//		// Go code in a namespace: sockets opened inside Do stay there.
//		conn, err := alice.ListenPacket("udp4", ":0")
//		...
//		// A program in a namespace: the canopy binary on a home host.
//		cmd := bob.Command(ctx, canopyBin, "up", "--join", stun.Addr.String()+":7000")
//		...
//	}
//
// Host.Do runs a function with its OS thread switched into the host's
// namespace. Sockets it opens belong to the namespace for good; goroutines
// it starts do not run there (see Do). Host.Command runs a program there
// through `ip netns exec`.
//
// # Requirements and skipping
//
// The lab needs root, iproute2 and nftables, and miniupnpd (with its
// nftables backend) for WithUPnP: .ci/natlab-deps installs them on Debian.
// When they are missing, New skips the test with the reason; with the
// environment variable CANOPY_NATLAB=require (set by CI) it fails instead,
// and CANOPY_NATLAB=off skips lab tests even as root.
//
// # Isolation and cleanup
//
// The lab never changes the network of the machine's own namespace: every
// interface is created inside a lab namespace (veth pairs are made in one
// and their peer sent straight into the other), and every address, route
// and rule lives in lab namespaces only. Namespace names carry a per-lab
// prefix (natlab-PID-RAND, see Lab.Prefix) and interface names are short
// and fixed (eth0, wan, lan, br0, portN) since each namespace has its own.
//
// New registers a t.Cleanup that stops miniupnpd, kills every process still
// running in a lab namespace, closes the netem wires and deletes the
// namespaces; it runs on failure and on a panic half-way through building
// too. Lab.Leaked reports anything left. Namespaces of labs whose test
// process died (a timeout kill) are swept by the next New in any process.
//
// # Port mapping
//
// WithUPnP runs Debian's miniupnpd 2.x in the home router, in the
// foreground, with its nftables backend writing into a table the lab
// creates for it (table inet natlab_upnp). miniupnpd refuses to map ports
// on a WAN address in a reserved range, documentation ranges included,
// unless a STUN check proves the WAN reachable; so the lab runs a small RFC
// 5780 STUN server (two addresses, two ports, CHANGE-REQUEST) on a public
// host of its own (namespace PREFIX.stun), which miniupnpd checks its WAN
// against at start.
//
// # Link shaping
//
// WithNetem takes netem's syntax, but this project's kernels (this machine's
// and CI's) lack the netem qdisc, so a shaped link is two TAP devices joined
// by goroutines of the test process that delay and drop frames (wire.go).
package natlab
