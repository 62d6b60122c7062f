package transfer

import (
	"sync/atomic"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/wire"
	"go.uber.org/zap"
)

// Reasons an offer is refused. They are fixed strings, so that what a peer
// sends never reaches a log line or a Close signal unbounded. The ones a
// Close carries back to the offerer are what the offerer's ErrRefused shows.
const (
	reasonNotShared   = "not shared"
	reasonBusy        = "busy"
	reasonPeerBusy    = "busy for this peer"
	reasonPeerPending = "too many pending offers"
	reasonPending     = "too many pending offers in total"
	reasonPeerOffers  = "too many offers"
	reasonOfferCache  = "offer cache full"
	reasonNoTime      = "offer without time"
	reasonStale       = "offer too old"
	reasonFuture      = "offer from the future"
	reasonReplayed    = "offer replayed"
	// reasonBlocked (browse.go): the peer is blocked here.
)

// Refusals counts offers refused, by reason, since the engine started. The
// first group is answered with a Close; the second is dropped silently,
// because the signer of a replayed or stale offer may not be the one who
// sent it, and answering would make this node signal a victim on an
// attacker's behalf.
type Refusals struct {
	// NotShared: no PieceSource, or the content is not in it, or not for
	// this peer (a folder shared with contacts, asked for by a stranger).
	NotShared uint64
	// Blocked: the peer is blocked here (PeerSource.Allowed).
	Blocked uint64
	// Busy: every upload slot was taken when the offer arrived.
	Busy uint64
	// BusyAtOpen: the data channel opened when every upload slot was
	// taken; the uploader said "busy" on the channel and closed it.
	BusyAtOpen uint64
	// Queued: offers answered with their place in the upload queue
	// (every slot taken, or the free ones kept for those queued ahead),
	// on arrival or when their data channel opened. Not a refusal: the
	// downloader asks again.
	Queued uint64
	// PeerBusy: the peer already held MaxUploadsPerPeer upload sessions,
	// connected or pending (when the offer arrived, or when its data channel
	// opened).
	PeerBusy uint64
	// PeerPending and Pending: the peer, or all peers together, already had
	// the most offers answered but not yet connected.
	PeerPending, Pending uint64
	// PeerOffers: the peer made more offers within OfferWindow than the
	// cache remembers for one peer; OfferCache: the cache of all peers was
	// full.
	PeerOffers, OfferCache uint64
	// NoTime, Stale, Future: the offer's signed time was missing, older than
	// OfferWindow, or further than OfferWindow ahead.
	NoTime, Stale, Future uint64
	// Replayed: an offer with a session ID this peer already used within
	// OfferWindow.
	Replayed uint64
	// PendingExpired counts offers answered whose data channel did not open
	// within ConnectTimeout (not a refusal at arrival, but the deadline that
	// frees their pending place).
	PendingExpired uint64
}

// refusalCounters is the live form of Refusals.
type refusalCounters struct {
	notShared, busy, busyAtOpen atomic.Uint64
	blocked                     atomic.Uint64
	peerBusy, queued            atomic.Uint64
	peerPending, pending        atomic.Uint64
	peerOffers, offerCache      atomic.Uint64
	noTime, stale, future       atomic.Uint64
	replayed, pendingExpired    atomic.Uint64
}

// Snapshot returns the counters' current values.
func (c *refusalCounters) Snapshot() Refusals {
	return Refusals{
		NotShared: c.notShared.Load(), Blocked: c.blocked.Load(), Busy: c.busy.Load(), BusyAtOpen: c.busyAtOpen.Load(),
		PeerBusy: c.peerBusy.Load(), Queued: c.queued.Load(),
		PeerPending: c.peerPending.Load(), Pending: c.pending.Load(),
		PeerOffers: c.peerOffers.Load(), OfferCache: c.offerCache.Load(),
		NoTime: c.noTime.Load(), Stale: c.stale.Load(), Future: c.future.Load(),
		Replayed: c.replayed.Load(), PendingExpired: c.pendingExpired.Load(),
	}
}

func (c *refusalCounters) counter(reason string) *atomic.Uint64 {
	switch reason {
	case reasonNotShared:
		return &c.notShared
	case reasonBlocked:
		return &c.blocked
	case reasonBusy:
		return &c.busy
	case reasonPeerBusy:
		return &c.peerBusy
	case reasonPeerPending:
		return &c.peerPending
	case reasonPending:
		return &c.pending
	case reasonPeerOffers:
		return &c.peerOffers
	case reasonOfferCache:
		return &c.offerCache
	case reasonNoTime:
		return &c.noTime
	case reasonStale:
		return &c.stale
	case reasonFuture:
		return &c.future
	case reasonReplayed:
		return &c.replayed
	}
	return nil
}

// Refusals returns the engine's refusal counters.
func (e *Engine) Refusals() Refusals { return e.refused.Snapshot() }

// seenOffer is one offer remembered until its window ends.
type seenOffer struct {
	session [16]byte
	until   time.Time
}

// offerCache remembers the offers of the last OfferWindow by peer and
// session ID, so that an offer replayed within its window is recognised.
// An offer older than the window is refused by its time, so nothing need be
// remembered longer. It is guarded by Engine.mu.
type offerCache struct {
	byPeer map[identity.NodeID][]seenOffer
	total  int
}

// prunePeer forgets the peer's offers whose window ended.
func (c *offerCache) prunePeer(peer identity.NodeID, now time.Time) {
	list := c.byPeer[peer]
	kept := list[:0]
	for _, o := range list {
		// Kept through its last instant: checkOffer still accepts an offer
		// exactly one window old, so its replay must still be found then.
		if !now.After(o.until) {
			kept = append(kept, o)
		}
	}
	c.total -= len(list) - len(kept)
	if len(kept) == 0 {
		delete(c.byPeer, peer)
	} else {
		c.byPeer[peer] = kept
	}
}

// pruneAll forgets every offer whose window ended. It walks the whole cache
// (at most MaxOfferCache entries), so it runs only when the cache is full.
func (c *offerCache) pruneAll(now time.Time) {
	for peer := range c.byPeer {
		c.prunePeer(peer, now)
	}
}

// checkOffer decides, by its signed time and the offers already seen,
// whether an offer may be considered at all, and remembers it if so. It
// returns "" or the reason for refusing. e.mu must be held.
func (e *Engine) checkOffer(s wire.Signal, now time.Time) string {
	if s.Time == 0 {
		return reasonNoTime
	}
	t := time.UnixMilli(s.Time)
	w := e.cfg.OfferWindow
	switch {
	case now.Sub(t) > w:
		return reasonStale
	case t.Sub(now) > w:
		return reasonFuture
	}
	c := &e.offers
	c.prunePeer(s.From, now)
	for _, o := range c.byPeer[s.From] {
		if o.session == s.Session {
			return reasonReplayed
		}
	}
	if len(c.byPeer[s.From]) >= e.cfg.MaxOffersPerPeer {
		return reasonPeerOffers
	}
	if c.total >= e.cfg.MaxOfferCache {
		c.pruneAll(now)
		if c.total >= e.cfg.MaxOfferCache {
			return reasonOfferCache
		}
	}
	// Remembered until the offer itself would be refused as stale: a
	// replay after that fails the time check instead.
	c.byPeer[s.From] = append(c.byPeer[s.From], seenOffer{session: s.Session, until: t.Add(w)})
	c.total++
	return ""
}

// refusalLogEvery is how often one refusal reason is logged at Info; the
// others in between are counted and reported with the next line. An offer
// flood would otherwise write a line per offer.
const refusalLogEvery = 10 * time.Second

// countRefusal counts and logs (rate-limited) one refused offer.
func (e *Engine) countRefusal(s wire.Signal, reason string) {
	if c := e.refused.counter(reason); c != nil {
		c.Add(1)
	}
	if ok, suppressed := e.refusalLog.Allow(reason, time.Now()); ok {
		e.log.Info("offer refused", zap.String("reason", reason),
			zap.String("from", s.From.Short()), zap.Uint64("similar_suppressed", suppressed))
	}
}
