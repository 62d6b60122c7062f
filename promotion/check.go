package promotion

import "fmt"

// CheckID names one rule of the policy: a qualification Decide checks, or a
// ring condition Needed and Surplus report as their reason.
type CheckID uint8

const (
	// CheckNone is the zero value: no check.
	CheckNone CheckID = iota
	// CheckConsent is the user's --supernode choice.
	CheckConsent
	// CheckReachable is confirmed public reachability.
	CheckReachable
	// CheckEmergency marks the emergency election: the ring has no supernode.
	CheckEmergency
	// CheckUptime is the current session's length.
	CheckUptime
	// CheckAvgUptime is the mean past session length.
	CheckAvgUptime
	// CheckBandwidth is measured upstream and downstream bandwidth.
	CheckBandwidth
	// CheckCPU is idle CPU.
	CheckCPU
	// CheckMemory is free memory.
	CheckMemory
	// CheckFDs is free file descriptors.
	CheckFDs
	// CheckDwell is the time since the last role change.
	CheckDwell
	// CheckBackoff is the wait that grows after each demotion.
	CheckBackoff
	// CheckNeeded is whether the ring needs another supernode.
	CheckNeeded
	// CheckLottery is the draw that spreads candidates' promotions over time.
	CheckLottery
	// CheckSurplus is whether the ring can spare a supernode; it passes when
	// it cannot.
	CheckSurplus
	// CheckIdle is whether a supernode has gone DemoteIdle without a leaf; it
	// passes when it has not.
	CheckIdle
	// CheckRingView is the reason Needed and Surplus give when the node has no
	// view of the ring.
	CheckRingView
	// CheckMinSupernodes is the reason for a ring at or below MinSupernodes.
	CheckMinSupernodes
	// CheckRingLoad is the reason for a verdict from the ring's load against
	// the need and surplus thresholds.
	CheckRingLoad
	// CheckFreeSlots is the reason for a ring whose free leaf slots fall short
	// of the failover reserve.
	CheckFreeSlots
	// CheckStagger is the emergency election's turn: a candidate waits its
	// rank among the successors times EmergencyStagger.
	CheckStagger
	// CheckStepIn marks a hand-over by the last supernode: it is leaving
	// the network and asked this leaf to take its place.
	CheckStepIn

	numChecks
)

var checkNames = [numChecks]string{
	CheckNone:          "none",
	CheckConsent:       "consent",
	CheckReachable:     "reachable",
	CheckEmergency:     "emergency",
	CheckUptime:        "uptime",
	CheckAvgUptime:     "avg-uptime",
	CheckBandwidth:     "bandwidth",
	CheckCPU:           "cpu",
	CheckMemory:        "memory",
	CheckFDs:           "fds",
	CheckDwell:         "dwell",
	CheckBackoff:       "backoff",
	CheckNeeded:        "needed",
	CheckLottery:       "lottery",
	CheckSurplus:       "surplus",
	CheckIdle:          "idle",
	CheckRingView:      "ring-view",
	CheckMinSupernodes: "min-supernodes",
	CheckRingLoad:      "ring-load",
	CheckFreeSlots:     "free-slots",
	CheckStagger:       "stagger",
	CheckStepIn:        "step-in",
}

// String returns a short stable name ("uptime", "free-slots"), suitable for
// metrics labels and JSON.
func (c CheckID) String() string {
	if c < numChecks {
		return checkNames[c]
	}
	return fmt.Sprintf("check(%d)", uint8(c))
}

// Check is one evaluated rule and whether it passed.
type Check struct {
	ID   CheckID
	Pass bool
}

// MaxChecks bounds the checks one Decision records: the longest path, a leaf
// under the normal rules, evaluates twelve.
const MaxChecks = 12
