// Package nat is about reaching peers behind home NATs.
//
// It holds the ICE configuration every WebRTC peer connection of a node is
// built from (ICEConfig, NewAPI); the STUN service a supernode runs, with the
// RFC 5780 attributes for behaviour discovery (STUNServer); NAT mapping and
// filtering discovery and the rule saying which pairs can connect directly
// (Discover, DirectPossible); a damped reachability verdict from dial-backs
// (Reachability); port mapping through NAT-PMP or UPnP-IGD (MapPort); and the
// supernode's TURN relay with per-leaf, time-limited credentials and quotas
// (Relay, RelayCreds). The NAT lab the tests use is in nat/natlab. Wiring the
// STUN and TURN services into supernodes and leaves is still to come.
package nat
