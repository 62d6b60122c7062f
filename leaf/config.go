// Package leaf is the leaf role: it attaches to k supernodes over authenticated
// control links, uploads the index of its library to them, searches the network
// through them, and moves files leaf to leaf with the transfer engine, using the
// supernodes to relay the WebRTC signalling.
package leaf

import (
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/choice"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/library"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/transfer"
	"github.com/canopy-p2p/canopy/wire"
)

// DefaultAttach is Config.Attach's default: LimeWire's leaves kept 3
// ultrapeers (gtk-gnutella's 4), enough to survive two supernode failures
// without losing search while each extra link costs a supernode slot and an
// index upload.
const DefaultAttach = 3

// DefaultMaxCandidates is Config.MaxCandidates' default, shared with the
// simulator through package choice (which it can import, unlike this one).
const DefaultMaxCandidates = choice.DefaultMaxCandidates

// Config configures a leaf.
type Config struct {
	// Creds are the node's TLS credentials. Must not be nil.
	Creds *link.Credentials
	// Library is what the leaf shares. May be nil: the leaf then shares nothing.
	Library *library.Library
	// Seeds are control addresses (host:port) of supernodes to start from.
	Seeds []string
	// Attach is how many supernodes the leaf keeps links to. Default
	// DefaultAttach.
	Attach int
	// MaxCandidates bounds the supernodes the leaf keeps as candidates to
	// attach to (seeds, which are never dropped, count; successors do not);
	// when a new one is learned and the set is full, one is evicted (see
	// evict). It also bounds how many dials must fail before the leaf counts
	// as orphaned. Default DefaultMaxCandidates.
	MaxCandidates int
	// Transfer configures downloads and uploads; its Identity, Signal and
	// Source are filled by the leaf.
	Transfer transfer.Config
	// IdleTimeout closes a supernode link on which nothing arrived for this
	// long; pings go out at a third of it. Default 60 s.
	IdleTimeout time.Duration
	// RetryBackoff is the first wait before re-dialling a supernode that failed;
	// it doubles up to MaxBackoff. Defaults 1 s and 1 min.
	RetryBackoff, MaxBackoff time.Duration
	// Control is the node's own control address, for the supernodes'
	// reachability dial-backs (RequestDialBack). Empty: no dial-backs.
	Control string
	// Candidate tells the supernodes that this node may become a supernode
	// (its user's consent is auto or always), so that they may name it as a
	// successor for the emergency election.
	Candidate bool
	// Choice is the supernode choice rule. Default choice.DefaultParams with
	// K = Attach.
	Choice choice.Params
	// HandoverGrace is how long a leaf keeps the link to a supernode that is
	// handing it over while it holds at least one other link but fewer than
	// Attach. Default 5 s.
	HandoverGrace time.Duration
	// OnDialBack, when set, receives the supernodes' dial-back results.
	// Called from a link's reader goroutine; must not block.
	OnDialBack func(from identity.NodeID, res wire.DialBackResult)
	// Software is reported to supernodes.
	Software string
	// OnSupernodes, when set, is called with the supernodes the leaf learned of
	// (to persist a host cache). Called from the leaf's goroutines; must not block.
	OnSupernodes func([]Peer)
	// Logger may be nil.
	Logger *zap.Logger
}

func (c *Config) fill() {
	if c.Attach <= 0 {
		c.Attach = DefaultAttach
	}
	if c.MaxCandidates <= 0 {
		c.MaxCandidates = DefaultMaxCandidates
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = time.Minute
	}
	if c.Choice == (choice.Params{}) {
		c.Choice = choice.DefaultParams()
	}
	c.Choice.K = c.Attach
	if c.HandoverGrace <= 0 {
		c.HandoverGrace = 5 * time.Second
	}
	if c.Software == "" {
		c.Software = "canopy"
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}
