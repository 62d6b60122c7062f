// Package sim is Canopy's network simulator: a deterministic discrete-event
// model of a whole Canopy network — churn, NATs, capacities, searches — that
// runs the node's own decision cores (promotion, supernode choice, query
// routing) over populations no test bed reaches, to tune the promotion rules.
//
// What the simulator runs and what it models:
//
//   - run, imported from the node: promotion.Decide and promotion.Needed (role
//     changes and leaf guidance), choice.Choose (which supernodes a leaf
//     attaches to), routing.View (which ring members a supernode links to),
//     routing.OriginTTL and routing.Forward (where a supernode sends a query).
//   - modelled from measurements, documented where they are defined: session
//     and offline times, capacities, the NAT mix and which NAT pairs connect
//     directly, the delay before a leaf notices a dead supernode (link idle
//     timeout, memberlist failure detection), link latencies, file
//     popularity.
//
// A run is a pure function of its Scenario (seed included): the same scenario
// produces byte-identical outputs.
package sim

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/canopy-p2p/canopy/choice"
	"github.com/canopy-p2p/canopy/nat"
	"github.com/canopy-p2p/canopy/promotion"
	"github.com/canopy-p2p/canopy/routing"
	"github.com/canopy-p2p/canopy/sim/dist"
)

// ScenarioVersion is the scenario file format this code reads.
const ScenarioVersion = 1

// Duration is a time.Duration that reads and writes as text ("90m", "2h")
// in scenario files.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// Scenario is everything a run depends on. Every field has a default (see
// DefaultScenario) taken from published measurements where one exists
// (docs/field-numbers.md); a scenario file only names what it changes.
type Scenario struct {
	Version int    `toml:"version"`
	Name    string `toml:"name"`
	// Seed seeds the run's single random source.
	Seed uint64 `toml:"seed"`
	// Nodes is the population: every node that takes part during the run.
	Nodes int `toml:"nodes"`
	// Hours is the simulated time.
	Hours float64 `toml:"hours"`
	// SampleEvery is the time-series resolution.
	SampleEvery Duration `toml:"sample_every"`

	Churn    Churn     `toml:"churn"`
	Capacity []Class   `toml:"capacity"`
	NAT      []NATKind `toml:"nat"`
	Files    Files     `toml:"files"`
	Queries  Queries   `toml:"queries"`
	Network  Network   `toml:"network"`
	// Policy is the promotion policy under test.
	Policy promotion.Params `toml:"policy"`
	// PolicyFile, when set, replaces Policy with a file written by a sweep.
	PolicyFile string `toml:"policy_file"`
	// CapacityAssign is how nodes get their capacity class: "draw" (default:
	// each node draws one by the classes' shares) or "stratified" (node i
	// gets the class whose cumulative share first exceeds (i+½)/Nodes, so a
	// small population holds exactly the shares, as a test bed does).
	CapacityAssign string `toml:"capacity_assign"`
	// Events are scripted happenings at fixed times (default: none). See
	// Event.
	Events []Event `toml:"events"`
}

// Churn is when nodes are online.
type Churn struct {
	// Session is the length of an online session. Default: Weibull k = 0.34,
	// λ = 612 min, the Gnutella trace of the TU Delft P2P Trace Archive
	// (docs/field-numbers.md; unverified units). BitTorrent swarms churn faster
	// (k = 0.38, λ = 42.4 min, Stutzbach & Rejaie 2006).
	Session dist.Spec `toml:"session"`
	// Offline is the time between two sessions of a node. Default:
	// exponential with a mean of 48 h. No figure in docs/field-numbers.md covers
	// it; with the default sessions (mean ≈ 59 h) it puts ~55% of the
	// population online at any time. Measured P2P host availability is
	// usually lower, so treat this as a knob, not a finding.
	Offline dist.Spec `toml:"offline"`
	// Start is "steady" (default: the run starts in a network that has been
	// running, each node online with its long-run probability and its
	// session or offline time in progress) or "empty" (a new network: every
	// node arrives within ArrivalWindow).
	Start string `toml:"start"`
	// ArrivalWindow spreads the arrivals of an "empty" start uniformly over
	// this time, so the network grows rather than meets a flash crowd.
	ArrivalWindow Duration `toml:"arrival_window"`
	// History is how many past sessions each node remembers at the start
	// (their lengths drawn from Session), standing in for the uptime
	// history a real node keeps across restarts.
	History int `toml:"history"`
	// CrashShare is the share of departures without a goodbye: their leaves
	// notice only when the link idles out (Network.DetectDead).
	CrashShare float64 `toml:"crash_share"`
}

// Class is a capacity class.
type Class struct {
	Share float64 `toml:"share"`
	// Up and Down are bandwidths in bytes/s.
	Up   float64 `toml:"up"`
	Down float64 `toml:"down"`
	// Headroom is the CPU and memory headroom (0–1) such a machine has.
	Headroom float64 `toml:"headroom"`
}

// NATKind is a share of the population behind one kind of NAT, named as
// nat.ParseKind reads it ("public", "full-cone", ..., "udp-blocked").
type NATKind struct {
	Kind  string  `toml:"kind"`
	Share float64 `toml:"share"`
	// Mapped is the share of these nodes whose router grants a port mapping
	// (UPnP-IGD / NAT-PMP), which makes them reachable from outside.
	Mapped float64 `toml:"mapped"`
}

// Files is what nodes share and what they look for.
type Files struct {
	// Catalog is the number of distinct files in the network.
	Catalog int `toml:"catalog"`
	// PerNode is the mean number of files a sharing node shares.
	PerNode int `toml:"per_node"`
	// FreeRiders is the share of nodes that share nothing (~25% in Gnutella,
	// Saroiu et al. 2002).
	FreeRiders float64 `toml:"free_riders"`
	// ZipfS is the Zipf exponent of file popularity (for both what is shared
	// and what is searched for).
	ZipfS float64 `toml:"zipf_s"`
	// Layout is "zipf" (default: nodes share PerNode files on average drawn
	// from the popularity distribution, and searches look for a file drawn
	// from it too) or "one-each": every node shares one file of its own
	// (Catalog, PerNode, FreeRiders and ZipfS are ignored) and a search looks
	// for the file of a uniformly chosen other online node. The second is
	// the layout of the node emulation (node/emulation_test.go), where every
	// search must find every live node's file; it is meant for small runs.
	Layout string `toml:"layout"`
}

// Queries is how often leaves search.
type Queries struct {
	// PerHour is the searches one online node starts per hour.
	PerHour float64 `toml:"per_hour"`
	// DownloadShare is the share of successful searches followed by a
	// download (for relay load).
	DownloadShare float64 `toml:"download_share"`
	// FileSize is the mean size of a download in bytes.
	FileSize float64 `toml:"file_size"`
}

// Network is the network's own parameters and the modelled delays.
type Network struct {
	// Choice is the supernode choice rule (K supernodes per leaf).
	Choice choice.Params `toml:"choice"`
	// Routing is the query routing rule.
	Routing routing.Params `toml:"routing"`
	// LeafSlots is how many leaves a supernode accepts.
	LeafSlots int `toml:"leaf_slots"`
	// PeerView, PeerViewRefresh, PeerViewRotate and PeerInbound bound the
	// ring links of a supernode, as routing.ViewParams bounds the node's:
	// it dials PeerView members picked by the node's rule (routing.View),
	// replaces PeerViewRotate of them every PeerViewRefresh, and accepts up
	// to PeerInbound links dialled by others (zero: twice PeerView). Queries
	// travel over both kinds. Defaults: the node's.
	PeerView        int      `toml:"peer_view"`
	PeerViewRefresh Duration `toml:"peer_view_refresh"`
	PeerViewRotate  int      `toml:"peer_view_rotate"`
	PeerInbound     int      `toml:"peer_inbound"`
	// Candidates is how many supernodes a leaf knows to choose from (its host
	// cache and the lists supernodes send it): the node's leaf.Config
	// MaxCandidates, default choice.DefaultMaxCandidates.
	Candidates int `toml:"candidates"`
	// Evaluate is how often a reachable node runs the promotion policy
	// (gtk-gnutella re-checks every 20 min).
	Evaluate Duration `toml:"evaluate"`
	// DetectDead is how long a leaf takes to notice a supernode that left
	// without a goodbye: the control link's idle timeout.
	DetectDead Duration `toml:"detect_dead"`
	// RetryAttach is how long an orphaned leaf waits before trying again
	// when no supernode had room.
	RetryAttach Duration `toml:"retry_attach"`
	// HopLatency is the one-way latency of one control-link hop.
	HopLatency dist.Spec `toml:"hop_latency"`
	// NeverConsent is the share of users who run with --supernode never.
	NeverConsent float64 `toml:"never_consent"`
	// SupernodeLeafSide makes a supernode keep a leaf side, as the node does
	// (node.promote attaches the node's own leaf to its new supernode role):
	// it stays attached to K supernodes (possibly itself), its files stay
	// searchable through them, its links count in the ring's leaf links, and
	// it counts as orphaned when it has none. Default false: supernodes hold
	// no leaf links, which changes little at a supernode share of ~1% but a
	// lot in a network of tens of nodes.
	SupernodeLeafSide bool `toml:"supernode_leaf_side"`
	// ViewRefresh is how often a leaf's view of the ring is refreshed (the
	// guidance its supernodes send; node.Config.GuidanceInterval). Zero
	// (default) gives every node the ring's current totals, which is right
	// when the refresh is far shorter than Evaluate. When set, a leaf
	// evaluates against the totals as they were at the last refresh, has no
	// view while it is an orphan of a ring that still has supernodes (it is
	// dialling) or before its first refresh after the ring had none, and
	// sees the empty ring that starts an emergency election only once the
	// last supernode is gone and its leaves have noticed (DetectDead).
	// Supernodes always see the current totals (gossip).
	ViewRefresh Duration `toml:"view_refresh"`
	// EmergencySuccessors is how many successors the supernodes name for an
	// emergency election (supernode.MaxSuccessors is 8): when the last
	// supernode goes, the longest-online reachable leaves that may promote,
	// up to this many, are ranked by node ID, and the one of rank r promotes
	// only after the emergency has lasted r × policy.emergency_stagger;
	// every other leaf has rank EmergencySuccessors. Zero (default) gives
	// every leaf rank 0, so no stagger.
	EmergencySuccessors int `toml:"emergency_successors"`
}

// DefaultScenario is the scenario `canopy sim` runs with no file: 10,000
// nodes for 24 hours.
func DefaultScenario() Scenario {
	return Scenario{
		Version:     ScenarioVersion,
		Name:        "default",
		Seed:        1,
		Nodes:       10_000,
		Hours:       24,
		SampleEvery: Duration{5 * time.Minute},
		Churn: Churn{
			Session:       dist.Spec{Kind: "weibull", K: 0.34, Lambda: 612},
			Offline:       dist.Spec{Kind: "exponential", Rate: 1.0 / 2880},
			Start:         "steady",
			ArrivalWindow: Duration{time.Hour},
			History:       5,
			CrashShare:    0.5,
		},
		// The Gia capacity mix (1×…10000×: 20%, 45%, 30%, 4.9%, 0.1%, from
		// Saroiu 2002, docs/field-numbers.md) with 1× read as a 32 KB/s uplink.
		Capacity: []Class{
			{Share: 0.20, Up: 32e3, Down: 256e3, Headroom: 0.3},
			{Share: 0.45, Up: 320e3, Down: 2.5e6, Headroom: 0.5},
			{Share: 0.30, Up: 3.2e6, Down: 25e6, Headroom: 0.6},
			{Share: 0.049, Up: 32e6, Down: 100e6, Headroom: 0.8},
			{Share: 0.001, Up: 320e6, Down: 1e9, Headroom: 0.9},
		},
		// The one population mix of package nat: 27% reachable, as the
		// ~73% "LowID" share of one eD2k server suggests, and ~13% CGNAT
		// (IMC 2016, non-cellular); nat.Population gives the reasoning.
		NAT:     defaultNAT(),
		Files:   Files{Catalog: 200_000, PerNode: 40, FreeRiders: 0.25, ZipfS: 0.9},
		Queries: Queries{PerHour: 1, DownloadShare: 0.3, FileSize: 8 << 20},
		Network: Network{
			Choice:     choice.DefaultParams(),
			Routing:    routing.DefaultParams(),
			LeafSlots:  promotion.DefaultLeafSlots,
			PeerView:   routing.DefaultPeerView,
			Candidates: choice.DefaultMaxCandidates,

			PeerViewRefresh: Duration{routing.DefaultViewRefresh},
			PeerViewRotate:  routing.DefaultViewRotate,
			PeerInbound:     routing.DefaultMaxInbound,
			Evaluate:        Duration{10 * time.Minute},
			DetectDead:      Duration{60 * time.Second},
			RetryAttach:     Duration{30 * time.Second},
			HopLatency:      dist.Spec{Kind: "lognormal", Mu: 3.2, Sigma: 0.5}, // median ≈ 25 ms
			NeverConsent:    0.1,
		},
		Policy: promotion.DefaultParams(),
	}
}

// LoadScenario reads a scenario file over the defaults: fields the file does
// not name keep their default values. Unknown keys are an error, so a typo
// does not silently run the default.
func LoadScenario(path string) (Scenario, error) {
	s := DefaultScenario()
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	md, err := toml.Decode(string(b), &s)
	if err != nil {
		return s, fmt.Errorf("%w: scenario %s: %w", ErrScenario, path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return s, fmt.Errorf("%w: scenario %s: unknown keys %v", ErrScenario, path, und)
	}
	if s.Version != ScenarioVersion {
		return s, fmt.Errorf("%w: scenario %s: version %d, this canopy reads version %d", ErrScenario, path, s.Version, ScenarioVersion)
	}
	return s, nil
}

// Validate checks a scenario for values that would make the run
// meaningless. It reports every one, joined, each wrapping ErrScenario.
func (s *Scenario) Validate() error {
	var errs []error
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrScenario}, a...)...))
		}
	}
	check(s.Nodes > 0 && s.Nodes < 1<<31, "nodes must be between 1 and 2^31")
	check(s.Hours > 0 && s.Hours <= 24*30, "hours must be in (0, 720]")
	check(s.SampleEvery.Duration > 0, "sample_every must be positive")
	check(s.Churn.History >= 0 && s.Churn.History < 1000, "churn.history must be in [0, 1000)")
	check(s.Churn.Start == "steady" || s.Churn.Start == "empty", "churn.start must be \"steady\" or \"empty\"")
	check(len(s.Capacity) > 0, "at least one capacity class")
	check(len(s.NAT) > 0, "at least one NAT kind")
	for _, n := range s.NAT {
		_, err := nat.ParseKind(n.Kind)
		check(err == nil, "unknown NAT kind %q", n.Kind)
		check(n.Mapped >= 0 && n.Mapped <= 1, "nat %s: mapped must be in [0,1]", n.Kind)
	}
	check(s.Files.Catalog > 0, "files.catalog must be positive")
	check(s.Files.PerNode >= 0, "files.per_node must not be negative")
	check(s.Files.FreeRiders >= 0 && s.Files.FreeRiders <= 1, "files.free_riders must be in [0,1]")
	check(s.Queries.PerHour >= 0, "queries.per_hour must not be negative")
	check(s.Network.LeafSlots > 0, "network.leaf_slots must be positive")
	check(s.Network.PeerView > 0, "network.peer_view must be positive")
	check(s.Network.PeerViewRefresh.Duration > 0, "network.peer_view_refresh must be positive")
	check(s.Network.PeerViewRotate >= 0 && s.Network.PeerViewRotate <= s.Network.PeerView, "network.peer_view_rotate must be in [0, peer_view]")
	check(s.Network.PeerInbound >= 0, "network.peer_inbound must not be negative")
	check(s.Network.Candidates > 0, "network.candidates must be positive")
	check(s.Network.Evaluate.Duration > 0, "network.evaluate must be positive")
	check(s.Network.Choice.K > 0 && s.Network.Choice.K <= maxK, "network.choice.k must be in [1,%d]", maxK)
	check(s.Network.ViewRefresh.Duration >= 0, "network.view_refresh must not be negative")
	check(s.Network.DetectDead.Duration >= 0, "network.detect_dead must not be negative")
	check(s.Network.EmergencySuccessors >= 0 && s.Network.EmergencySuccessors <= 64, "network.emergency_successors must be in [0,64]")
	check(s.CapacityAssign == "" || s.CapacityAssign == "draw" || s.CapacityAssign == "stratified", "capacity_assign must be \"draw\" or \"stratified\"")
	check(s.Files.Layout == "" || s.Files.Layout == "zipf" || s.Files.Layout == "one-each", "files.layout must be \"zipf\" or \"one-each\"")
	for i, e := range s.Events {
		if err := e.validate(s.Hours); err != nil {
			errs = append(errs, fmt.Errorf("%w: events[%d]: %w", ErrScenario, i, err))
		}
	}
	for name, sp := range map[string]dist.Spec{"churn.session": s.Churn.Session, "churn.offline": s.Churn.Offline, "network.hop_latency": s.Network.HopLatency} {
		if err := sp.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %w", ErrScenario, name, err))
		}
	}
	if err := s.Policy.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%w: policy: %w", ErrScenario, err))
	}
	return errors.Join(errs...)
}
