package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/canopy-p2p/canopy/content"
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

	mu sync.Mutex // guards dc
	dc *webrtc.DataChannel
}

func newChannel(pc *webrtc.PeerConnection) *channel {
	c := &channel{
		pc:   pc,
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
	return c
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

// dial opens a transfer session to a source: it sends a signed offer, waits
// for the signed answer and for the data channel to open. The returned
// channel is open; the caller closes it.
func (e *Engine) dial(ctx context.Context, src wire.Source, id content.ID) (*channel, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ConnectTimeout)
	defer cancel()
	sess, err := e.newSession(src.Node)
	if err != nil {
		return nil, err
	}
	defer e.endSession(sess, false)

	pc, err := e.cfg.API.NewPeerConnection(e.cfg.WebRTC)
	if err != nil {
		return nil, fmt.Errorf("%w: new peer connection: %v", ErrConnect, err)
	}
	c := newChannel(pc)
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
				if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: s.Data}); err != nil {
					return fail(fmt.Errorf("%w: bad answer: %v", ErrProtocol, err))
				}
			case wire.SignalCandidate:
				if err := addCandidate(pc, s.Data); err != nil {
					e.log.Debug("bad candidate", zap.String("from", src.Node.Short()), zap.Error(err))
				}
			case wire.SignalClose:
				offered = false // nothing to free on the other side
				return fail(fmt.Errorf("%w: %s", ErrRefused, s.Data))
			}
		case <-c.open:
			return c, nil
		case <-c.dead:
			return fail(fmt.Errorf("%w: connection failed", ErrConnect))
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
}

// accept answers an offer: it applies the offer, sends a signed answer and
// waits until the offerer's data channel is open. The caller closes the
// returned channel.
func (e *Engine) accept(ctx context.Context, sess *session, offer wire.Signal) (*channel, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ConnectTimeout)
	defer cancel()
	pc, err := e.cfg.API.NewPeerConnection(e.cfg.WebRTC)
	if err != nil {
		return nil, fmt.Errorf("%w: new peer connection: %v", ErrConnect, err)
	}
	c := newChannel(pc)
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
	if err := e.sendSignal(ctx, offer.From, offer.FromVia, sess.id, wire.SignalAnswer, sdp, offer.Content); err != nil {
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
			return c, nil
		case <-c.dead:
			return fail(fmt.Errorf("%w: connection failed", ErrConnect))
		case <-ctx.Done():
			return fail(fmt.Errorf("%w: %v", ErrConnect, ctx.Err()))
		}
	}
}
