// Package nat is about reaching peers behind home NATs.
//
// For now it holds the ICE configuration every WebRTC peer connection of a
// node is built from (ICEConfig, NewAPI): which STUN and TURN servers to use,
// which interfaces and network types to gather candidates on, and the pion
// transport settings that matter for bulk transfers. Reachability discovery,
// port mapping and the STUN/TURN service a supernode runs for its leaves come
// later and will live here too.
package nat
