// Package ice holds the ICE configuration every WebRTC peer connection of a
// node is built from: which STUN and TURN servers to gather candidates from,
// which interfaces and ports to use (Config), and the pion API and peer
// connection configuration made from it (NewAPI). TURNServer is a relay and
// the credentials to use it, as supernodes hand them out.
//
// It is apart from the STUN and TURN services themselves (nat/stun,
// nat/relay) because every node needs it, also one that runs neither, and
// because it is where pion/webrtc comes in.
package ice
