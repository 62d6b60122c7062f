// Package promotion is the pure decision core that says whether a node should
// promote itself from leaf to supernode, stay in its role, or demote itself.
//
// The node and the simulator call the same function, Decide, with the node's
// state and the ring's state as inputs; it does no I/O, reads no clock and
// allocates nothing, so a million simulated nodes can be evaluated as cheaply
// as one real node. Every threshold is a named field of Params with its default
// and where that default came from; a Params file written by a simulator sweep
// can be loaded by the node (Load, Save).
//
// # The rules
//
// A leaf promotes itself when all of these hold (the lineage of each rule is
// in the Params field docs and docs/field-numbers.md):
//
//   - the user consents (--supernode auto or always);
//   - it is confirmed reachable from outside (dial-backs passed): only
//     verified-public nodes may join the gossip ring (docs/architecture.md, fixed decision 2);
//   - it has been up long enough, now and on average (LimeWire, gtk-gnutella);
//   - it has the bandwidth, CPU, memory and file descriptors to serve leaves;
//   - it has not changed role recently (MinDwell, gtk-gnutella's 30 minutes)
//     and has waited out the back-off that doubles after each demotion;
//   - the ring needs another supernode (Needed, Gnutella's "ultrapeer
//     needed"), and, so that a crowd of candidates reading the same gossip
//     does not promote at once, it wins a per-evaluation lottery.
//
// Three cases bypass the normal qualifications:
//
//   - consent "always" promotes as soon as the node is reachable, ignoring
//     uptime, capacity, the ring's need and the back-off;
//   - a step-in: the last supernode of the ring, stopping gracefully, asked
//     this leaf to take its place (Input.AskedToStepIn). A reachable,
//     consenting leaf promotes once EmergencyDwell has passed since its
//     last switch, without the uptime, capacity and need checks: the
//     emergency election, held before the emergency rather than after it,
//     so that the leaves are handed over instead of orphaned;
//   - an emergency: the node knows the ring and it has no supernode at all
//     (the first node of a new network, or the last supernode died). Then a
//     reachable, consenting leaf promotes once it has EmergencyMinUptime of
//     uptime, EmergencyDwell since its last switch, and its turn: the
//     supernodes name up to eight reachable candidates as successors, and the
//     one of rank r waits r × EmergencyStagger from when it could first step
//     in (EmergencyTurn: the latest of the emergency's start, reaching
//     EmergencyMinUptime and passing EmergencyDwell), so that the first live
//     successor promotes and the others attach to it instead of each
//     founding a ring of one. Bound: the successor of rank r promotes at the
//     first evaluation after max(emergency start, EmergencyMinUptime of
//     uptime, EmergencyDwell since its switch) + r × EmergencyStagger, so the
//     election completes within the caller's detection delay plus one
//     evaluation interval plus 8 × EmergencyStagger (40 s with the
//     defaults) past the moment the last of those three clocks ran out.
//
// A supernode demotes itself at once when the user withdraws consent or when a
// reachability verdict says it is no longer reachable: the first is the user's
// right (Kazaa, Skype and kubo all had to grow an opt-out), the second because
// a member that the ring and its leaves cannot reach breaks memberlist's
// failure detection and strands its leaves, so waiting out a dwell time would
// hurt others. It demotes after MinDwell when its headroom falls below the
// (lower) Keep thresholds, or when the ring has a surplus of supernodes and it
// has had no leaf for DemoteIdle (gtk-gnutella). The promote and keep
// thresholds differ, and so do the ring's need and surplus thresholds, so that
// a node near a threshold does not flap.
package promotion
