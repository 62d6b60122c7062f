package promotion

import (
	"math"
	"time"
)

// Input is everything Decide needs to know about the node, at one moment. The
// caller measures; Decide only compares.
type Input struct {
	// Role is the node's current role.
	Role Role
	// Consent is the user's --supernode choice. A value other than the three
	// defined ones is treated as ConsentNever: no consent was given.
	Consent Consent
	// Reachable is true when dial-backs have confirmed that the node accepts
	// connections from outside.
	Reachable bool
	// ReachKnown is true when there is a reachability verdict at all. A leaf
	// without one cannot promote; a supernode without one (a re-check in
	// progress) keeps its role until a verdict says it is unreachable.
	ReachKnown bool
	// Uptime is the length of the current session.
	Uptime time.Duration
	// AvgUptime is the mean length of the node's recent completed sessions,
	// persisted across restarts; zero when there is no history.
	AvgUptime time.Duration
	// UpBandwidth and DownBandwidth are the measured capacities, bytes/s.
	UpBandwidth, DownBandwidth float64
	// CPUHeadroom is the idle CPU fraction, 0–1.
	CPUHeadroom float64
	// MemHeadroom is the free memory fraction, 0–1.
	MemHeadroom float64
	// FreeFDs is the number of file descriptors the process can still open.
	FreeFDs int
	// HeadroomUnknown says that CPU, memory and descriptors could not be
	// measured (no sample yet, or a platform the node cannot measure): a
	// leaf then fails those checks, since it must not promote on capacity it
	// has not seen, and a supernode passes them, since an unmeasured machine
	// is no reason to drop the leaves it serves.
	HeadroomUnknown bool
	// SinceSwitch is the time since the node last changed role; a large value
	// (such as math.MaxInt64) if it never has.
	SinceSwitch time.Duration
	// Demotions is the number of demotions in a row, for the back-off. The
	// caller counts the Demote decisions it carried out, except those forced
	// by consent, and may reset the count after a supernode stint of at least
	// BackoffMax, which shows that the earlier demotions were transient.
	Demotions int
	// Leaves is the number of leaves attached to the node (supernode only).
	Leaves int
	// SinceLastLeaf is, for a supernode with no leaf, the time since it last
	// had one, or since it promoted if it never had one.
	SinceLastLeaf time.Duration
	// EmergencyRank is the node's place among the successors its supernodes
	// named (0 first; the number of successors when it is not one), and
	// EmergencyFor how long the emergency has lasted: since the node lost its
	// last supernode. Only the emergency election reads them.
	EmergencyRank int
	EmergencyFor  time.Duration
	// AskedToStepIn is set when the last supernode of the ring, leaving the
	// network gracefully, asked this leaf to take its place (and the caller
	// has checked that it is the last: its guidance showed a ring of one).
	// Only a leaf reads it.
	AskedToStepIn bool
	// Draw is a uniform random number in [0, 1) for the promotion lottery,
	// drawn fresh for each evaluation by the caller (the simulator from its
	// seeded source). Zero always wins, so a caller that does not draw gets
	// the deterministic policy.
	Draw float64
	// Ring is the node's view of the supernode ring.
	Ring RingView
}

// Decision is the policy's answer with the checks behind it. It is a value:
// Decide fills it without allocating.
type Decision struct {
	// Action is what the node should do.
	Action Action
	// Checks are the evaluated rules, in order, Checks[:N] valid.
	Checks [MaxChecks]Check
	// N is the number of valid entries in Checks.
	N int
	// Reason is the check that decided: the first failing one when a leaf
	// stays or a supernode demotes; the rule that allowed the promotion
	// (CheckNeeded, CheckEmergency, CheckStepIn, or CheckConsent for
	// "always"); the rule
	// that keeps a supernode (CheckSurplus, CheckIdle or CheckConsent); or
	// CheckDwell when a due demotion waits out the dwell time.
	Reason CheckID
	// Guidance is the ring rule behind the Needed or Surplus check
	// (CheckMinSupernodes, CheckRingLoad, CheckFreeSlots or CheckRingView), or
	// CheckNone when neither was evaluated.
	Guidance CheckID
}

// add records a check.
func (d *Decision) add(id CheckID, pass bool) {
	d.Checks[d.N] = Check{ID: id, Pass: pass}
	d.N++
}

// firstFail returns the first failing check among Checks[from:N], or
// CheckNone.
func (d *Decision) firstFail(from int) CheckID {
	for _, c := range d.Checks[from:d.N] {
		if !c.Pass {
			return c.ID
		}
	}
	return CheckNone
}

// Passed reports whether the check id was evaluated and passed.
func (d Decision) Passed(id CheckID) bool {
	for _, c := range d.Checks[:d.N] {
		if c.ID == id {
			return c.Pass
		}
	}
	return false
}

// Decide applies the policy described in the package documentation.
func Decide(p Params, in Input) Decision {
	if in.Role == RoleSupernode {
		return decideSupernode(&p, &in)
	}
	return decideLeaf(&p, &in)
}

// EmergencyTurn is how long the node could have stepped in, in an emergency
// election, as far as uptime and dwell go: the time since the emergency
// began (Input.EmergencyFor), since its uptime reached EmergencyMinUptime,
// and since its last switch passed EmergencyDwell, whichever is shortest;
// zero while one of them has not happened. The stagger counts from it
// rather than from the start of the emergency: nodes that started together
// (a young network, or a machine room after a power cut) reach
// EmergencyMinUptime together, and a stagger already served while they
// waited for it would let every successor promote in the same evaluation,
// each founding a ring of one. Reachability has no such clock in Input;
// the caller confirms it within seconds of the emergency on a LAN (the
// orphaned leaves dial the successors, and those inbound connections are
// evidence), well inside one stagger.
func EmergencyTurn(p Params, in Input) time.Duration {
	turn := in.EmergencyFor
	turn = min(turn, subSat(in.Uptime, p.EmergencyMinUptime))
	turn = min(turn, subSat(in.SinceSwitch, p.EmergencyDwell))
	return max(turn, 0)
}

// subSat is a − b, saturated at the int64 bounds (SinceSwitch is
// math.MaxInt64 for a node that never switched, and Decide must not wrap
// around on parameters nobody validated).
func subSat(a, b time.Duration) time.Duration {
	d := a - b
	if (b < 0 && d < a) || (b > 0 && d > a) {
		if b < 0 {
			return time.Duration(math.MaxInt64)
		}
		return time.Duration(math.MinInt64)
	}
	return d
}

// emergency reports whether the node's view shows a ring without any
// supernode: the first node of a network, or the last supernode died.
func emergency(r RingView) bool { return r.Known && r.Supernodes <= 0 }

func decideLeaf(p *Params, in *Input) Decision {
	var d Decision
	d.add(CheckConsent, in.Consent == ConsentAuto || in.Consent == ConsentAlways)
	d.add(CheckReachable, in.ReachKnown && in.Reachable)

	allow := CheckNeeded
	switch {
	case in.Consent == ConsentAlways:
		// The user asked for it: only reachability (docs/architecture.md, fixed decision 2)
		// and the short dwell that stops a flapping verdict remain.
		d.add(CheckDwell, in.SinceSwitch >= p.EmergencyDwell)
		allow = CheckConsent
	case in.AskedToStepIn:
		// The emergency election, announced: the last supernode is about to
		// leave and picked this leaf (a consenting candidate its own
		// dial-back reached, the longest attached) to take over before it
		// goes. Uptime is not checked: EmergencyMinUptime exists so that a
		// node that just started tries its host cache before it declares
		// the network empty, and here the ring itself says it is about to
		// be. Capacity and need are skipped as in the emergency, since the
		// alternative is a network without any supernode. Reachability and
		// the short dwell still apply.
		d.add(CheckStepIn, true)
		d.add(CheckDwell, in.SinceSwitch >= p.EmergencyDwell)
		allow = CheckStepIn
	case emergency(in.Ring):
		// A network without supernodes cannot search at all, so any
		// reachable node is better than none; the weaker ones demote later
		// by the keep thresholds or as idle surplus.
		d.add(CheckEmergency, true)
		d.add(CheckStagger, EmergencyTurn(*p, *in) >= time.Duration(in.EmergencyRank)*p.EmergencyStagger)
		d.add(CheckUptime, in.Uptime >= p.EmergencyMinUptime)
		d.add(CheckDwell, in.SinceSwitch >= p.EmergencyDwell)
		allow = CheckEmergency
	default:
		d.add(CheckUptime, in.Uptime >= p.MinUptime)
		d.add(CheckAvgUptime, in.AvgUptime >= p.MinAvgUptime || in.Uptime >= p.MinAvgUptime)
		d.add(CheckBandwidth, in.UpBandwidth >= p.MinUpBandwidth && in.DownBandwidth >= p.MinDownBandwidth)
		known := !in.HeadroomUnknown
		d.add(CheckCPU, known && in.CPUHeadroom >= p.MinCPUHeadroom)
		d.add(CheckMemory, known && in.MemHeadroom >= p.MinMemHeadroom)
		d.add(CheckFDs, known && in.FreeFDs >= p.MinFreeFDs)
		d.add(CheckDwell, in.SinceSwitch >= p.MinDwell)
		d.add(CheckBackoff, in.SinceSwitch >= Backoff(*p, in.Demotions))
		need, why := Needed(*p, in.Ring)
		d.Guidance = why
		d.add(CheckNeeded, need)
		if p.PromoteChance < 1 {
			d.add(CheckLottery, in.Draw < p.PromoteChance)
		}
	}

	if fail := d.firstFail(0); fail != CheckNone {
		d.Action, d.Reason = Stay, fail
		return d
	}
	d.Action, d.Reason = Promote, allow
	return d
}

func decideSupernode(p *Params, in *Input) Decision {
	var d Decision
	d.add(CheckConsent, in.Consent == ConsentAuto || in.Consent == ConsentAlways)
	// Only a verdict of unreachability counts against a supernode: a re-check
	// in progress is not a reason to drop the leaves it serves.
	d.add(CheckReachable, !in.ReachKnown || in.Reachable)
	if fail := d.firstFail(0); fail != CheckNone {
		// Both demote at once, skipping the dwell time: the user withdrew
		// consent, or the ring and the leaves can no longer reach the node.
		d.Action, d.Reason = Demote, fail
		return d
	}
	if in.Consent == ConsentAlways {
		d.Action, d.Reason = Stay, CheckConsent
		return d
	}

	qual := d.N
	unknown := in.HeadroomUnknown
	d.add(CheckCPU, unknown || in.CPUHeadroom >= p.KeepCPUHeadroom)
	d.add(CheckMemory, unknown || in.MemHeadroom >= p.KeepMemHeadroom)
	d.add(CheckFDs, unknown || in.FreeFDs >= p.KeepFreeFDs)
	lacking := d.firstFail(qual)

	surplus, why := Surplus(*p, in.Ring)
	d.Guidance = why
	d.add(CheckSurplus, !surplus)
	idle := in.Leaves <= 0 && in.SinceLastLeaf >= p.DemoteIdle
	d.add(CheckIdle, !idle)

	reason := lacking
	if reason == CheckNone && surplus && idle {
		reason = CheckIdle
	}
	if reason == CheckNone {
		d.Action, d.Reason = Stay, CheckSurplus
		if surplus {
			d.Reason = CheckIdle
		}
		return d
	}
	d.add(CheckDwell, in.SinceSwitch >= p.MinDwell)
	if in.SinceSwitch < p.MinDwell {
		d.Action, d.Reason = Stay, CheckDwell
		return d
	}
	d.Action, d.Reason = Demote, reason
	return d
}
