// Package supernode is the supernode role: leaf slots, the partial index of the
// leaves' shared files, query answering and routing across the ring, and the
// relay of WebRTC signalling between leaves.
package supernode

import (
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/index"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/promotion"
	"github.com/canopy-p2p/canopy/routing"
	"github.com/canopy-p2p/canopy/wire"
)

// Config configures a supernode.
type Config struct {
	// Creds are the node's TLS credentials (and so its identity). Must not be nil.
	Creds *link.Credentials
	// Control is the advertised host:port of the node's control listener, which
	// the node owns and feeds accepted links to Supernode.AcceptLeaf/AcceptPeer.
	Control string
	// GossipAddr is the host:port memberlist binds (port 0: any free port).
	GossipAddr string
	// GossipProfile is "lan" (default) or "local" (fast timers for loopback tests).
	GossipProfile string
	// MaxLeaves is the number of leaf slots (DefaultMaxLeaves).
	MaxLeaves int
	// Index bounds the partial index (files per leaf, leaves).
	Index index.Limits
	// Routing is the query routing rule's parameters.
	Routing routing.Params
	// View bounds the ring members the supernode keeps control links to
	// (routing.DefaultViewParams; zero fields mean their defaults).
	View routing.ViewParams
	// QueryRate and QueryBurst limit the queries one leaf may send.
	QueryRate  rate.Limit
	QueryBurst int
	// SignalRate and SignalBurst limit the signals one leaf may send. A
	// transfer takes two or three; the burst covers a download that contacts
	// several sources at once.
	SignalRate  rate.Limit
	SignalBurst int
	// SeenTTL is how long a query ID is remembered, for de-duplication and to
	// route its hits back. It must exceed the longest search deadline.
	SeenTTL time.Duration
	// IdleTimeout closes a link on which nothing arrived for this long (links
	// send pings at a third of it).
	IdleTimeout time.Duration
	// Policy is the promotion policy whose Needed rule the guidance sent to
	// leaves applies. Default promotion.DefaultParams.
	Policy promotion.Params
	// GuidanceInterval is the longest time between two guidance messages to
	// the leaves (they also go out whenever the guidance changes). Default 30 s.
	GuidanceInterval time.Duration
	// DialBackTimeout bounds one reachability dial-back. Default 5 s.
	DialBackTimeout time.Duration
	// DialBackInterval is the rate at which one leaf may ask for dial-backs
	// (burst 3). Default 1 min.
	DialBackInterval time.Duration
	// ICEServers, when set, returns the STUN/TURN services this supernode
	// runs and fresh TURN credentials for one leaf; they are sent to every
	// leaf when it attaches and every ICERefresh after (default 20 min, well
	// inside the credentials' lifetime).
	ICEServers func(leaf identity.NodeID, now time.Time) wire.ICEServers
	ICERefresh time.Duration
	// Software is reported to peers, e.g. "canopy/0.1.0".
	Software string
	// Logger may be nil (no logging).
	Logger *zap.Logger
}

// DefaultMaxLeaves is the default number of leaf slots: LimeWire kept 30–45
// leaves per ultrapeer and gtk-gnutella up to 300; Canopy leaves cost little
// more than their index entries. The simulator's leaf slots default to the
// same value, through promotion.DefaultLeafSlots, as it cannot import this
// package.
const DefaultMaxLeaves = promotion.DefaultLeafSlots

// DefaultConfig returns the defaults; Creds and Control must still be set.
func DefaultConfig() Config {
	return Config{
		GossipAddr:    "0.0.0.0:0",
		GossipProfile: "lan",
		MaxLeaves:     DefaultMaxLeaves,
		Index:         index.DefaultLimits(),
		Routing:       routing.DefaultParams(),
		View:          routing.DefaultViewParams(),
		QueryRate:     5,
		QueryBurst:    20,
		SignalRate:    20,
		SignalBurst:   60,
		SeenTTL:       2 * time.Minute,
		IdleTimeout:   60 * time.Second,
		Policy:        promotion.DefaultParams(),

		GuidanceInterval: 30 * time.Second,
		DialBackTimeout:  5 * time.Second,
		DialBackInterval: time.Minute,
		Software:         "canopy",
	}
}

func (c *Config) fill() {
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
	c.View = c.View.Norm()
	if c.QueryRate <= 0 {
		c.QueryRate, c.QueryBurst = d.QueryRate, d.QueryBurst
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
		c.ICERefresh = 20 * time.Minute
	}
	if c.DialBackInterval <= 0 {
		c.DialBackInterval = d.DialBackInterval
	}
	if c.Software == "" {
		c.Software = d.Software
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}
