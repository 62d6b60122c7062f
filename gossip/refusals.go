package gossip

import (
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/internal/loglimit"
)

// Refusals counts what the ring refused, by reason, since it started. It is a
// snapshot: read it with Ring.Refusals.
type Refusals struct {
	// MetaInvalid counts alive messages whose metadata did not decode or
	// failed validation (including unsigned version-1 metadata).
	MetaInvalid uint64
	// MetaSignature counts metadata whose signature did not verify.
	MetaSignature uint64
	// MetaName counts members whose memberlist name is not the node ID
	// derived from the key in their metadata.
	MetaName uint64
	// MetaAddr counts alive messages whose gossip address differs from
	// the signed one.
	MetaAddr uint64
	// MetaStale counts metadata older than the newest accepted for the
	// same node (a replay), or as old but different.
	MetaStale uint64
	// Unverified counts verifications that failed: the node did not answer
	// at its control address with its key.
	Unverified uint64
	// VerifyQueueFull counts background verifications not queued because
	// the queue was full; they are retried on the member's next alive.
	VerifyQueueFull uint64
	// PacketMalformed counts packets too short or of an unknown version.
	PacketMalformed uint64
	// PacketClock counts packets whose signed time was outside ClockSkew.
	PacketClock uint64
	// PacketUnknown counts packets from a sender whose key no verification
	// has confirmed.
	PacketUnknown uint64
	// PacketSignature counts packets whose signature did not verify.
	PacketSignature uint64
	// PacketReplay counts packets already received.
	PacketReplay uint64
	// StreamHandshake counts incoming or outgoing streams whose TLS
	// handshake or metadata exchange failed.
	StreamHandshake uint64
	// StreamMeta counts streams whose peer sent metadata that did not
	// decode or was not signed by the key it proved in TLS.
	StreamMeta uint64
	// StreamUnverified counts streams refused because their peer failed
	// verification.
	StreamUnverified uint64
	// StreamBusy counts incoming streams closed because MaxPendingStreams
	// were already in their handshake.
	StreamBusy uint64
}

// reason indexes refusalCounters.
type reason int

const (
	reasonMetaInvalid reason = iota
	reasonMetaSignature
	reasonMetaName
	reasonMetaAddr
	reasonMetaStale
	reasonUnverified
	reasonVerifyQueueFull
	reasonPacketMalformed
	reasonPacketClock
	reasonPacketUnknown
	reasonPacketSignature
	reasonPacketReplay
	reasonStreamHandshake
	reasonStreamMeta
	reasonStreamUnverified
	reasonStreamBusy
	numReasons
)

var reasonNames = [numReasons]string{
	"metadata invalid", "metadata signature bad", "name does not match key",
	"gossip address does not match metadata", "metadata stale", "verification failed",
	"verification queue full", "packet malformed", "packet time outside clock skew",
	"packet from unverified sender", "packet signature bad", "packet replayed",
	"stream handshake failed", "stream metadata bad", "stream peer unverified",
	"too many pending streams",
}

func (r reason) String() string { return reasonNames[r] }

// refusalLogEvery is how often one reason may be logged. Refusals come at
// the rate a stranger sends packets; one line per reason per 10 s keeps the
// log readable under a flood and still shows that it is going on.
const refusalLogEvery = 10 * time.Second

// refusalCounters counts refusals and logs them, at most one line per
// reason per refusalLogEvery, saying how many were not logged since.
type refusalCounters struct {
	n     [numReasons]atomic.Uint64
	log   *zap.Logger
	lines loglimit.Limiter[reason]
}

func newRefusalCounters(log *zap.Logger) *refusalCounters {
	return &refusalCounters{log: log, lines: loglimit.Limiter[reason]{Every: refusalLogEvery}}
}

// refuse counts one refusal for why and logs it unless that reason was
// logged within refusalLogEvery. fields must be bounded (names, addresses,
// short errors), never a payload.
func (c *refusalCounters) refuse(why reason, fields ...zap.Field) {
	c.n[why].Add(1)
	ok, skipped := c.lines.Allow(why, time.Now())
	if !ok {
		return
	}
	lvl := zap.WarnLevel
	if why == reasonMetaStale {
		// Also the normal fate of an alive message that was overtaken
		// by a newer one on its way (a push/pull from a member that has
		// not heard of an update yet), which memberlist would drop by
		// incarnation anyway.
		lvl = zap.DebugLevel
	}
	c.log.Log(lvl, "refused: "+why.String(), append(fields, zap.Uint64("unlogged_since_last", skipped))...)
}

// Snapshot returns the counts.
func (c *refusalCounters) Snapshot() Refusals {
	g := func(r reason) uint64 { return c.n[r].Load() }
	return Refusals{
		MetaInvalid:      g(reasonMetaInvalid),
		MetaSignature:    g(reasonMetaSignature),
		MetaName:         g(reasonMetaName),
		MetaAddr:         g(reasonMetaAddr),
		MetaStale:        g(reasonMetaStale),
		Unverified:       g(reasonUnverified),
		VerifyQueueFull:  g(reasonVerifyQueueFull),
		PacketMalformed:  g(reasonPacketMalformed),
		PacketClock:      g(reasonPacketClock),
		PacketUnknown:    g(reasonPacketUnknown),
		PacketSignature:  g(reasonPacketSignature),
		PacketReplay:     g(reasonPacketReplay),
		StreamHandshake:  g(reasonStreamHandshake),
		StreamMeta:       g(reasonStreamMeta),
		StreamUnverified: g(reasonStreamUnverified),
		StreamBusy:       g(reasonStreamBusy),
	}
}
