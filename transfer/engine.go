package transfer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/loglimit"
	"github.com/canopy-p2p/canopy/wire"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// sessionInbox bounds the signals queued for one session. A session gets one
// answer and, with trickle ICE from a peer, a few candidates; more is abuse
// and is dropped.
const sessionInbox = 16

// refusalQueue bounds the Close signals waiting to tell peers "busy" or "not
// shared". When it is full further refusals are dropped (the peer then times
// out), so an offer flood cannot grow goroutines or memory.
const refusalQueue = 32

// signalTimeout bounds sending one best-effort signal (a refusal, a Close).
const signalTimeout = 5 * time.Second

// Engine runs the uploads and downloads of one node. It is safe for
// concurrent use.
type Engine struct {
	cfg  Config
	log  *zap.Logger
	self identity.NodeID

	// ctx is cancelled by Close; every session derives from it.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts every goroutine the engine started and every running
	// Download call, so that Close can wait for all of them.
	wg sync.WaitGroup

	refusals chan wire.Signal

	// corruptPiece, when set by package tests before any upload starts,
	// changes piece data after the uploader's own verification: it turns the
	// engine into a lying source.
	corruptPiece func(index int, data []byte)
	// corruptListing, when set by package tests, replaces each listing
	// message a browse session sends.
	corruptListing func(msg []byte) []byte

	stats      stats
	refused    refusalCounters
	refusalLog loglimit.Limiter[string] // Every: refusalLogEvery; keys are the fixed reasons
	// up and down are the bandwidth limits (limit.go); nil for none.
	up, down *rate.Limiter

	mu sync.Mutex // guards the fields below
	// closed is set by Close; no session starts afterwards.
	closed bool
	// sessions are the sessions still signalling, by session ID.
	sessions map[[16]byte]*session
	// uploads counts the upload sessions holding a slot: from open data
	// channel to end. An offer that never connects never takes one.
	uploads int
	// browses counts the browse sessions holding a browse place.
	browses int
	// pending counts upload sessions answered but not yet connected, in
	// all and by peer.
	pending     int
	peerPending map[identity.NodeID]int
	// peerUploads counts the upload slots held, by peer.
	peerUploads map[identity.NodeID]int
	// queue holds the requests waiting for a slot (queue.go).
	queue uploadQueue
	// offers remembers recent offers, against replays.
	offers offerCache
	// parts holds the temporary files of running downloads.
	parts map[string]bool
}

// session is the signalling end of one peer connection. HandleSignal hands
// answers, candidates and closes to the goroutine that owns the session
// through inbox; it never blocks on it.
type session struct {
	id    [16]byte
	peer  identity.NodeID
	inbox chan wire.Signal
	// content is what an upload session serves, so that taking its slot
	// takes its request out of the upload queue.
	content [32]byte
	// pending and slot say what an upload session holds (guarded by
	// Engine.mu): a pending place until its data channel opens, then an
	// upload slot.
	pending, slot bool
	// browse: the session holds a browse place (guarded by Engine.mu).
	browse bool
	// up is the upload it serves once it holds a slot (guarded by
	// Engine.mu), for Uploads.
	up *upload
}

// New starts an engine. Close it when done.
func New(cfg Config) (*Engine, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		cfg:         cfg,
		log:         cfg.Logger.With(zap.String("node", cfg.Identity.ID.Short())),
		self:        cfg.Identity.ID,
		ctx:         ctx,
		cancel:      cancel,
		refusals:    make(chan wire.Signal, refusalQueue),
		refusalLog:  loglimit.Limiter[string]{Every: refusalLogEvery},
		up:          newLimiter(cfg.UpLimit),
		down:        newLimiter(cfg.DownLimit),
		sessions:    make(map[[16]byte]*session),
		offers:      offerCache{byPeer: make(map[identity.NodeID][]seenOffer)},
		peerPending: make(map[identity.NodeID]int),
		peerUploads: make(map[identity.NodeID]int),
		queue: uploadQueue{max: max(cfg.MaxQueue, 0), maxPerPeer: cfg.MaxUploadsPerPeer,
			ttl: queueTTL * cfg.QueueReask},
		parts: make(map[string]bool),
	}
	e.wg.Add(1)
	go e.sendRefusals()
	return e, nil
}

// Close stops every session and download and waits for their goroutines.
// Running Downloads return ErrClosed. It is safe to call more than once.
func (e *Engine) Close() error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
	return nil
}

// Stats are counters since the engine started.
type Stats struct {
	// UploadsAccepted counts offers admitted (answered; an upload slot is
	// taken only when the data channel opens). UploadsRefused counts
	// offers declined with a Close or, at open, a TransferError "busy";
	// Refusals has every refusal by reason.
	UploadsAccepted, UploadsRefused int64
	// PiecesServed counts pieces sent by uploads; StalePieces counts pieces
	// not sent because the file no longer matched its manifest.
	PiecesServed, StalePieces int64
	// SignalsDropped counts incoming signals ignored: bad signature, not
	// addressed to this node, unknown session, full session inbox.
	SignalsDropped int64
	// BadSources counts download sources dropped for bad data, and
	// BadPieces and BadManifests the reasons.
	BadSources, BadPieces, BadManifests int64
	// DirectConnections and RelayedConnections count the peer connections,
	// uploads and downloads alike, whose data channel opened, by the path
	// of the candidate pair in use at that moment (see ConnInfo). A path
	// that changes later is not counted again.
	DirectConnections, RelayedConnections int64
	// BrowsesServed counts browse sessions whose data channel opened and
	// that took a browse place.
	BrowsesServed int64
	// UpLimit and DownLimit are the bandwidth limits in force, bytes per
	// second (0: none).
	UpLimit, DownLimit float64
	// PiecesVerified counts pieces downloads received whole and verified
	// (then written); BadPieces those that failed verification.
	PiecesVerified int64
	// UploadedDirect and UploadedRelayed count the piece data uploads
	// sent, DownloadedDirect and DownloadedRelayed the verified piece data
	// downloads received, in bytes, by the path of the connection when
	// the piece completed (see ConnInfo): what crossed a TURN relay and
	// what went leaf to leaf. Manifests and framing are not counted.
	UploadedDirect, UploadedRelayed, DownloadedDirect, DownloadedRelayed int64
	// Uploads is the upload sessions holding a slot now, Downloads the
	// Download calls running now.
	Uploads, Downloads int
	// Refusals counts refused offers by reason (see Engine.Refusals).
	Refusals Refusals
}

type stats struct {
	uploadsAccepted, uploadsRefused atomic.Int64
	piecesServed, stalePieces       atomic.Int64
	signalsDropped                  atomic.Int64
	badSources, badPieces, badMfst  atomic.Int64
	directConns, relayedConns       atomic.Int64
	piecesVerified                  atomic.Int64
	browsesServed                   atomic.Int64
	// up and down are piece bytes by path: [0] direct, [1] relayed.
	up, down [2]atomic.Int64
}

// countBytes adds n piece bytes sent (up) or verified (down) over a
// connection on path.
func (s *stats) countBytes(up bool, path string, n int) {
	i := 0
	if path == PathRelayed {
		i = 1
	}
	if up {
		s.up[i].Add(int64(n))
	} else {
		s.down[i].Add(int64(n))
	}
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	s := &e.stats
	e.mu.Lock()
	uploads, downloads := e.uploads, len(e.parts)
	e.mu.Unlock()
	return Stats{
		UploadsAccepted: s.uploadsAccepted.Load(), UploadsRefused: s.uploadsRefused.Load(),
		PiecesServed: s.piecesServed.Load(), StalePieces: s.stalePieces.Load(),
		SignalsDropped: s.signalsDropped.Load(),
		BadSources:     s.badSources.Load(), BadPieces: s.badPieces.Load(), BadManifests: s.badMfst.Load(),
		DirectConnections: s.directConns.Load(), RelayedConnections: s.relayedConns.Load(),
		UpLimit: max(e.cfg.UpLimit, 0), DownLimit: max(e.cfg.DownLimit, 0),
		PiecesVerified: s.piecesVerified.Load(),
		UploadedDirect: s.up[0].Load(), UploadedRelayed: s.up[1].Load(),
		DownloadedDirect: s.down[0].Load(), DownloadedRelayed: s.down[1].Load(),
		Uploads: uploads, Downloads: downloads,
		BrowsesServed: s.browsesServed.Load(),
		Refusals:      e.refused.Snapshot(),
	}
}

// HandleSignal takes one incoming signal. The leaf calls it for every Signal
// its supernodes deliver. It checks the sender's signature, then starts an
// upload session for an offer or hands an answer, candidate or close to the
// session it belongs to. It never blocks for long: the work happens on
// session goroutines. Bad or unexpected signals are dropped and logged at
// debug level (a peer can send any number of them), and counted in Stats.
func (e *Engine) HandleSignal(s wire.Signal) {
	if err := identity.Verify(s.From, s.PubKey, s.SignedBytes(), s.Sig); err != nil {
		e.dropSignal(s, "bad signature", err)
		return
	}
	if s.To != e.self {
		e.dropSignal(s, "not addressed to this node", nil)
		return
	}
	if s.From == e.self {
		e.dropSignal(s, "from this node", nil)
		return
	}
	switch s.Kind {
	case wire.SignalOffer:
		e.handleOffer(s)
	case wire.SignalAnswer, wire.SignalCandidate, wire.SignalClose:
		e.mu.Lock()
		sess := e.sessions[s.Session]
		e.mu.Unlock()
		// The session ID is random, but only the peer the session was opened
		// with may speak in it.
		if sess == nil || sess.peer != s.From {
			e.dropSignal(s, "unknown session", nil)
			return
		}
		select {
		case sess.inbox <- s:
		default:
			e.dropSignal(s, "session inbox full", nil)
		}
	default:
		e.dropSignal(s, "unknown kind", nil)
	}
}

func (e *Engine) dropSignal(s wire.Signal, why string, err error) {
	e.stats.signalsDropped.Add(1)
	e.log.Debug("signal dropped", zap.String("reason", why), zap.Error(err),
		zap.String("from", s.From.Short()), zap.Uint8("kind", uint8(s.Kind)))
}

// handleOffer admits an upload session or refuses it. The content lookup
// happens on the session goroutine because the library may take time.
//
// Admission takes a pending place, not an upload slot: the slot is taken
// when the data channel opens (takeSlot). Otherwise offers that never
// connect, a few every ConnectTimeout, would hold every slot and make each
// honest downloader hear "busy".
func (e *Engine) handleOffer(s wire.Signal) {
	now := time.Now()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	if _, dup := e.sessions[s.Session]; dup {
		e.mu.Unlock()
		e.dropSignal(s, "duplicate offer", nil)
		return
	}
	if why := e.checkOffer(s, now); why != "" {
		e.mu.Unlock()
		// Dropped without an answer: see Refusals.
		e.countRefusal(s, why)
		e.dropSignal(s, why, nil)
		return
	}
	e.queue.expire(now)
	// A browse takes no upload slot (it has places of its own, taken
	// when its channel opens: takeBrowse), so the slots' rules and the
	// upload queue are not for it.
	upload := s.Content != wire.BrowseContent
	var refuse string
	switch {
	case e.cfg.Source == nil:
		refuse = reasonNotShared
	case upload && e.cfg.MaxUploads <= 0:
		refuse = reasonBusy
	case upload && e.peerUploads[s.From]+e.peerPending[s.From] >= e.cfg.MaxUploadsPerPeer:
		refuse = reasonPeerBusy
	case upload && e.cfg.MaxUploads-e.uploads <= e.queue.ahead(s.From, s.Content):
		// No slot for it: every one is taken, or the free ones are for
		// the requests queued ahead of it.
		refuse = e.enqueueLocked(s.From, s.Content, now)
	case e.peerPending[s.From] >= e.cfg.MaxPendingPerPeer:
		refuse = reasonPeerPending
	case e.pending >= e.cfg.MaxPending:
		refuse = reasonPending
	}
	if refuse != "" {
		e.mu.Unlock()
		e.refuse(s, refuse)
		return
	}
	sess := &session{id: s.Session, peer: s.From, inbox: make(chan wire.Signal, sessionInbox), pending: true,
		content: s.Content}
	e.sessions[s.Session] = sess
	e.pending++
	e.peerPending[s.From]++
	e.wg.Add(1)
	e.mu.Unlock()
	e.stats.uploadsAccepted.Add(1)
	go e.runUpload(sess, s, now)
}

// takeSlot moves an upload session whose data channel opened from its
// pending place to an upload slot, and its request out of the upload queue.
// It returns the refusal reason when it cannot: every slot is taken (other
// sessions connected first: the request is queued, "queued N", or "busy"
// when the queue is full), or the peer holds its share
// (MaxUploadsPerPeer); "" when the slot is taken.
func (e *Engine) takeSlot(sess *session) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.releasePending(sess)
	switch {
	case e.uploads >= e.cfg.MaxUploads:
		return e.enqueueLocked(sess.peer, sess.content, time.Now())
	case e.peerUploads[sess.peer] >= e.cfg.MaxUploadsPerPeer:
		return reasonPeerBusy
	}
	sess.slot = true
	e.uploads++
	e.peerUploads[sess.peer]++
	e.queue.remove(sess.peer, sess.content)
	return ""
}

// enqueueLocked puts peer's request for content in the upload queue, or
// finds its place there, and returns the reason to answer with: "queued N",
// or "busy" when the queue is full (or there is none). e.mu is held.
func (e *Engine) enqueueLocked(peer identity.NodeID, content [32]byte, now time.Time) string {
	prio := 0
	if e.cfg.UploadPriority != nil && e.queue.index(peer, content) < 0 {
		prio = e.cfg.UploadPriority(peer)
	}
	pos, ok := e.queue.ask(peer, content, prio, now)
	if !ok {
		return reasonBusy
	}
	return queuedPrefix + strconv.Itoa(pos)
}

// releasePending frees the session's pending place, if it holds one. e.mu
// must be held.
func (e *Engine) releasePending(sess *session) {
	if !sess.pending {
		return
	}
	sess.pending = false
	e.pending--
	if n := e.peerPending[sess.peer] - 1; n > 0 {
		e.peerPending[sess.peer] = n
	} else {
		delete(e.peerPending, sess.peer)
	}
}

// refuse queues a Close signal that tells the offerer why it is not served,
// or that it is queued ("queued N"), which is counted apart: the offerer
// asks again.
func (e *Engine) refuse(offer wire.Signal, reason string) {
	if strings.HasPrefix(reason, queuedPrefix) {
		e.refused.queued.Add(1)
	} else {
		e.stats.uploadsRefused.Add(1)
		e.countRefusal(offer, reason)
	}
	reply := wire.Signal{Session: offer.Session, To: offer.From, Kind: wire.SignalClose,
		Data: reason, Content: offer.Content, FromVia: offer.FromVia}
	select {
	case e.refusals <- reply:
	default:
		// Dropped by policy: the offerer times out instead.
	}
}

// sendRefusals sends queued refusals one at a time, so that refusing never
// costs a goroutine per offer.
func (e *Engine) sendRefusals() {
	defer e.wg.Done()
	for {
		select {
		case <-e.ctx.Done():
			return
		case r := <-e.refusals:
			ctx, cancel := context.WithTimeout(e.ctx, signalTimeout)
			err := e.sendSignal(ctx, r.To, r.FromVia, r.Session, r.Kind, r.Data, r.Content)
			cancel()
			if err != nil {
				e.log.Debug("refusal not sent", zap.String("to", r.To.Short()), zap.Error(err))
			}
		}
	}
}

// newSession registers a session this node opens (a download source).
func (e *Engine) newSession(peer identity.NodeID) (*session, error) {
	sess := &session{peer: peer, inbox: make(chan wire.Signal, sessionInbox)}
	if _, err := rand.Read(sess.id[:]); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	e.sessions[sess.id] = sess
	return sess, nil
}

// endSession forgets a session; later signals for it are dropped.
func (e *Engine) endSession(sess *session) {
	e.mu.Lock()
	delete(e.sessions, sess.id)
	e.releasePending(sess)
	if sess.slot {
		sess.slot = false
		e.uploads--
		if n := e.peerUploads[sess.peer] - 1; n > 0 {
			e.peerUploads[sess.peer] = n
		} else {
			delete(e.peerUploads, sess.peer)
		}
	}
	if sess.browse {
		sess.browse = false
		e.browses--
	}
	e.mu.Unlock()
}

// sendSignal signs a signal and sends it toward to, through each supernode
// in vias in turn until one accepts it (or once with no Via if vias is
// empty, for callers whose Signal function routes by itself).
func (e *Engine) sendSignal(ctx context.Context, to identity.NodeID, vias []identity.NodeID,
	id [16]byte, kind wire.SignalKind, data string, contentID [32]byte) error {
	return e.sendSigned(ctx, wire.Signal{Session: id, To: to, Kind: kind, Data: data, Content: contentID}, vias)
}

// sendSigned fills in this node as the sender, with the time, signs s and
// sends it as sendSignal does.
func (e *Engine) sendSigned(ctx context.Context, s wire.Signal, vias []identity.NodeID) error {
	s.From, s.PubKey, s.Time = e.self, e.cfg.Identity.Public, time.Now().UnixMilli()
	s.Sig = e.cfg.Identity.Sign(s.SignedBytes())
	if len(vias) == 0 {
		return e.cfg.Signal(ctx, s)
	}
	var errs []error
	for _, via := range vias {
		s.Via = via
		err := e.cfg.Signal(ctx, s)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("via %s: %w", via.Short(), err))
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}
