// Package leaf is the leaf role: it attaches to k supernodes over authenticated
// control links, uploads the index of its library to them, searches the network
// through them, and moves files leaf to leaf with the transfer engine, using the
// supernodes to relay the WebRTC signalling.
package leaf

import (
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/choice"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/library"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/transfer"
	"github.com/canopy-p2p/canopy/wire"
)

// Defaults for the Config fields left zero. DefaultConfig returns a Config
// with all of them set.
const (
	// DefaultAttach is how many supernodes a leaf keeps links to; the
	// value, and why, is the choice rule's (choice.DefaultK), which the
	// simulator reads too.
	DefaultAttach = choice.DefaultK
	// DefaultIdleTimeout closes a supernode link on which nothing arrived
	// for this long: a supernode pings at a third of it, so three pings in
	// a row must go missing.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultRetryBackoff is the first wait before re-dialling a supernode
	// that failed: short enough to ride out a restart, long enough not to
	// hammer a supernode that refuses.
	DefaultRetryBackoff = time.Second
	// DefaultMaxBackoff caps the doubling of RetryBackoff, so that a
	// supernode back after a long outage is found again within a minute.
	DefaultMaxBackoff = time.Minute
	// DefaultHandoverGrace is how long a leaf keeps a supernode that hands it
	// over while it attaches elsewhere: a few round trips of the attach.
	DefaultHandoverGrace = 5 * time.Second
	// DefaultSoftware is reported to supernodes when the program embedding
	// the leaf names no version.
	DefaultSoftware = "canopy"
)

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
	// Attach is how many supernodes the leaf keeps links to. Zero or
	// negative: DefaultAttach.
	Attach int
	// MaxCandidates bounds the supernodes the leaf keeps as candidates to
	// attach to (seeds, which are never dropped, count; successors do not);
	// when a new one is learned and the set is full, one is evicted (see
	// evict). It also bounds how many dials must fail before the leaf counts
	// as orphaned. Default DefaultMaxCandidates.
	MaxCandidates int
	// Transfer configures downloads and uploads; its Identity and Signal
	// are filled by the leaf, and its Source, when nil, with Library (a
	// node that decides per peer passes its own transfer.PeerSource).
	Transfer transfer.Config
	// IdleTimeout closes a supernode link on which nothing arrived for this
	// long; pings go out at a third of it. Zero or negative:
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// RetryBackoff is the first wait before re-dialling a supernode that failed;
	// it doubles up to MaxBackoff. Zero or negative: DefaultRetryBackoff and
	// DefaultMaxBackoff.
	RetryBackoff, MaxBackoff time.Duration
	// Control is the node's own control address, for the supernodes'
	// reachability dial-backs (RequestDialBack). Empty: no dial-backs.
	Control string
	// Candidate tells the supernodes that this node may become a supernode
	// (its user's consent is auto or always), so that they may name it as a
	// successor for the emergency election.
	Candidate bool
	// Choice is the supernode choice rule. Zero: choice.DefaultParams. Its K
	// is always set to Attach.
	Choice choice.Params
	// HandoverGrace is how long a leaf keeps the link to a supernode that is
	// handing it over while it holds at least one other link but fewer than
	// Attach. Zero or negative: DefaultHandoverGrace.
	HandoverGrace time.Duration
	// OnDialBack, when set, receives the supernodes' dial-back results.
	// Called from a link's reader goroutine; must not block.
	OnDialBack func(from identity.NodeID, res wire.DialBackResult)
	// Software is reported to supernodes. Empty: DefaultSoftware.
	Software string
	// People, when set, receives the people protocol's messages (contact
	// requests, presence, person-to-person messages) and hears of
	// attachment changes. Nil: they are dropped.
	People People
	// OnSupernodes, when set, is called with the supernodes the leaf learned of
	// (to persist a host cache). Called from the leaf's goroutines; must not block.
	OnSupernodes func([]Peer)
	// Logger may be nil: no logging.
	Logger *zap.Logger
}

// DefaultConfig returns a Config with every default set. Creds, which has
// no default, must still be set; Seeds, Library, Control and the callbacks
// are optional.
func DefaultConfig() Config {
	ch := choice.DefaultParams()
	ch.K = DefaultAttach
	return Config{
		Attach:        DefaultAttach,
		MaxCandidates: DefaultMaxCandidates,
		IdleTimeout:   DefaultIdleTimeout,
		RetryBackoff:  DefaultRetryBackoff,
		MaxBackoff:    DefaultMaxBackoff,
		Choice:        ch,
		HandoverGrace: DefaultHandoverGrace,
		Software:      DefaultSoftware,
	}
}

// withDefaults returns c with its zero fields set to their defaults,
// Choice.K set to Attach, and a nil Logger replaced by one that discards.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Attach <= 0 {
		c.Attach = d.Attach
	}
	if c.MaxCandidates <= 0 {
		c.MaxCandidates = d.MaxCandidates
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = d.RetryBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = d.MaxBackoff
	}
	if c.Choice == (choice.Params{}) {
		c.Choice = d.Choice
	}
	c.Choice.K = c.Attach
	if c.HandoverGrace <= 0 {
		c.HandoverGrace = d.HandoverGrace
	}
	if c.Software == "" {
		c.Software = d.Software
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Validate reports every field of c (after withDefaults) that the leaf
// cannot run with, joined, each wrapping ErrConfig.
func (c Config) Validate() error {
	var errs []error
	if c.Creds == nil {
		errs = append(errs, fmt.Errorf("%w: Creds must be set", ErrConfig))
	}
	return errors.Join(errs...)
}
