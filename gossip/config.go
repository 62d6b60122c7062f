package gossip

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/canopy-p2p/canopy/link"
	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// Profile selects memberlist's timing: probe and gossip intervals, suspicion
// and timeouts.
type Profile string

const (
	// ProfileLAN is memberlist's DefaultLANConfig: one-second probes and
	// half-second probe timeouts, suited to supernodes on the Internet with
	// reasonable round-trip times. It is the default.
	ProfileLAN Profile = "lan"
	// ProfileLocal is memberlist's DefaultLocalConfig: shorter timeouts and
	// faster gossip, for rings on one host such as tests on loopback.
	ProfileLocal Profile = "local"
)

// Defaults used when the matching Config field is zero.
const (
	// DefaultEventQueue is how many events wait for the Events callback
	// before further events are dropped.
	DefaultEventQueue = 256
	// DefaultTimeout bounds UpdateMeta and Leave when they are given a
	// timeout <= 0, because memberlist would otherwise wait forever for a
	// broadcast that may never go out.
	DefaultTimeout = 2 * time.Second
	// DefaultBindAddr is all IPv4 interfaces, memberlist's own default: a
	// supernode's ring peers may reach it on any of them.
	DefaultBindAddr = "0.0.0.0"
	// DefaultProfile is ProfileLAN, the timing for supernodes on the
	// Internet.
	DefaultProfile = ProfileLAN

	// DefaultVerifyCache is how many (node ID, control address) results of
	// Config.Verify are remembered. It must hold the whole ring, or members
	// would be dialled again and again: one memberlist ring is comfortable
	// up to a few thousand members (docs/architecture.md, "Scale past one
	// ring"), so 4096, about 200 bytes each.
	DefaultVerifyCache = 4096
	// DefaultVerifyWorkers is how many verifications run at once in the
	// background. Each is one TCP and TLS dial; 8 verify a ring of a
	// thousand that a node joins in well under a minute at LAN round trips,
	// without opening hundreds of sockets at once.
	DefaultVerifyWorkers = 8
	// DefaultVerifyQueue is how many members wait for a background
	// verification; beyond it requests are dropped and counted, and
	// retried when the member's next alive message arrives (at the latest
	// with the next push/pull, every 30 s on the LAN profile).
	DefaultVerifyQueue = 256
	// DefaultVerifyTimeout bounds one verification: a TCP and TLS
	// handshake across the Internet takes well under it (the same figure
	// as supernode.DefaultDialBackTimeout).
	DefaultVerifyTimeout = 5 * time.Second
	// DefaultVerifyRetry is how long a failed verification is remembered
	// before the member is dialled again: memberlist's LAN push/pull
	// interval, the cadence at which a member's state comes round anyway.
	DefaultVerifyRetry = 30 * time.Second
	// DefaultClockSkew is how far a signed packet's time may be from this
	// node's clock. It is the replay window for a receiver that has no
	// record of the sender yet (after its own restart); within it, a
	// per-sender filter refuses repeats. Hosts that sync with NTP agree to
	// milliseconds; two minutes tolerates a home computer that syncs weekly
	// and drifts a few seconds a day (Kerberos allows five minutes, RFC
	// 4120 §1.6).
	DefaultClockSkew = 2 * time.Minute
	// DefaultMaxPendingStreams is how many incoming gossip streams may be
	// in their TLS handshake and verification at once; further ones are
	// closed and counted. memberlist itself serves at most 128 push/pulls
	// at once (maxPushPullRequests); half of that is ample for joins.
	DefaultMaxPendingStreams = 64
)

// ringLabel is memberlist's cluster label. memberlist drops packets and
// streams whose label differs, so a seed address that points at some other
// memberlist cluster (Consul, Serf, Nomad) by mistake cannot merge it into
// the Canopy ring.
const ringLabel = "canopy-ring"

// Config configures a Ring. Start a Config from DefaultConfig.
type Config struct {
	// Creds are the node's TLS credentials and so its key: the key signs
	// the published Meta and every gossip packet, gossip streams run over
	// TLS with it, and the node ID derived from it names the memberlist
	// node. Required.
	Creds *link.Credentials

	// BindAddr is the IP address gossip listens on, over UDP and TCP.
	// Empty means DefaultBindAddr, all IPv4 interfaces.
	BindAddr string
	// BindPort is the gossip port. Zero picks a free port; LocalAddr reports
	// the one chosen.
	BindPort int

	// AdvertiseAddr is the IP address other members use to reach this one.
	// Empty means BindAddr when it is a specific address; when BindAddr is
	// unspecified, memberlist picks a private address of this host and fails
	// if there is none, so a public supernode bound to all interfaces must
	// set it.
	AdvertiseAddr string
	// AdvertisePort is the port other members use. Zero means the bound port.
	AdvertisePort int

	// Meta returns the metadata this node publishes. The ring sets its
	// NodeID, Key, Gossip, Issued and Version fields and signs it. It is
	// called by Start and by every UpdateMeta, on the caller's goroutine.
	// Required.
	Meta func() Meta

	// Verify confirms that the node m describes is reachable at m.Control
	// and holds the key of m.NodeID, typically with a TLS dial to
	// m.Control that expects that node ID. It must honour ctx and be safe
	// for concurrent use. The ring lists a member, and accepts its packets
	// and streams, only once Verify has succeeded for its node ID and
	// control address; a joiner's first stream waits for it. Required.
	Verify func(ctx context.Context, m Meta) error
	// VerifyCache is how many verification results are kept. Zero means
	// DefaultVerifyCache.
	VerifyCache int
	// VerifyWorkers is how many background verifications run at once.
	// Zero means DefaultVerifyWorkers.
	VerifyWorkers int
	// VerifyTimeout bounds one call of Verify. Zero means
	// DefaultVerifyTimeout.
	VerifyTimeout time.Duration
	// VerifyRetry is how long a failed verification stands before it is
	// tried again. Zero means DefaultVerifyRetry.
	VerifyRetry time.Duration
	// ClockSkew is how far a signed packet's time may be from this node's
	// clock. Zero means DefaultClockSkew.
	ClockSkew time.Duration
	// MaxPendingStreams bounds incoming streams in their handshake. Zero
	// means DefaultMaxPendingStreams.
	MaxPendingStreams int

	// Events, if not nil, receives membership changes, this node's own
	// included. It is called from one goroutine owned by the ring, never
	// concurrently and in the order memberlist reported the changes. It may
	// block, call Members and the other Ring methods except Shutdown and
	// Close, which wait for it; while it blocks, events queue up to
	// EventQueue and further ones are dropped and counted (see
	// Ring.DroppedEvents). After a drop, Members gives the current state.
	Events func(Event)
	// EventQueue is the capacity of the event queue. Zero means
	// DefaultEventQueue.
	EventQueue int

	// Logger receives the ring's logs and memberlist's, under the names
	// "gossip" and "gossip.memberlist". Nil means no logs.
	Logger *zap.Logger

	// Profile selects memberlist's timing. Empty means DefaultProfile.
	Profile Profile
}

// DefaultConfig returns a Config with every optional field at its default.
// Creds, Meta and Verify, which have no default, must still be set.
func DefaultConfig() Config {
	return Config{
		BindAddr:          DefaultBindAddr,
		EventQueue:        DefaultEventQueue,
		Profile:           DefaultProfile,
		VerifyCache:       DefaultVerifyCache,
		VerifyWorkers:     DefaultVerifyWorkers,
		VerifyTimeout:     DefaultVerifyTimeout,
		VerifyRetry:       DefaultVerifyRetry,
		ClockSkew:         DefaultClockSkew,
		MaxPendingStreams: DefaultMaxPendingStreams,
	}
}

// withDefaults returns c with its zero fields set to their defaults and a
// nil Logger replaced by one that discards.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.BindAddr == "" {
		c.BindAddr = d.BindAddr
	}
	if c.EventQueue == 0 {
		c.EventQueue = d.EventQueue
	}
	if c.Profile == "" {
		c.Profile = d.Profile
	}
	if c.VerifyCache == 0 {
		c.VerifyCache = d.VerifyCache
	}
	if c.VerifyWorkers == 0 {
		c.VerifyWorkers = d.VerifyWorkers
	}
	if c.VerifyTimeout == 0 {
		c.VerifyTimeout = d.VerifyTimeout
	}
	if c.VerifyRetry == 0 {
		c.VerifyRetry = d.VerifyRetry
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = d.ClockSkew
	}
	if c.MaxPendingStreams == 0 {
		c.MaxPendingStreams = d.MaxPendingStreams
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Validate reports every field of c (after withDefaults) that the ring
// cannot run with, joined, each wrapping ErrConfig.
func (c Config) Validate() error {
	var errs []error
	if c.Creds == nil {
		errs = append(errs, fmt.Errorf("%w: Creds is required", ErrConfig))
	}
	if c.Meta == nil {
		errs = append(errs, fmt.Errorf("%w: Meta is required", ErrConfig))
	}
	if c.Verify == nil {
		errs = append(errs, fmt.Errorf("%w: Verify is required", ErrConfig))
	}
	if c.VerifyCache < 1 || c.VerifyWorkers < 1 || c.MaxPendingStreams < 1 {
		errs = append(errs, fmt.Errorf("%w: VerifyCache, VerifyWorkers and MaxPendingStreams must be positive", ErrConfig))
	}
	if c.VerifyTimeout < 0 || c.VerifyRetry < 0 || c.ClockSkew < 0 {
		errs = append(errs, fmt.Errorf("%w: negative VerifyTimeout, VerifyRetry or ClockSkew", ErrConfig))
	}
	if c.BindPort < 0 || c.BindPort > 65535 || c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		errs = append(errs, fmt.Errorf("%w: port out of range", ErrConfig))
	}
	if c.EventQueue < 0 {
		errs = append(errs, fmt.Errorf("%w: negative EventQueue", ErrConfig))
	}
	if c.Profile != ProfileLAN && c.Profile != ProfileLocal {
		errs = append(errs, fmt.Errorf("%w: unknown profile %q", ErrConfig, c.Profile))
	}
	return errors.Join(errs...)
}

// memberlistConfig translates c, after withDefaults and Validate, into a
// memberlist.Config without transport, delegates or logger. boundPort is the
// port the transport bound, which differs from c.BindPort when that is zero.
func (c Config) memberlistConfig(boundPort int) *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	if c.Profile == ProfileLocal {
		mc = memberlist.DefaultLocalConfig()
	}
	mc.Name = c.Creds.ID().ID.String()
	mc.BindAddr = c.BindAddr
	mc.BindPort = boundPort
	mc.AdvertiseAddr = c.AdvertiseAddr
	// memberlist's defaults advertise port 7946 whatever the bind port.
	mc.AdvertisePort = c.AdvertisePort
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = boundPort
	}
	mc.Label = ringLabel
	// Every packet grows by the signed header: memberlist fills packets up
	// to UDPBufferSize (1400 bytes by default, to stay under a 1500-byte
	// path MTU), so it must leave room for the header.
	mc.UDPBufferSize -= packetOverhead
	return mc
}
