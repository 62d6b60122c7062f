package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/internal/textsafe"
	"github.com/canopy-p2p/canopy/wire"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
)

// channelLabel names the one data channel of a transfer session.
const channelLabel = "canopy/xfer"

// Flow control. Send never lets more than highWater bytes queue in the SCTP
// stream; once past it, the sender waits until pion reports the queue drained
// to lowWater (OnBufferedAmountLow). The gap keeps the sender from waking for
// every message, and lowWater stays large enough that the association never
// runs dry while the sender wakes up.
const (
	highWater = 4 << 20
	lowWater  = 1 << 20
)

// inboxMessages bounds the messages received but not yet processed. When it
// is full pion's read loop waits, which backs pressure up into SCTP's receive
// window instead of into memory.
const inboxMessages = 64

// channel is one peer connection with its data channel, seen as a message
// pipe with flow control.
type channel struct {
	pc *webrtc.PeerConnection

	// msgs carries received messages to the session goroutine.
	msgs chan []byte
	// open is closed when the data channel is open.
	open chan struct{}
	// dead is closed when the data channel or the peer connection closes or
	// fails, or when the session gives up on it.
	dead     chan struct{}
	openOnce sync.Once
	deadOnce sync.Once
	// low receives a token when the send queue drained to lowWater.
	low chan struct{}

	// log receives a line when the selected candidate pair changes after
	// the channel opened.
	log *zap.Logger

	mu sync.Mutex // guards the fields below
	dc *webrtc.DataChannel
	// conn is the candidate pair in use: the last one pion reported, then
	// the one read when the channel opened, then each later change.
	conn ConnInfo
	// opened is set by connected.
	opened bool

	// peerName is, on a download's channel, the name the uploader gave the
	// content in its answer (bounded, cleaned). Set by dial before it
	// returns the channel and read only afterwards.
	peerName string
}

func newChannel(pc *webrtc.PeerConnection, log *zap.Logger) *channel {
	c := &channel{
		pc:   pc,
		log:  log,
		msgs: make(chan []byte, inboxMessages),
		open: make(chan struct{}),
		dead: make(chan struct{}),
		low:  make(chan struct{}, 1),
	}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
			c.markDead()
		}
	})
	// Registered before gathering starts, so that no selection is missed.
	// The pair can change after the channel opened: the controlling agent
	// may nominate another pair, and the controlled one follows.
	if t := iceTransport(pc); t != nil {
		t.OnSelectedCandidatePairChange(c.pairChanged)
	}
	return c
}

// iceTransport returns the ICE transport under pc's data channels, or nil.
// pion creates the SCTP, DTLS and ICE transports with the peer connection,
// so the chain is complete from the start; the checks only guard against a
// future pion that builds them lazily.
func iceTransport(pc *webrtc.PeerConnection) *webrtc.ICETransport {
	sctp := pc.SCTP()
	if sctp == nil {
		return nil
	}
	dtls := sctp.Transport()
	if dtls == nil {
		return nil
	}
	return dtls.ICETransport()
}

// pairChanged is pion's selected-pair callback. pion calls it on its own
// goroutine, one call at a time and in order; it does not block.
func (c *channel) pairChanged(p *webrtc.ICECandidatePair) {
	if p == nil || p.Local == nil || p.Remote == nil {
		return
	}
	ci := connInfoFromPair(p)
	c.mu.Lock()
	ci.ConnectTime = c.conn.ConnectTime
	old, changed := c.conn, c.opened && !c.conn.samePair(ci)
	c.conn = ci
	c.mu.Unlock()
	if changed {
		c.log.Info("connection path changed", append(ci.logFields(),
			zap.String("old_path", old.Path), zap.String("old_local_addr", old.LocalAddr),
			zap.String("old_remote_addr", old.RemoteAddr))...)
	}
}

// connected records the pair in use now that the data channel is open,
// with the time since start, and returns it. The agent's current pair is
// read directly because pion delivers change callbacks asynchronously: the
// first one may still be on its way when the channel opens. Callbacks still
// queued are delivered in selection order, so the record ends at the pair
// the agent uses.
func (c *channel) connected(start time.Time) ConnInfo {
	var (
		now   ConnInfo
		found bool
	)
	if t := iceTransport(c.pc); t != nil {
		if p, err := t.GetSelectedCandidatePair(); err == nil && p != nil {
			now, found = connInfoFromPair(p), true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if found {
		c.conn = now
	}
	c.conn.ConnectTime = time.Since(start)
	c.opened = true
	return c.conn
}

// connInfo returns the pair in use (or last used) and the connect time.
func (c *channel) connInfo() ConnInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

func (c *channel) markDead() { c.deadOnce.Do(func() { close(c.dead) }) }

// attach adopts dc as the session's data channel. Only the first call
// counts: a peer that opens more channels gets them closed.
func (c *channel) attach(dc *webrtc.DataChannel) bool {
	c.mu.Lock()
	if c.dc != nil || dc.Label() != channelLabel {
		c.mu.Unlock()
		_ = dc.Close()
		return false
	}
	c.dc = dc
	c.mu.Unlock()
	dc.SetBufferedAmountLowThreshold(lowWater)
	dc.OnBufferedAmountLow(func() {
		select {
		case c.low <- struct{}{}:
		default:
		}
	})
	dc.OnOpen(func() { c.openOnce.Do(func() { close(c.open) }) })
	dc.OnClose(c.markDead)
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		if m.IsString {
			// The protocol is binary only; a text message is dropped here
			// and reported as malformed by nobody: it carries nothing.
			return
		}
		select {
		case c.msgs <- m.Data:
		case <-c.dead:
		}
	})
	return true
}

// send queues one message, waiting first while too much is queued already.
func (c *channel) send(ctx context.Context, b []byte) error {
	c.mu.Lock()
	dc := c.dc
	c.mu.Unlock()
	for dc.BufferedAmount() > highWater {
		select {
		case <-c.low:
		case <-c.dead:
			return ErrPeerClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := dc.Send(b); err != nil {
		return fmt.Errorf("%w: %v", ErrPeerClosed, err)
	}
	return nil
}

// sendMsg wraps body in an envelope and sends it.
func (c *channel) sendMsg(ctx context.Context, t wire.Type, body any) error {
	env, err := wire.New(t, body)
	if err != nil {
		return err
	}
	b, err := wire.Marshal(env)
	if err != nil {
		return err
	}
	return c.send(ctx, b)
}

// close tears the peer connection down and waits for pion's goroutines of
// it. It must not run inside a pion callback.
func (c *channel) close() {
	c.markDead()
	_ = c.pc.GracefulClose()
}

// gather sets the local description and waits until ICE gathering is
// complete, so that the description carries every candidate. Canopy uses
// non-trickle ICE: one offer and one answer cross the supernodes instead of
// a stream of candidate signals, at the cost of the gathering time (nothing
// on a LAN, up to the STUN timeout with unreachable servers).
func gather(ctx context.Context, pc *webrtc.PeerConnection, desc webrtc.SessionDescription) (string, error) {
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(desc); err != nil {
		return "", err
	}
	select {
	case <-done:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return pc.LocalDescription().SDP, nil
}

// addCandidate applies a trickled candidate from the peer. Canopy itself does
// not trickle, but accepting candidates costs nothing and keeps the door
// open for peers that do.
func addCandidate(pc *webrtc.PeerConnection, data string) error {
	var c webrtc.ICECandidateInit
	if err := json.Unmarshal([]byte(data), &c); err != nil {
		return err
	}
	return pc.AddICECandidate(c)
}

// newPeerConnection creates the peer connection of one session, with the
// ICE servers of the moment when Config.ICEServers is set.
func (e *Engine) newPeerConnection() (*webrtc.PeerConnection, error) {
	wc := e.cfg.WebRTC
	if e.cfg.ICEServers != nil {
		wc.ICEServers = e.cfg.ICEServers()
	}
	return e.cfg.API.NewPeerConnection(wc)
}

// countConn counts an opened connection by its path.
func (e *Engine) countConn(ci ConnInfo) {
	switch ci.Path {
	case PathDirect:
		e.stats.directConns.Add(1)
	case PathRelayed:
		e.stats.relayedConns.Add(1)
	}
}

// dial opens a transfer session to a source: it sends a signed offer, waits
// for the signed answer and for the data channel to open. The returned
// channel is open; the caller closes it. log is the source's logger.
func (e *Engine) dial(ctx context.Context, src wire.Source, id content.ID, log *zap.Logger) (*channel, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ConnectTimeout)
	defer cancel()
	sess, err := e.newSession(src.Node)
	if err != nil {
		return nil, err
	}
	defer e.endSession(sess)

	pc, err := e.newPeerConnection()
	if err != nil {
		return nil, fmt.Errorf("%w: new peer connection: %v", ErrConnect, err)
	}
	c := newChannel(pc, log)
	offered := false
	fail := func(err error) (*channel, error) {
		c.close()
		if offered {
			// Free the source's upload slot now rather than at its timeout.
			sctx, scancel := context.WithTimeout(e.ctx, signalTimeout)
			_ = e.sendSignal(sctx, src.Node, src.Via, sess.id, wire.SignalClose, "cancelled", id)
			scancel()
		}
		if ctx.Err() != nil && !errors.Is(err, ErrRefused) {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("%w: no open data channel within %v", ErrConnect, e.cfg.ConnectTimeout)
			}
			return nil, ctx.Err()
		}
		return nil, err
	}
	// Ordered and reliable (the defaults): the protocol relies on blocks
	// arriving complete and in order.
	dc, err := pc.CreateDataChannel(channelLabel, nil)
	if err != nil {
		return fail(fmt.Errorf("%w: create data channel: %v", ErrConnect, err))
	}
	c.attach(dc)
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fail(fmt.Errorf("%w: create offer: %v", ErrConnect, err))
	}
	sdp, err := gather(ctx, pc, offer)
	if err != nil {
		return fail(fmt.Errorf("%w: gather: %v", ErrConnect, err))
	}
	sent := time.Now()
	if err := e.sendSignal(ctx, src.Node, src.Via, sess.id, wire.SignalOffer, sdp, id); err != nil {
		return fail(fmt.Errorf("%w: send offer: %v", ErrConnect, err))
	}
	offered = true
	answered := false
	for {
		select {
		case s := <-sess.inbox:
			switch s.Kind {
			case wire.SignalAnswer:
				if answered {
					continue
				}
				answered = true
				// The source's own name for the file, bounded and made
				// harmless to print; sanitizeName makes it a file name
				// if it is ever used as one.
				c.peerName = boundName(s.Name)
				if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: s.Data}); err != nil {
					return fail(fmt.Errorf("%w: bad answer: %v", ErrProtocol, err))
				}
			case wire.SignalCandidate:
				if err := addCandidate(pc, s.Data); err != nil {
					e.log.Debug("bad candidate", zap.String("from", src.Node.Short()), zap.Error(err))
				}
			case wire.SignalClose:
				offered = false // nothing to free on the other side
				if pos, ok := parseQueued(s.Data); ok {
					return fail(&QueuedError{Position: pos})
				}
				reason := textsafe.Bound(s.Data, maxReasonLen)
				if reason == reasonBlocked {
					return fail(fmt.Errorf("%w: %w: this node is blocked by the peer", ErrRefused, ErrBlocked))
				}
				return fail(fmt.Errorf("%w: %s", ErrRefused, reason))
			}
		case <-c.open:
			e.countConn(c.connected(sent))
			return c, nil
		case <-c.dead:
			return fail(fmt.Errorf("%w: connection failed", ErrConnect))
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
}

// accept answers an offer that arrived at received: it applies the offer,
// sends a signed answer carrying name (this node's name for the content) and
// waits until the offerer's data channel is open. The caller closes the
// returned channel. log is the session's logger.
func (e *Engine) accept(ctx context.Context, sess *session, offer wire.Signal, received time.Time,
	name string, log *zap.Logger) (*channel, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ConnectTimeout)
	defer cancel()
	pc, err := e.newPeerConnection()
	if err != nil {
		return nil, fmt.Errorf("%w: new peer connection: %v", ErrConnect, err)
	}
	c := newChannel(pc, log)
	fail := func(err error) (*channel, error) {
		c.close()
		return nil, err
	}
	pc.OnDataChannel(func(dc *webrtc.DataChannel) { c.attach(dc) })
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer.Data}); err != nil {
		return fail(fmt.Errorf("%w: bad offer: %v", ErrProtocol, err))
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(fmt.Errorf("%w: create answer: %v", ErrConnect, err))
	}
	sdp, err := gather(ctx, pc, answer)
	if err != nil {
		return fail(fmt.Errorf("%w: gather: %v", ErrConnect, err))
	}
	reply := wire.Signal{Session: sess.id, To: offer.From, Kind: wire.SignalAnswer, Data: sdp,
		Content: offer.Content, Name: name}
	if err := e.sendSigned(ctx, reply, offer.FromVia); err != nil {
		return fail(fmt.Errorf("%w: send answer: %v", ErrConnect, err))
	}
	for {
		select {
		case s := <-sess.inbox:
			switch s.Kind {
			case wire.SignalCandidate:
				if err := addCandidate(pc, s.Data); err != nil {
					e.log.Debug("bad candidate", zap.String("from", offer.From.Short()), zap.Error(err))
				}
			case wire.SignalClose:
				return fail(fmt.Errorf("%w: offerer cancelled", ErrPeerClosed))
			}
		case <-c.open:
			e.countConn(c.connected(received))
			return c, nil
		case <-c.dead:
			return fail(fmt.Errorf("%w: connection failed", ErrConnect))
		case <-ctx.Done():
			return fail(fmt.Errorf("%w: %v", ErrConnect, ctx.Err()))
		}
	}
}
