// Package nat is the vocabulary of NAT behaviour that the rest of Canopy
// shares: how a NAT's mapping and filtering depend on the remote endpoint
// (Dependence, in RFC 4787 terms), what behaviour discovery learnt about one
// NAT (Behaviour, with its familiar name from Classify), the rule saying
// which pairs of behaviours ICE can connect directly (DirectPossible), the
// named kinds of NAT (Kind: public, full cone, restricted cone,
// port-restricted cone, symmetric, CGNAT, UDP blocked) and the population mix
// of those kinds among home users (Population).
//
// The package imports only the standard library, so that the simulator, the
// NAT lab and the node can all use the one rule instead of keeping copies of
// it. The machinery that talks to the network lives in subpackages, one idea
// each: nat/stun (the STUN server with RFC 5780 and the discovery client),
// nat/relay (the supernode's TURN relay with its credentials and quotas),
// nat/portmap (NAT-PMP and UPnP-IGD port mapping), nat/reach (the damped
// reachability verdict from dial-backs) and nat/ice (the ICE configuration
// of every WebRTC peer connection). The NAT lab and the NAT matrix test are
// test infrastructure, in internal/natlab and internal/natmatrix.
package nat
