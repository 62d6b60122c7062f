// Package gossip runs the supernode ring: the membership of Canopy's
// supernodes, kept by hashicorp/memberlist (SWIM gossip with failure
// detection).
//
// Only supernodes whose public reachability has been verified join the ring;
// leaves never do, because memberlist assumes that every member can reach
// every other and a member behind a NAT would flap between alive and suspect.
//
// Each member publishes a small Meta record in its memberlist node metadata:
// its public key, its gossip and control addresses, its software and protocol
// versions and its load, signed by its key with the time of signing. Other
// supernodes and the promotion policy read it to reach a member and to judge
// whether the ring needs more supernodes.
//
// The ring trusts no one:
//
//   - A member's name is the node ID derived from the key in its Meta, the
//     signature must verify, the gossip address must be the signed one and a
//     record must be newer than the last one accepted for that node; every
//     member refuses an alive message that fails any of these (aliveFilter).
//   - A member is listed (Members, events) only once Config.Verify has
//     confirmed that it answers at its control address with its key; results
//     are cached per node ID and control address, so a member that moves is
//     verified again.
//   - Every UDP packet is signed by its sender and accepted only from a key
//     that verified, within a clock window and once; every stream runs over
//     TLS with the node keys and starts with both sides' signed records, and
//     a new peer is verified before memberlist reads its state. A joiner's
//     first contact is such a stream.
//
// What this leaves open: a packet's signature proves the member that sent it,
// not the member a relayed message is about. A verified member can still
// gossip a forged dead or suspect message about another; the victim refutes
// one with an ordinary incarnation, but not one with incarnation 2^32-1,
// whose refutation overflows (memberlist v0.7.0, state.go refute).
package gossip
