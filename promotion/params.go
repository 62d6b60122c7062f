package promotion

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Params are the promotion policy's thresholds. Every field has a default in
// DefaultParams; the sources are in docs/field-numbers.md. The TOML keys
// are those of the params file (see File).
type Params struct {
	// MinUptime is the current session a leaf needs before it may promote.
	// Default 1 h: gtk-gnutella requires current uptime > 1 h (LimeWire
	// accepted 2 h current uptime as an alternative to a 1 h average). Session
	// lengths are heavy-tailed (Weibull k ≈ 0.34–0.59, Stutzbach & Rejaie), so
	// a node that has stayed an hour is likely to stay much longer; most
	// sessions (median ≈ 16 min in a BitTorrent swarm) never get there.
	MinUptime time.Duration `toml:"min_uptime"`

	// MinAvgUptime is the mean length of the node's past sessions a leaf needs
	// before it may promote. A current session at least this long also passes
	// (LimeWire's "average ≥ 1 h or current ≥ 2 h"), so a node with no history
	// can still qualify by staying. Default 3 h, gtk-gnutella's figure, rather
	// than LimeWire's 1 h: a departing supernode orphans up to 200 leaf links
	// and makes those leaves re-upload their indexes, and the mean BitTorrent
	// session is ≈ 163 min, so 3 h selects nodes that stay longer than average.
	MinAvgUptime time.Duration `toml:"min_avg_uptime"`

	// MinUpBandwidth is the measured upstream, in bytes per second, a leaf
	// needs to promote. Default 128 KiB/s (≈ 1 Mbit/s). LimeWire required
	// 10 KB/s for about 30 leaves and 32 ultrapeer links; a Canopy supernode
	// has 200 leaf slots (supernode.Config.MaxLeaves), about six times as many,
	// and also relays signalling and, as a last resort, TURN traffic (libp2p's
	// Circuit Relay v2 caps one relayed circuit at 128 KiB, so one such circuit
	// a second would take the whole budget).
	MinUpBandwidth float64 `toml:"min_up_bandwidth"`

	// MinDownBandwidth is the measured downstream, in bytes per second, a leaf
	// needs to promote. Default 256 KiB/s (≈ 2 Mbit/s), LimeWire's 2:1
	// down:up ratio (20 KB/s down) on the upstream figure: a supernode receives
	// every attaching leaf's index, and after a peer supernode fails it
	// receives the re-uploads of that peer's orphaned leaves in a burst.
	// Unlike LimeWire, which accepted either, both directions must pass,
	// because a supernode both receives indexes and sends hits.
	MinDownBandwidth float64 `toml:"min_down_bandwidth"`

	// MinCPUHeadroom is the idle CPU fraction (0–1) a leaf needs to promote.
	// Default 0.5: LimeWire favoured idle machines; a busy machine answers
	// queries late and makes its user notice the supernode role.
	MinCPUHeadroom float64 `toml:"min_cpu_headroom"`

	// KeepCPUHeadroom is the idle CPU fraction below which a supernode demotes
	// (after MinDwell). Default 0.2. It is lower than MinCPUHeadroom so that
	// the load the role itself brings does not demote the node it just
	// promoted.
	KeepCPUHeadroom float64 `toml:"keep_cpu_headroom"`

	// MinMemHeadroom is the free memory fraction (0–1) a leaf needs to
	// promote. Default 0.2. gtk-gnutella budgets 256 KiB of RAM per leaf, so
	// 200 leaves take ≈ 50 MiB plus their index entries; a fifth of a small
	// machine's memory covers that with room for the user's own programs.
	MinMemHeadroom float64 `toml:"min_mem_headroom"`

	// KeepMemHeadroom is the free memory fraction below which a supernode
	// demotes (after MinDwell). Default 0.1, half of MinMemHeadroom for the
	// same hysteresis as KeepCPUHeadroom.
	KeepMemHeadroom float64 `toml:"keep_mem_headroom"`

	// MinFreeFDs is the number of free file descriptors a leaf needs to
	// promote. Default 512: one per leaf slot (200), about 50 for ring links
	// and routing peers (LimeWire kept 32 ultrapeer neighbours, gtk-gnutella
	// 42–50), and the rest for TURN allocations and the user's own transfers;
	// gtk-gnutella likewise checks that descriptors per leaf fit. macOS's
	// default soft limit (256) fails this; the node should raise RLIMIT_NOFILE.
	MinFreeFDs int `toml:"min_free_fds"`

	// KeepFreeFDs is the number of free file descriptors below which a
	// supernode demotes (after MinDwell). Default 128: below it the node can no
	// longer accept leaves and still run its own transfers.
	KeepFreeFDs int `toml:"keep_free_fds"`

	// MinDwell is the least time between two role changes made by the normal
	// rules. Default 30 min, gtk-gnutella's minimum between mode switches.
	MinDwell time.Duration `toml:"min_dwell"`

	// BackoffBase is how long a leaf waits to promote again after its first
	// demotion; each further demotion in a row doubles the wait (Backoff).
	// Default 30 min, from gtk-gnutella.
	BackoffBase time.Duration `toml:"backoff_base"`

	// BackoffMax caps the demotion back-off. Default 1024 min (≈ 17 h), where
	// gtk-gnutella's doubling stops.
	BackoffMax time.Duration `toml:"backoff_max"`

	// DemoteIdle is how long a supernode may go without any leaf before it
	// demotes, when the ring has a surplus. Default 1 h, from gtk-gnutella
	// ("demote after 1 h without leaves").
	DemoteIdle time.Duration `toml:"demote_idle"`

	// TargetLeavesPerSupernode is the number of leaf links per supernode the
	// ring aims at (a leaf attached to k supernodes counts k times, as each
	// supernode's gossip metadata reports it). Default 100: FastTrack ran about
	// 100–200 leaves per supernode (unverified), gtk-gnutella up to 300 and
	// LimeWire 30–45 on 2000s uplinks. 100 is half of a supernode's 200 slots,
	// so that the ring can take in the leaves of failed supernodes.
	TargetLeavesPerSupernode float64 `toml:"target_leaves_per_supernode"`

	// NeedThreshold is the ring load, as a fraction of the target, at which
	// the ring needs another supernode. The ring load is the larger of the
	// leaf links per supernode divided by TargetLeavesPerSupernode and the mean
	// slot occupancy the supernodes publish. Default 0.9: promotion starts
	// before the target is crossed, because candidates take a while to qualify.
	NeedThreshold float64 `toml:"need_threshold"`

	// SurplusThreshold is the ring load at or below which the ring has more
	// supernodes than it needs, so idle ones may demote. Default 0.5. The gap
	// to NeedThreshold is the hysteresis: Validate requires that removing one
	// supernode from a ring just above MinSupernodes cannot push the load from
	// the surplus threshold up to the need threshold.
	SurplusThreshold float64 `toml:"surplus_threshold"`

	// MinSupernodes is the ring size below which another supernode is always
	// needed, and at or below which none is surplus. Default 3, the number of
	// supernodes a leaf attaches to (LimeWire's 3), so that every leaf can
	// hold its links on distinct supernodes and survive two failures.
	MinSupernodes int `toml:"min_supernodes"`

	// FailoverReserve is how many average supernodes' worth of leaf links the
	// ring's free slots must absorb; with fewer free slots the ring needs
	// another supernode. Default 2: the leaves of two failed supernodes can
	// re-attach without being refused, which with k = 3 links per leaf keeps
	// every leaf connected through a double failure.
	FailoverReserve float64 `toml:"failover_reserve"`

	// EmergencyMinUptime is the uptime a reachable leaf needs to promote when
	// its ring view holds no supernode at all. Default 1 min: enough for a
	// node that just started to try its host cache before it declares the
	// network empty, short enough that the first node of a new network, or
	// the leaves of a network whose last supernode died, are not left without
	// a supernode for the hour MinUptime would take. With the defaults a
	// network whose only supernode crashes 10 s after its leaves started
	// has a successor at about 1 min of their uptime, well within the 90 s
	// a user waits before giving up on searches; a leaf the leaving last
	// supernode asks to step in (Input.AskedToStepIn) skips it, since there
	// the network itself says it is about to be empty.
	EmergencyMinUptime time.Duration `toml:"emergency_min_uptime"`

	// EmergencyDwell is the least time between role changes in the cases that
	// skip MinDwell and the back-off: the emergency election and consent
	// "always". Default 2 min. It stops a node whose reachability verdict
	// flaps from switching faster than the ring settles (memberlist removes a
	// dead member everywhere in ≈ 11 s on a LAN; docs/field-numbers.md).
	EmergencyDwell time.Duration `toml:"emergency_dwell"`

	// EmergencyStagger is how long each successor ahead of a candidate gets
	// to step in, in an emergency election: the candidate of rank r (0
	// first) among the successors its supernodes named promotes only once
	// the emergency has lasted r × EmergencyStagger. Without it every
	// orphaned candidate would promote at once into rings of one that know
	// nothing of each other. Default 5 s: a supernode starts and is dialled
	// by the orphaned leaves (which retry successors every second) well
	// within it on a LAN, and with at most eight successors
	// (supernode.MaxSuccessors) the last one waits 40 s. A leaf that is no
	// successor has rank 8 (after them all). The wait counts from when the
	// candidate could first step in (EmergencyTurn): successors that reach
	// EmergencyMinUptime or EmergencyDwell at the same moment must still
	// take turns.
	EmergencyStagger time.Duration `toml:"emergency_stagger"`

	// PromoteChance is the probability that a fully qualified leaf acts on
	// the ring's need at one evaluation (Input.Draw must fall below it). All
	// candidates read the same gossip, so without it every one of them would
	// promote at the same moment and the ring would overshoot, then demote the
	// excess an hour later. Default 0.5, a first guess for the simulator to
	// tune (no field source); 1 disables the lottery. It does not apply to the
	// emergency election or consent "always", whose bounds must stay certain.
	PromoteChance float64 `toml:"promote_chance"`
}

// DefaultParams returns the policy the node runs with unless a params file
// says otherwise. The field docs give each value's source.
func DefaultParams() Params {
	return Params{
		MinUptime:                time.Hour,
		MinAvgUptime:             3 * time.Hour,
		MinUpBandwidth:           128 << 10,
		MinDownBandwidth:         256 << 10,
		MinCPUHeadroom:           0.5,
		KeepCPUHeadroom:          0.2,
		MinMemHeadroom:           0.2,
		KeepMemHeadroom:          0.1,
		MinFreeFDs:               512,
		KeepFreeFDs:              128,
		MinDwell:                 30 * time.Minute,
		BackoffBase:              30 * time.Minute,
		BackoffMax:               1024 * time.Minute,
		DemoteIdle:               time.Hour,
		TargetLeavesPerSupernode: 100,
		NeedThreshold:            0.9,
		SurplusThreshold:         0.5,
		MinSupernodes:            3,
		FailoverReserve:          2,
		EmergencyMinUptime:       time.Minute,
		EmergencyDwell:           2 * time.Minute,
		EmergencyStagger:         5 * time.Second,
		PromoteChance:            0.5,
	}
}

// Validate reports every parameter out of its range, joined, each wrapping
// ErrInvalidParams. The cross-field rules (keep ≤ min, surplus < need,
// emergency ≤ normal) exist because the opposite makes the policy flap.
func (p Params) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidParams}, args...)...))
	}
	nonNeg := func(name string, d time.Duration) {
		if d < 0 {
			bad("%s %v is negative", name, d)
		}
	}
	nonNeg("min_uptime", p.MinUptime)
	nonNeg("min_avg_uptime", p.MinAvgUptime)
	nonNeg("min_dwell", p.MinDwell)
	nonNeg("demote_idle", p.DemoteIdle)
	nonNeg("emergency_min_uptime", p.EmergencyMinUptime)
	nonNeg("emergency_dwell", p.EmergencyDwell)
	nonNeg("emergency_stagger", p.EmergencyStagger)
	if p.BackoffBase <= 0 {
		bad("backoff_base %v must be positive", p.BackoffBase)
	}
	if p.BackoffMax < p.BackoffBase {
		bad("backoff_max %v is below backoff_base %v", p.BackoffMax, p.BackoffBase)
	}
	if p.EmergencyMinUptime > p.MinUptime {
		bad("emergency_min_uptime %v exceeds min_uptime %v", p.EmergencyMinUptime, p.MinUptime)
	}
	if p.EmergencyDwell > p.MinDwell {
		bad("emergency_dwell %v exceeds min_dwell %v", p.EmergencyDwell, p.MinDwell)
	}

	finiteNonNeg := func(name string, v float64) {
		if !(v >= 0) || math.IsInf(v, 0) {
			bad("%s %v must be a finite number ≥ 0", name, v)
		}
	}
	finiteNonNeg("min_up_bandwidth", p.MinUpBandwidth)
	finiteNonNeg("min_down_bandwidth", p.MinDownBandwidth)
	finiteNonNeg("failover_reserve", p.FailoverReserve)

	fraction := func(name string, v float64) {
		if !(v >= 0 && v <= 1) {
			bad("%s %v must be between 0 and 1", name, v)
		}
	}
	fraction("min_cpu_headroom", p.MinCPUHeadroom)
	fraction("keep_cpu_headroom", p.KeepCPUHeadroom)
	fraction("min_mem_headroom", p.MinMemHeadroom)
	fraction("keep_mem_headroom", p.KeepMemHeadroom)
	if p.KeepCPUHeadroom > p.MinCPUHeadroom {
		bad("keep_cpu_headroom %v exceeds min_cpu_headroom %v", p.KeepCPUHeadroom, p.MinCPUHeadroom)
	}
	if p.KeepMemHeadroom > p.MinMemHeadroom {
		bad("keep_mem_headroom %v exceeds min_mem_headroom %v", p.KeepMemHeadroom, p.MinMemHeadroom)
	}
	if p.KeepFreeFDs < 0 {
		bad("keep_free_fds %d is negative", p.KeepFreeFDs)
	}
	if p.MinFreeFDs < p.KeepFreeFDs {
		bad("min_free_fds %d is below keep_free_fds %d", p.MinFreeFDs, p.KeepFreeFDs)
	}

	if !(p.TargetLeavesPerSupernode >= 1) || math.IsInf(p.TargetLeavesPerSupernode, 0) {
		bad("target_leaves_per_supernode %v must be a finite number ≥ 1", p.TargetLeavesPerSupernode)
	}
	if p.MinSupernodes < 1 {
		bad("min_supernodes %d must be at least 1", p.MinSupernodes)
	}
	if !(p.NeedThreshold > 0 && p.NeedThreshold <= 10) {
		bad("need_threshold %v must be in (0, 10]", p.NeedThreshold)
	}
	if !(p.SurplusThreshold >= 0 && p.SurplusThreshold < p.NeedThreshold) {
		bad("surplus_threshold %v must be ≥ 0 and below need_threshold %v", p.SurplusThreshold, p.NeedThreshold)
	} else if p.MinSupernodes >= 1 {
		// A ring of MinSupernodes+1 at the surplus threshold loses one idle
		// supernode: its load rises by (n)/(n-1). It must stay below the need
		// threshold, or the demotion triggers a promotion, and so on.
		n := float64(p.MinSupernodes + 1)
		if after := p.SurplusThreshold * n / (n - 1); after >= p.NeedThreshold {
			bad("surplus_threshold %v is too close to need_threshold %v: with min_supernodes %d one demotion raises the load to %.3f and triggers a promotion",
				p.SurplusThreshold, p.NeedThreshold, p.MinSupernodes, after)
		}
	}
	if !(p.PromoteChance > 0 && p.PromoteChance <= 1) {
		bad("promote_chance %v must be in (0, 1]", p.PromoteChance)
	}
	return errors.Join(errs...)
}

// Backoff returns how long a leaf that has been demoted demotions times in a
// row must wait before it promotes again: zero before any demotion, then
// BackoffBase doubling with each demotion up to BackoffMax (gtk-gnutella).
func Backoff(p Params, demotions int) time.Duration {
	if demotions <= 0 {
		return 0
	}
	d := p.BackoffBase
	if d <= 0 {
		return 0
	}
	// Stop doubling once the cap is reached, which also bounds the loop and
	// keeps d from overflowing however many demotions are counted.
	for i := 1; i < demotions && d < p.BackoffMax; i++ {
		if d > p.BackoffMax/2 {
			return p.BackoffMax
		}
		d *= 2
	}
	return min(d, p.BackoffMax)
}
