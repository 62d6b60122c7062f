// Package portmap asks the home router to forward a public port to this
// host, through NAT-PMP (RFC 6886) or UPnP-IGD, and keeps the mapping alive:
// Map starts a Mapper, whose State says what it achieved.
//
// A mapping makes a node behind a home NAT reachable without hole punching,
// which matters for the promotion policy; the package is apart from the rest
// of nat because it speaks to the router, not to peers, and is where goupnp
// and go-nat-pmp come in.
package portmap
