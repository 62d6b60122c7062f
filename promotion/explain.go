package promotion

import (
	"fmt"
	"time"
)

// Explain returns one sentence per check of d, in order, for a person reading
// `canopy status`: a ✓ or ✗, what was measured and what the rule asks for.
// p and in must be those d was decided from.
func (d Decision) Explain(p Params, in Input) []string {
	out := make([]string, 0, d.N)
	super := in.Role == RoleSupernode
	emerg := d.Passed(CheckEmergency)
	always := in.Consent == ConsentAlways
	for _, c := range d.Checks[:d.N] {
		mark := "✓ "
		if !c.Pass {
			mark = "✗ "
		}
		out = append(out, mark+explainCheck(c, d, p, in, super, emerg, always))
	}
	return out
}

// Summary returns a one-line headline for the decision, such as "stay a leaf:
// up 12 min; a supernode needs 1 h of uptime first".
func (d Decision) Summary(p Params, in Input) string {
	var head string
	switch {
	case d.Action == Promote:
		head = "promote to supernode"
	case d.Action == Demote:
		head = "demote to leaf"
	case in.Role == RoleSupernode:
		head = "stay a supernode"
	default:
		head = "stay a leaf"
	}
	for _, c := range d.Checks[:d.N] {
		if c.ID == d.Reason {
			return head + ": " + explainCheck(c, d, p, in, in.Role == RoleSupernode, d.Passed(CheckEmergency), in.Consent == ConsentAlways)
		}
	}
	return head
}

func explainCheck(c Check, d Decision, p Params, in Input, super, emerg, always bool) string {
	keep := ""
	if super {
		keep = " to stay a supernode"
	}
	switch c.ID {
	case CheckConsent:
		switch {
		case !c.Pass:
			if super {
				return "you chose never to run as a supernode (--supernode never), so it steps down now"
			}
			return "you chose never to run as a supernode (--supernode never)"
		case always:
			return "you asked to run as a supernode (--supernode always): uptime, capacity and the network's need are not checked"
		default:
			return "you allow this node to become a supernode when it qualifies (--supernode auto)"
		}

	case CheckReachable:
		switch {
		case c.Pass && in.ReachKnown:
			return "reachable from outside (confirmed by dial-backs)"
		case c.Pass:
			return "no verdict against reachability yet (a re-check is under way)"
		case !in.ReachKnown:
			return "reachability from outside not confirmed yet; only nodes others can dial can be supernodes"
		case super:
			return "no longer reachable from outside (dial-backs failed), so it steps down now"
		default:
			return "not reachable from outside (dial-backs failed); only nodes others can dial can be supernodes"
		}

	case CheckEmergency:
		return fmt.Sprintf("the network has no supernode at all: emergency election, only %s of uptime needed", dur(p.EmergencyMinUptime))

	case CheckStagger:
		wait := time.Duration(in.EmergencyRank) * p.EmergencyStagger
		if in.EmergencyRank == 0 {
			return "first in line among the successors the supernodes named"
		}
		if c.Pass {
			return fmt.Sprintf("number %d in line to step in; the %d ahead had %s and did not", in.EmergencyRank+1, in.EmergencyRank, dur(wait))
		}
		turn := EmergencyTurn(p, in)
		if turn < in.EmergencyFor {
			// The turn counts from when this node could first step in
			// (uptime or dwell held it back), not from the emergency's start.
			return fmt.Sprintf("number %d in line to step in: waiting %s for the %d ahead, counted from when this node could first step in (%s so far; emergency for %s)",
				in.EmergencyRank+1, dur(wait), in.EmergencyRank, dur(turn), dur(in.EmergencyFor))
		}
		return fmt.Sprintf("number %d in line to step in: waiting %s for the %d ahead (%s so far)", in.EmergencyRank+1, dur(wait), in.EmergencyRank, dur(turn))

	case CheckStepIn:
		return "the last supernode is leaving the network and asked this node to take its place: uptime, capacity and the network's need are not checked"

	case CheckUptime:
		need := p.MinUptime
		if emerg {
			need = p.EmergencyMinUptime
		}
		if c.Pass {
			return fmt.Sprintf("up %s (a supernode needs %s)", dur(in.Uptime), dur(need))
		}
		return fmt.Sprintf("up %s; a supernode needs %s of uptime first", dur(in.Uptime), dur(need))

	case CheckAvgUptime:
		switch {
		case in.AvgUptime >= p.MinAvgUptime:
			return fmt.Sprintf("past sessions average %s (a supernode needs %s)", dur(in.AvgUptime), dur(p.MinAvgUptime))
		case c.Pass:
			return fmt.Sprintf("up %s this session, which meets the %s session rule", dur(in.Uptime), dur(p.MinAvgUptime))
		case in.AvgUptime == 0:
			return fmt.Sprintf("no session history yet; a supernode needs sessions of %s on average, or this one to reach %s", dur(p.MinAvgUptime), dur(p.MinAvgUptime))
		default:
			return fmt.Sprintf("past sessions average %s; a supernode needs %s on average, or this session to reach %s", dur(in.AvgUptime), dur(p.MinAvgUptime), dur(p.MinAvgUptime))
		}

	case CheckBandwidth:
		s := fmt.Sprintf("bandwidth %s up, %s down", rate(in.UpBandwidth), rate(in.DownBandwidth))
		if c.Pass {
			return s + fmt.Sprintf(" (a supernode needs %s up, %s down)", rate(p.MinUpBandwidth), rate(p.MinDownBandwidth))
		}
		return s + fmt.Sprintf("; a supernode needs %s up and %s down", rate(p.MinUpBandwidth), rate(p.MinDownBandwidth))

	case CheckCPU, CheckMemory, CheckFDs:
		if in.HeadroomUnknown {
			return explainUnmeasured(c.ID, super)
		}
		return explainHeadroom(c, p, in, super, keep)

	case CheckDwell:
		need := p.MinDwell
		if emerg || always || d.Passed(CheckStepIn) {
			need = p.EmergencyDwell
		}
		switch {
		case c.Pass && in.SinceSwitch >= neverSwitched:
			return fmt.Sprintf("no recent role change (at least %s between changes)", dur(need))
		case c.Pass:
			return fmt.Sprintf("last role change %s ago (at least %s between changes)", dur(in.SinceSwitch), dur(need))
		}
		if super {
			return fmt.Sprintf("would step down, but became a supernode only %s ago; waits %s between role changes so the network does not flap", dur(in.SinceSwitch), dur(need))
		}
		return fmt.Sprintf("changed role %s ago; waits %s between role changes so the network does not flap", dur(in.SinceSwitch), dur(need))

	case CheckBackoff:
		b := Backoff(p, in.Demotions)
		switch {
		case in.Demotions <= 0:
			return "never demoted, so no back-off"
		case c.Pass:
			return fmt.Sprintf("back-off after %s (%s) has passed", times(in.Demotions), dur(b))
		default:
			return fmt.Sprintf("demoted %s in a row; backs off %s before promoting again (%s left)", times(in.Demotions), dur(b), dur(b-in.SinceSwitch))
		}

	case CheckNeeded:
		return explainNeed(c.Pass, d.Guidance, p, in.Ring)

	case CheckLottery:
		if c.Pass {
			return fmt.Sprintf("won the promotion draw (%.0f%% per check), which spreads candidates' promotions over time", p.PromoteChance*100)
		}
		return fmt.Sprintf("lost the promotion draw (%.0f%% per check), which keeps all candidates from promoting at once; tries again next check", p.PromoteChance*100)

	case CheckSurplus:
		return explainSurplus(c.Pass, d.Guidance, p, in.Ring)

	case CheckIdle:
		switch {
		case in.Leaves > 0:
			return fmt.Sprintf("serving %d leaves", in.Leaves)
		case c.Pass:
			return fmt.Sprintf("no leaves for %s (a supernode without leaves for %s steps down if the network has a surplus)", dur(in.SinceLastLeaf), dur(p.DemoteIdle))
		default:
			return fmt.Sprintf("no leaves for %s, longer than the %s an idle supernode may stay", dur(in.SinceLastLeaf), dur(p.DemoteIdle))
		}
	}
	return c.ID.String()
}

func explainNeed(pass bool, why CheckID, p Params, r RingView) string {
	switch why {
	case CheckRingView:
		return "no view of the supernode network yet"
	case CheckMinSupernodes:
		return fmt.Sprintf("the network has %d supernodes, fewer than the minimum of %d", r.Supernodes, p.MinSupernodes)
	case CheckFreeSlots:
		return fmt.Sprintf("the network needs another supernode: %d free leaf slots cannot take in the leaves of %g failed supernodes (%.0f)",
			r.FreeSlots, p.FailoverReserve, p.FailoverReserve*perSupernode(r))
	}
	load := loadOf(p, r)
	if pass {
		return fmt.Sprintf("the network needs another supernode: %.0f leaf links per supernode, load %.0f%% of the target %g (promotes at %.0f%%)",
			perSupernode(r), load*100, p.TargetLeavesPerSupernode, p.NeedThreshold*100)
	}
	return fmt.Sprintf("the network does not need another supernode: %.0f leaf links per supernode, load %.0f%% of the target %g (needs one at %.0f%%)",
		perSupernode(r), load*100, p.TargetLeavesPerSupernode, p.NeedThreshold*100)
}

func explainSurplus(pass bool, why CheckID, p Params, r RingView) string {
	switch why {
	case CheckRingView:
		return "no view of the supernode network yet, so no surplus is assumed"
	case CheckMinSupernodes:
		return fmt.Sprintf("the network has %d supernodes, no more than the minimum of %d, so it needs this one", r.Supernodes, p.MinSupernodes)
	case CheckFreeSlots:
		return fmt.Sprintf("without this supernode the %d free leaf slots would fall short of the failover reserve", r.FreeSlots)
	}
	load := loadOf(p, r)
	if pass {
		return fmt.Sprintf("the network has no surplus of supernodes: load %.0f%% of the target %g leaf links per supernode (surplus at %.0f%% or less)",
			load*100, p.TargetLeavesPerSupernode, p.SurplusThreshold*100)
	}
	return fmt.Sprintf("the network has more supernodes than it needs: load %.0f%% of the target %g leaf links per supernode (surplus at %.0f%% or less)",
		load*100, p.TargetLeavesPerSupernode, p.SurplusThreshold*100)
}

func perSupernode(r RingView) float64 {
	if r.Supernodes <= 0 {
		return 0
	}
	return float64(r.Leaves) / float64(r.Supernodes)
}

func loadOf(p Params, r RingView) float64 {
	if r.Supernodes <= 0 || p.TargetLeavesPerSupernode <= 0 {
		return 0
	}
	return p.ringLoad(r)
}

func fraction(what string, have, need float64, pass bool, keep string) string {
	if pass {
		return fmt.Sprintf("%.0f%% %s (needs %.0f%%%s)", have*100, what, need*100, keep)
	}
	return fmt.Sprintf("%.0f%% %s; needs %.0f%%%s", have*100, what, need*100, keep)
}

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

// dur formats a duration for a person: "45 s", "12 min", "1 h 5 min",
// "3 d 4 h"; a node that never switched passes a huge value, shown as
// "over a year".
func dur(d time.Duration) string {
	switch {
	case d < 0:
		return "0 s"
	case d < time.Minute:
		return fmt.Sprintf("%d s", d/time.Second)
	case d < time.Hour:
		return fmt.Sprintf("%d min", d/time.Minute)
	case d < 24*time.Hour:
		h, m := d/time.Hour, (d%time.Hour)/time.Minute
		if m == 0 {
			return fmt.Sprintf("%d h", h)
		}
		return fmt.Sprintf("%d h %d min", h, m)
	case d < 365*24*time.Hour:
		days, h := d/(24*time.Hour), (d%(24*time.Hour))/time.Hour
		if h == 0 {
			return fmt.Sprintf("%d d", days)
		}
		return fmt.Sprintf("%d d %d h", days, h)
	}
	return "over a year"
}

// neverSwitched is the SinceSwitch from which Explain treats the node as never
// having switched (callers pass a huge value for that).
const neverSwitched = 365 * 24 * time.Hour

// rate formats bytes per second.
func rate(bps float64) string {
	switch {
	case bps < 1<<10:
		return fmt.Sprintf("%.0f B/s", bps)
	case bps < 1<<20:
		return fmt.Sprintf("%.0f KiB/s", bps/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB/s", bps/(1<<20))
}

// explainHeadroom explains the CPU, memory or descriptor check of a measured
// machine.
func explainHeadroom(c Check, p Params, in Input, super bool, keep string) string {
	switch c.ID {
	case CheckCPU:
		need := p.MinCPUHeadroom
		if super {
			need = p.KeepCPUHeadroom
		}
		return fraction("CPU idle", in.CPUHeadroom, need, c.Pass, keep)

	case CheckMemory:
		need := p.MinMemHeadroom
		if super {
			need = p.KeepMemHeadroom
		}
		return fraction("memory free", in.MemHeadroom, need, c.Pass, keep)

	case CheckFDs:
		need := p.MinFreeFDs
		if super {
			need = p.KeepFreeFDs
		}
		if c.Pass {
			return fmt.Sprintf("%d file descriptors free (needs %d%s)", in.FreeFDs, need, keep)
		}
		return fmt.Sprintf("%d file descriptors free; needs %d%s (raise the open-files limit)", in.FreeFDs, need, keep)
	}
	return c.ID.String()
}

// explainUnmeasured explains a capacity check on a machine that was not
// measured (Input.HeadroomUnknown).
func explainUnmeasured(id CheckID, super bool) string {
	what := map[CheckID]string{CheckCPU: "CPU idle time", CheckMemory: "free memory", CheckFDs: "free file descriptors"}[id]
	if super {
		return what + " not measured: no reason to step down"
	}
	return what + " not measured yet (or not on this system): a leaf promotes only on capacity it has seen"
}
