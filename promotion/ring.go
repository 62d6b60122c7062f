package promotion

// DefaultLeafSlots is the number of leaf slots a supernode opens by default
// (supernode.DefaultMaxLeaves), and so the FreeSlots a new supernode adds to
// a RingView. It lives here, in a package without I/O, so that the simulator
// reads the node's value without importing the supernode.
const DefaultLeafSlots = 200

// RingView is what a node knows of the supernode ring, from gossip metadata
// (a supernode) or from its supernodes' guidance (a leaf).
type RingView struct {
	// Supernodes is the number of live supernodes, counting the node itself
	// if it is one.
	Supernodes int
	// Leaves is the number of leaf links across the ring: the sum of the
	// leaves each supernode reports, so a leaf attached to k supernodes counts
	// k times. An estimate is fine.
	Leaves int
	// FreeSlots is the sum of the free leaf slots the supernodes advertise.
	FreeSlots int
	// Load is the supernodes' mean slot occupancy, 0–1.
	Load float64
	// Known is false while the node has no view of the ring yet; the other
	// fields are then ignored. A leaf must report Known with Supernodes == 0
	// only once it has failed to reach every supernode it knows of (its
	// attachments and its host cache), since that starts an emergency election.
	Known bool
}

// ringLoad returns the ring's load as the policy compares it with the need and
// surplus thresholds: the larger of the leaf links per supernode over the
// target and the mean slot occupancy. The first tracks the target ratio; the
// second catches supernodes with fewer slots than the target. A NaN Load is
// ignored. The ring must have at least one supernode.
func (p Params) ringLoad(r RingView) float64 {
	load := float64(r.Leaves) / float64(r.Supernodes) / p.TargetLeavesPerSupernode
	if r.Load > load {
		load = r.Load
	}
	return load
}

// Needed is the guidance a supernode gives candidates, Gnutella's "ultrapeer
// needed": whether the ring needs another supernode, and the rule that says
// so. The ring needs one when it has fewer than MinSupernodes, when its load
// reaches NeedThreshold, or when its free slots could not take in the leaves of
// FailoverReserve average supernodes. Without a view of the ring it answers
// no (CheckRingView); otherwise a "no" comes with CheckRingLoad.
func Needed(p Params, r RingView) (need bool, why CheckID) {
	if !r.Known {
		return false, CheckRingView
	}
	if r.Supernodes < p.MinSupernodes || r.Supernodes <= 0 {
		return true, CheckMinSupernodes
	}
	if p.ringLoad(r) >= p.NeedThreshold {
		return true, CheckRingLoad
	}
	perSupernode := float64(r.Leaves) / float64(r.Supernodes)
	if float64(r.FreeSlots) < p.FailoverReserve*perSupernode {
		return true, CheckFreeSlots
	}
	return false, CheckRingLoad
}

// Surplus says whether the ring has more supernodes than it needs, so that an
// idle one may demote, and the rule that decided. It is the mirror of Needed
// with a lower threshold, the hysteresis that keeps the ring from flapping:
// surplus needs more than MinSupernodes, a load at or below SurplusThreshold,
// and free slots that still cover the failover reserve once one average
// supernode's slots are gone.
func Surplus(p Params, r RingView) (surplus bool, why CheckID) {
	if !r.Known {
		return false, CheckRingView
	}
	if r.Supernodes <= p.MinSupernodes || r.Supernodes <= 1 {
		return false, CheckMinSupernodes
	}
	// Written as !(≤) so that a NaN load counts as no surplus.
	if !(p.ringLoad(r) <= p.SurplusThreshold) {
		return false, CheckRingLoad
	}
	n := float64(r.Supernodes)
	freeAfter := float64(r.FreeSlots) * (n - 1) / n
	perAfter := float64(r.Leaves) / (n - 1)
	if freeAfter < p.FailoverReserve*perAfter {
		return false, CheckFreeSlots
	}
	return true, CheckRingLoad
}
