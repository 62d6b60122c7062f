// Package gossip runs the supernode ring: the membership of Canopy's
// supernodes, kept by hashicorp/memberlist (SWIM gossip with failure
// detection).
//
// Only supernodes whose public reachability has been verified join the ring;
// leaves never do, because memberlist assumes that every member can reach
// every other and a member behind a NAT would flap between alive and suspect.
//
// Each member publishes a small Meta record in its memberlist node metadata:
// its node ID, the address of its TLS control listener, its software and
// protocol versions and its load. Other supernodes and the promotion policy
// read it to reach a member and to judge whether the ring needs more
// supernodes. Meta is what a member claims about itself and is not
// authenticated by gossip: the node ID is proven only when the control link's
// TLS handshake shows the key it is derived from.
package gossip
