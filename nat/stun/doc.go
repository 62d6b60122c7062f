// Package stun is how a Canopy node learns what NAT it is behind: the STUN
// service a supernode runs for its leaves (Server), with the RFC 5780
// attributes for behaviour discovery when the supernode has two public
// addresses, and the client that runs that discovery (Discover) and reports
// a nat.Behaviour.
//
// Server and client live together because they speak one protocol: the
// client relies on the attributes the server adds (OTHER-ADDRESS,
// RESPONSE-ORIGIN, CHANGE-REQUEST), and the tests run one against the other
// behind pion's vnet NATs. What a behaviour means for connecting two peers is
// not here but in package nat (DirectPossible), which the simulator shares.
package stun
