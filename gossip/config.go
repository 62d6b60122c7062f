package gossip

import (
	"errors"
	"fmt"
	"time"

	"github.com/canopy-p2p/canopy/identity"
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
)

// ringLabel is memberlist's cluster label. memberlist drops packets and
// streams whose label differs, so a seed address that points at some other
// memberlist cluster (Consul, Serf, Nomad) by mistake cannot merge it into
// the Canopy ring.
const ringLabel = "canopy-ring"

// Config configures a Ring. Start a Config from DefaultConfig.
type Config struct {
	// NodeID is this node's ID. It names the memberlist node and is written
	// into the published Meta. Required.
	NodeID identity.NodeID

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
	// NodeID and Version fields. It is called by Start and by every
	// UpdateMeta, on the caller's goroutine. Required.
	Meta func() Meta

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
// NodeID and Meta, which have no default, must still be set.
func DefaultConfig() Config {
	return Config{
		BindAddr:   DefaultBindAddr,
		EventQueue: DefaultEventQueue,
		Profile:    DefaultProfile,
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
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Validate reports every field of c (after withDefaults) that the ring
// cannot run with, joined, each wrapping ErrConfig.
func (c Config) Validate() error {
	var errs []error
	if c.NodeID.IsZero() {
		errs = append(errs, fmt.Errorf("%w: NodeID is required", ErrConfig))
	}
	if c.Meta == nil {
		errs = append(errs, fmt.Errorf("%w: Meta is required", ErrConfig))
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
// memberlist.Config without delegates or logger.
func (c Config) memberlistConfig() *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	if c.Profile == ProfileLocal {
		mc = memberlist.DefaultLocalConfig()
	}
	mc.Name = c.NodeID.String()
	mc.BindAddr = c.BindAddr
	mc.BindPort = c.BindPort
	mc.AdvertiseAddr = c.AdvertiseAddr
	// memberlist's defaults advertise port 7946 whatever the bind port; it
	// fixes that up itself only for a dynamic (zero) bind port.
	mc.AdvertisePort = c.AdvertisePort
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = c.BindPort
	}
	mc.Label = ringLabel
	return mc
}
