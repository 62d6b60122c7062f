// Package supernode is the supernode role: leaf slots, the partial index of the
// leaves' shared files, query answering and routing across the ring, and the
// relay of WebRTC signalling between leaves.
package supernode

import (
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/canopy-p2p/canopy/gossip"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/index"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/promotion"
	"github.com/canopy-p2p/canopy/routing"
	"github.com/canopy-p2p/canopy/wire"
)

// Defaults for the Config fields left zero. DefaultConfig returns a Config
// with all of them set.
const (
	// DefaultGossipAddr binds memberlist on all interfaces, on any free
	// port: the node normally passes the one next to its control port.
	DefaultGossipAddr = "0.0.0.0:0"
	// DefaultGossipProfile is memberlist's LAN timing, which suits
	// supernodes on the Internet (gossip.ProfileLAN).
	DefaultGossipProfile = string(gossip.ProfileLAN)
	// DefaultMaxLeaves is the number of leaf slots: 200. LimeWire kept 30–45
	// leaves per ultrapeer and gtk-gnutella up to 300
	// (docs/field-numbers.md); Canopy leaves cost little more than their
	// index entries. The value lives in promotion (DefaultLeafSlots), which
	// the simulator can import and this package it cannot.
	DefaultMaxLeaves = promotion.DefaultLeafSlots
	// DefaultQueryRate and DefaultQueryBurst limit the queries one leaf may
	// send: a person searches far less than 5 times a second, and the burst
	// covers a program that refines a search a few times at once.
	DefaultQueryRate  rate.Limit = 5
	DefaultQueryBurst            = 20
	// DefaultRefusalRate bounds the refusals one leaf gets at full speed,
	// per second (burst the same): "slow down" answers to its queries over
	// the rate, and its signals over the rate, which are dropped. An honest
	// program that searches 20 times a second over a rate of 5 gets every
	// answer. A leaf faster still is flooding: its link is then read no
	// faster than this, so that its excess costs the supernode no more
	// than this many messages a second, and no query of it is ever dropped
	// without a word. Before this bound a leaf flooding signals had the
	// supernode drop half a million a second, and an honest leaf's search
	// p99 rose 67-fold (BenchmarkFloodIsolation/signals).
	DefaultRefusalRate = 20
	// DefaultIndexRate and DefaultIndexBurst limit how fast one leaf's
	// index changes are applied, in files per second (a full upload counts
	// the files it replaces as well): a 50,000-file library, the most one
	// leaf may share, uploads in 10 s, a typical one of 2,000 at once. Above
	// the rate the leaf's link is read more slowly, which its SendWait
	// follows; one leaf cannot keep the index busy for the others. Applying
	// and later removing a file costs about 3.6 µs (decoding, tokenizing,
	// inserting, reclaiming), so the rate is under 2% of a core per leaf.
	// At 10,000 (3.6%) a leaf flooding updates at its rate raised an honest
	// leaf's search p99 2.2-2.4 times in two of three runs
	// (BenchmarkFloodIsolation/index, 2 cores, the flooder and both leaves
	// in the supernode's process); at 5,000, 1.3-1.7 times. The burst is
	// two full updates.
	DefaultIndexRate  rate.Limit = 5_000
	DefaultIndexBurst            = 2000
	// DefaultSignalRate and DefaultSignalBurst limit the signals one leaf
	// may send: a transfer takes two or three, and the burst covers a
	// download that contacts several sources at once.
	DefaultSignalRate  rate.Limit = 20
	DefaultSignalBurst            = 60
	// DefaultSeenTTL is how long a query ID is remembered: longer than the
	// longest search deadline the local API allows.
	DefaultSeenTTL = 2 * time.Minute
	// DefaultIdleTimeout closes a link on which nothing arrived for this
	// long; links ping at a third of it, so three pings must go missing.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultGuidanceInterval is the longest time between two guidance
	// messages: leaves learn of a change in the ring's need within it even
	// when the guidance did not change.
	DefaultGuidanceInterval = 30 * time.Second
	// DefaultDialBackTimeout bounds one reachability dial-back: a TCP and
	// TLS handshake across the Internet takes well under it.
	DefaultDialBackTimeout = 5 * time.Second
	// DefaultDialBackInterval is the rate at which one leaf may ask for
	// dial-backs, so that a leaf cannot make supernodes scan for it.
	DefaultDialBackInterval = time.Minute
	// DefaultICERefresh is how often a leaf gets fresh ICE servers and TURN
	// credentials: well inside the credentials' lifetime.
	DefaultICERefresh = 20 * time.Minute
	// DefaultSoftware is reported to peers when the program embedding the
	// supernode names no version.
	DefaultSoftware = "canopy"
	// DefaultMaxPeerLinks bounds the links one ring member may have dialled
	// to this supernode at once: 4, its view link, its signalling link and
	// two being retired (the loser of a simultaneous dial, a view link
	// replaced within the minute a retired link drains). Without it one
	// member could hold any number, each new link retiring the one before
	// for a minute; with it, and the view's MaxInbound members, links
	// dialled by others stay within 4 × 64.
	DefaultMaxPeerLinks = 4
)

// Config configures a supernode.
type Config struct {
	// Creds are the node's TLS credentials (and so its identity). Must not be nil.
	Creds *link.Credentials
	// Control is the advertised host:port of the node's control listener, which
	// the node owns and feeds accepted links to Supernode.AcceptLeaf/AcceptPeer.
	Control string
	// GossipAddr is the host:port memberlist binds (port 0: any free port).
	// Empty: DefaultGossipAddr.
	GossipAddr string
	// GossipAdvertise is the host:port other members reach memberlist at,
	// when it is not the control host and the bound port: a home router's
	// port mapping may forward another public port to the gossip port.
	// memberlist cannot change it while it runs, so it is fixed for the
	// supernode's life (the control address is not: SetControl). Empty:
	// Control's host and the bound gossip port.
	GossipAdvertise string
	// GossipProfile is "lan" or "local" (fast timers for loopback tests).
	// Empty: DefaultGossipProfile.
	GossipProfile string
	// MaxLeaves is the number of leaf slots. Zero or negative:
	// DefaultMaxLeaves.
	MaxLeaves int
	// Index bounds the partial index (files per leaf, leaves). Zero:
	// index.DefaultLimits.
	Index index.Limits
	// Routing is the query routing rule's parameters. Zero:
	// routing.DefaultParams.
	Routing routing.Params
	// View bounds the ring members the supernode keeps control links to.
	// Zero fields: routing.DefaultViewParams.
	View routing.ViewParams
	// QueryRate and QueryBurst limit the queries one leaf may send. A rate
	// of zero or less: DefaultQueryRate and DefaultQueryBurst.
	QueryRate  rate.Limit
	QueryBurst int
	// IndexRate and IndexBurst limit how fast one leaf's index changes are
	// applied, in files per second. A rate of zero or less:
	// DefaultIndexRate and DefaultIndexBurst.
	IndexRate  rate.Limit
	IndexBurst int
	// SignalRate and SignalBurst limit the signals one leaf may send. A
	// transfer takes two or three; the burst covers a download that contacts
	// several sources at once. A rate of zero or less: DefaultSignalRate and
	// DefaultSignalBurst.
	SignalRate  rate.Limit
	SignalBurst int
	// SeenTTL is how long a query ID is remembered, for de-duplication and to
	// route its hits back. It must exceed the longest search deadline.
	// Zero or negative: DefaultSeenTTL.
	SeenTTL time.Duration
	// IdleTimeout closes a link on which nothing arrived for this long (links
	// send pings at a third of it). Zero or negative: DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Policy is the promotion policy whose Needed rule the guidance sent to
	// leaves applies. Zero: promotion.DefaultParams.
	Policy promotion.Params
	// GuidanceInterval is the longest time between two guidance messages to
	// the leaves (they also go out whenever the guidance changes). Zero or
	// negative: DefaultGuidanceInterval.
	GuidanceInterval time.Duration
	// DialBackTimeout bounds one reachability dial-back. Zero or negative:
	// DefaultDialBackTimeout.
	DialBackTimeout time.Duration
	// DialBackInterval is the rate at which one leaf may ask for dial-backs
	// (burst 3). Zero or negative: DefaultDialBackInterval.
	DialBackInterval time.Duration
	// ICEServers, when set, returns the STUN/TURN services this supernode
	// runs and fresh TURN credentials for one leaf; they are sent to every
	// leaf when it attaches and every ICERefresh after (zero or negative:
	// DefaultICERefresh). Nil: the supernode hands out no ICE servers.
	ICEServers func(leaf identity.NodeID, now time.Time) wire.ICEServers
	ICERefresh time.Duration
	// Relay, when set, is told which leaves are attached, so that the TURN
	// credentials ICEServers hands out work only while their leaf is
	// attached and the relay frees a leaf's allocations when it leaves.
	// Nil: nothing is told (no relay, or one that needs no attachments).
	Relay RelayLeaves
	// Software is reported to peers, e.g. "canopy/0.1.0". Empty:
	// DefaultSoftware.
	Software string
	// MaxPeerLinks bounds the links one ring member may have dialled to
	// this supernode at once. Zero or negative: DefaultMaxPeerLinks.
	MaxPeerLinks int
	// Refusals counts and logs the links the supernode refuses. The node
	// passes the one its listener uses, so that the counts survive a
	// demotion. Nil: the supernode keeps its own, logging to Logger.
	Refusals *link.Refusals
	// Logger may be nil (no logging).
	Logger *zap.Logger
}

// RelayLeaves is what the supernode tells its TURN relay about its leaves.
// Both are called under the supernode's lock, in the order the leaf slots
// change, so they must be quick and must not call back into the supernode.
type RelayLeaves interface {
	// Attach is called when a leaf takes a slot, before its first ICE
	// servers are issued.
	Attach(leaf identity.NodeID)
	// Detach is called when the leaf's slot is gone (not when its link is
	// replaced by a newer one from the same leaf).
	Detach(leaf identity.NodeID)
}

// DefaultConfig returns a Config with every default set. Creds and
// Control, which have no default, must still be set; ICEServers is
// optional.
func DefaultConfig() Config {
	return Config{
		GossipAddr:    DefaultGossipAddr,
		GossipProfile: DefaultGossipProfile,
		MaxLeaves:     DefaultMaxLeaves,
		Index:         index.DefaultLimits(),
		Routing:       routing.DefaultParams(),
		View:          routing.DefaultViewParams(),
		QueryRate:     DefaultQueryRate,
		QueryBurst:    DefaultQueryBurst,
		IndexRate:     DefaultIndexRate,
		IndexBurst:    DefaultIndexBurst,
		SignalRate:    DefaultSignalRate,
		SignalBurst:   DefaultSignalBurst,
		SeenTTL:       DefaultSeenTTL,
		IdleTimeout:   DefaultIdleTimeout,
		Policy:        promotion.DefaultParams(),

		GuidanceInterval: DefaultGuidanceInterval,
		DialBackTimeout:  DefaultDialBackTimeout,
		DialBackInterval: DefaultDialBackInterval,
		ICERefresh:       DefaultICERefresh,
		Software:         DefaultSoftware,
		MaxPeerLinks:     DefaultMaxPeerLinks,
	}
}

// withDefaults returns c with its zero fields set to their defaults and a
// nil Logger replaced by one that discards.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.GossipAddr == "" {
		c.GossipAddr = d.GossipAddr
	}
	if c.GossipProfile == "" {
		c.GossipProfile = d.GossipProfile
	}
	if c.MaxLeaves <= 0 {
		c.MaxLeaves = d.MaxLeaves
	}
	if c.Index == (index.Limits{}) {
		c.Index = d.Index
	}
	if c.Routing == (routing.Params{}) {
		c.Routing = d.Routing
	}
	c.View = c.View.WithDefaults()
	if c.QueryRate <= 0 {
		c.QueryRate, c.QueryBurst = d.QueryRate, d.QueryBurst
	}
	if c.IndexRate <= 0 {
		c.IndexRate, c.IndexBurst = d.IndexRate, d.IndexBurst
	}
	if c.SignalRate <= 0 {
		c.SignalRate, c.SignalBurst = d.SignalRate, d.SignalBurst
	}
	if c.SeenTTL <= 0 {
		c.SeenTTL = d.SeenTTL
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.Policy == (promotion.Params{}) {
		c.Policy = d.Policy
	}
	if c.GuidanceInterval <= 0 {
		c.GuidanceInterval = d.GuidanceInterval
	}
	if c.DialBackTimeout <= 0 {
		c.DialBackTimeout = d.DialBackTimeout
	}
	if c.ICERefresh <= 0 {
		c.ICERefresh = d.ICERefresh
	}
	if c.DialBackInterval <= 0 {
		c.DialBackInterval = d.DialBackInterval
	}
	if c.Software == "" {
		c.Software = d.Software
	}
	if c.MaxPeerLinks <= 0 {
		c.MaxPeerLinks = d.MaxPeerLinks
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Validate reports every field of c (after withDefaults) that the
// supernode cannot run with, joined, each wrapping ErrConfig.
func (c Config) Validate() error {
	var errs []error
	if c.Creds == nil {
		errs = append(errs, fmt.Errorf("%w: Creds must be set", ErrConfig))
	}
	if c.Control == "" {
		errs = append(errs, fmt.Errorf("%w: Control must be set", ErrConfig))
	}
	if c.GossipAdvertise != "" {
		if _, p, err := splitHostPort(c.GossipAdvertise); err != nil || p <= 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("%w: GossipAdvertise %q is not host:port", ErrConfig, c.GossipAdvertise))
		}
	}
	// A limiter with a burst below one never allows anything.
	if c.QueryBurst < 1 {
		errs = append(errs, fmt.Errorf("%w: QueryBurst %d must be at least 1", ErrConfig, c.QueryBurst))
	}
	if c.IndexBurst < 1 {
		errs = append(errs, fmt.Errorf("%w: IndexBurst %d must be at least 1", ErrConfig, c.IndexBurst))
	}
	return errors.Join(errs...)
}
