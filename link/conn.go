package link

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/textsafe"
	"github.com/canopy-p2p/canopy/wire"
)

// Defaults for link timing and queues.
const (
	// HandshakeTimeout bounds the TLS handshake.
	HandshakeTimeout = 10 * time.Second
	// WriteTimeout bounds one frame write; a peer that does not read for this
	// long is dead or hostile and its link is closed.
	WriteTimeout = 15 * time.Second
	// SendQueueLen is how many frames may wait for the writer. Past it, Send
	// drops (and counts) rather than block the caller: one slow peer must not
	// stall a supernode's routing.
	SendQueueLen = 512
)

// Conn is an authenticated control link. One goroutine owns the writes (the
// writer started by newConn); reads belong to whoever calls Recv, which must be
// a single goroutine.
type Conn struct {
	tls  *tls.Conn
	peer identity.NodeID
	log  *zap.Logger
	send chan []byte
	// closing is closed by Close: the writer then flushes what is queued,
	// says goodbye and shuts the connection down.
	closing chan struct{}
	// closed is closed once the connection is shut down, by whichever of
	// Close and a failure comes first.
	closed       chan struct{}
	closeOnce    sync.Once
	shutdownOnce sync.Once
	wg           sync.WaitGroup

	mu     sync.Mutex // guards reason and the round-trip fields
	reason string
	// pingNonce and pingSent identify the last Ping sent; rtt is the smoothed
	// round-trip time of the pongs that answered them.
	pingNonce uint64
	pingSent  time.Time
	rtt       time.Duration

	// quiet is set by CloseQuiet: the close is logged at Debug only.
	quiet atomic.Bool

	// Drops counts frames dropped because the send queue was full.
	Drops atomic.Uint64
}

// Dial opens a link to addr and checks that the peer is want (zero: any node).
func Dial(ctx context.Context, addr string, creds *Credentials, want identity.NodeID, log *zap.Logger) (*Conn, error) {
	d := tls.Dialer{
		NetDialer: &net.Dialer{Timeout: HandshakeTimeout, KeepAlive: 30 * time.Second},
		Config:    creds.ClientConfig(want),
	}
	ctx, cancel := context.WithTimeout(ctx, HandshakeTimeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("link: dial %s: %w", addr, err)
	}
	return newConn(c.(*tls.Conn), log)
}

// Accept completes the server side of a link on an accepted TCP connection.
func Accept(ctx context.Context, raw net.Conn, creds *Credentials, log *zap.Logger) (*Conn, error) {
	tc := tls.Server(raw, creds.ServerConfig())
	ctx, cancel := context.WithTimeout(ctx, HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("link: handshake with %s: %w", raw.RemoteAddr(), err)
	}
	return newConn(tc, log)
}

func newConn(tc *tls.Conn, log *zap.Logger) (*Conn, error) {
	cs := tc.ConnectionState()
	if cs.NegotiatedProtocol != ALPN {
		tc.Close()
		return nil, fmt.Errorf("%w: protocol %q", ErrAuth, cs.NegotiatedProtocol)
	}
	peer, err := PeerID(cs)
	if err != nil {
		tc.Close()
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	c := &Conn{
		tls:     tc,
		peer:    peer,
		log:     log.With(zap.String("peer", peer.Short()), zap.String("remote", tc.RemoteAddr().String())),
		send:    make(chan []byte, SendQueueLen),
		closing: make(chan struct{}),
		closed:  make(chan struct{}),
	}
	c.wg.Add(1)
	go c.writer()
	return c, nil
}

// Peer is the authenticated node ID of the other side.
func (c *Conn) Peer() identity.NodeID { return c.peer }

// RemoteAddr is the other side's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.tls.RemoteAddr() }

// Done is closed when the link closes.
func (c *Conn) Done() <-chan struct{} { return c.closed }

// Reason says why the link closed ("" while open).
func (c *Conn) Reason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

func (c *Conn) writer() {
	defer c.wg.Done()
	for {
		select {
		case <-c.closed:
			return
		case <-c.closing:
			c.goodbye()
			return
		case b := <-c.send:
			c.tls.SetWriteDeadline(time.Now().Add(WriteTimeout))
			if _, err := c.tls.Write(b); err != nil {
				c.fail(fmt.Sprintf("write: %v", err))
				return
			}
		}
	}
}

// closeGrace bounds how long Close spends flushing queued frames and the Bye.
const closeGrace = time.Second

// goodbye flushes the frames queued before Close (a refusal, say, must reach
// the peer before the link goes), sends a Bye with the reason, and shuts the
// connection down. It runs on the writer goroutine.
func (c *Conn) goodbye() {
	defer c.shutdown()
	c.tls.SetWriteDeadline(time.Now().Add(closeGrace))
flush:
	for {
		select {
		case b := <-c.send:
			if _, err := c.tls.Write(b); err != nil {
				return
			}
		default:
			break flush
		}
	}
	if b, err := frame(mustBye(c.Reason())); err == nil {
		_, _ = c.tls.Write(b)
	}
}

func mustBye(reason string) wire.Envelope {
	e, err := wire.New(wire.TypeBye, &wire.Bye{Reason: reason})
	if err != nil {
		// A Bye only fails to encode if the reason is absurdly long.
		e, _ = wire.New(wire.TypeBye, &wire.Bye{Reason: "closing"})
	}
	return e
}

func frame(e wire.Envelope) ([]byte, error) {
	b, err := wire.Marshal(e)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 4+len(b))
	out[0], out[1], out[2], out[3] = byte(len(b)>>24), byte(len(b)>>16), byte(len(b)>>8), byte(len(b))
	copy(out[4:], b)
	return out, nil
}

// Send queues e without blocking. It returns ErrQueueFull (and counts a drop)
// when the peer is not keeping up, and ErrClosed after the link closed.
func (c *Conn) Send(e wire.Envelope) error {
	b, err := frame(e)
	if err != nil {
		return err
	}
	select {
	case <-c.closed:
		return ErrClosed
	default:
	}
	select {
	case c.send <- b:
		return nil
	default:
		c.Drops.Add(1)
		return ErrQueueFull
	}
}

// SendWait queues e, waiting for room until ctx ends or the link closes. It is
// for bulk senders (index uploads) that would rather wait than drop.
func (c *Conn) SendWait(ctx context.Context, e wire.Envelope) error {
	b, err := frame(e)
	if err != nil {
		return err
	}
	select {
	case c.send <- b:
		return nil
	case <-c.closed:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SendBody builds an envelope of type t around body and sends it with Send.
func (c *Conn) SendBody(t wire.Type, body any) error {
	e, err := wire.New(t, body)
	if err != nil {
		return err
	}
	return c.Send(e)
}

// Recv reads the next envelope, waiting at most idle for it (0: no limit).
// Any error closes the link: a malformed or oversized frame, a timeout, EOF.
func (c *Conn) Recv(idle time.Duration) (wire.Envelope, error) {
	return c.RecvMax(idle, wire.MaxEnvelope)
}

// RecvMax is Recv for a frame of at most limit bytes, on the wire and once
// decompressed (see wire.ReadFrameMax): for the hello, which a stranger
// sends before anything says who it is.
func (c *Conn) RecvMax(idle time.Duration, limit int) (wire.Envelope, error) {
	if idle > 0 {
		c.tls.SetReadDeadline(time.Now().Add(idle))
	}
	e, err := wire.ReadFrameMax(c.tls, limit)
	if err != nil {
		select {
		case <-c.closed:
			return e, ErrClosed
		default:
		}
		var ne net.Error
		switch {
		case errors.Is(err, wire.ErrMalformed), errors.Is(err, wire.ErrTooLarge), errors.Is(err, wire.ErrVersion):
			c.Close("bad frame: " + err.Error())
		case errors.As(err, &ne) && ne.Timeout():
			c.fail("idle timeout")
		default:
			c.fail(fmt.Sprintf("read: %v", err))
		}
		return e, err
	}
	return e, nil
}

// Close closes the link: frames already queued are flushed, the peer is told
// why (best effort, within a short grace period), and the reason is logged.
// It is idempotent and returns when the connection is shut down.
func (c *Conn) Close(reason string) {
	c.closeOnce.Do(func() {
		c.setReason(reason)
		close(c.closing)
	})
	c.wg.Wait()
	c.shutdown() // in case the writer had already stopped on an error
}

// CloseQuiet closes the link as Close does, but logs the close at Debug
// only: for links whose end is routine (a dial-back answered) or already
// logged by the caller (a refusal, which Refusals counts and rate-limits). A
// stranger can open such links as fast as it likes, and must not write a
// line for each.
func (c *Conn) CloseQuiet(reason string) {
	c.quiet.Store(true)
	c.Close(reason)
}

// Abort closes the link at once, without flushing the queue or saying
// goodbye: what the peer sees when this process crashes. For tests and
// emulations of failures.
func (c *Conn) Abort(reason string) { c.fail(reason) }

// fail shuts the link down without a goodbye, when the connection broke.
func (c *Conn) fail(reason string) {
	c.closeOnce.Do(func() { c.setReason(reason) })
	c.shutdown()
}

// setReason records why the link closed. Reasons often quote the peer (its
// goodbye's reason, an error about what it sent), so they are bounded here,
// where every reason passes, before they are logged, kept or sent back in
// the Bye.
func (c *Conn) setReason(r string) {
	r = textsafe.Bound(r, wire.MaxReasonLen)
	c.mu.Lock()
	c.reason = r
	c.mu.Unlock()
	level := zapcore.InfoLevel
	if c.quiet.Load() {
		level = zapcore.DebugLevel
	}
	if ce := c.log.Check(level, "link closed"); ce != nil {
		ce.Write(zap.String("reason", r))
	}
}

func (c *Conn) shutdown() {
	c.shutdownOnce.Do(func() {
		close(c.closed)
		c.tls.Close()
	})
}

// Serve reads envelopes until the link closes, waiting at most idle for each,
// and passes them to handle — except keep-alives: a Ping is answered with a
// Pong and a Pong is dropped, on every link alike. An error from handle is a
// protocol violation and closes the link with it as the reason. Serve is the
// link's one reader; it returns when the link is closed.
func (c *Conn) Serve(idle time.Duration, handle func(wire.Envelope) error) {
	for {
		e, err := c.Recv(idle)
		if err != nil {
			return
		}
		switch e.Type {
		case wire.TypePing:
			err = c.pong(e)
		case wire.TypePong:
			c.pongReceived(e)
		default:
			err = handle(e)
		}
		if err != nil {
			c.Close("protocol error: " + err.Error())
			return
		}
	}
}

func (c *Conn) pong(e wire.Envelope) error {
	var p wire.Ping
	if err := e.Decode(&p); err != nil {
		return err
	}
	r, err := wire.New(wire.TypePong, &wire.Pong{Nonce: p.Nonce})
	if err != nil {
		return err
	}
	r.ID = e.ID
	_ = c.Send(r) // a full queue drops the pong; the peer's next ping retries
	return nil
}

// Ping sends a keep-alive, so that the peer's idle timeout only fires when
// this side is gone.
func (c *Conn) Ping() {
	nonce := rand.Uint64()
	c.mu.Lock()
	c.pingNonce, c.pingSent = nonce, time.Now()
	c.mu.Unlock()
	_ = c.SendBody(wire.TypePing, &wire.Ping{Nonce: nonce})
}

// pongReceived measures the round trip of the last Ping. Only the latest ping
// is tracked: a pong for an older one is ignored rather than mis-timed.
func (c *Conn) pongReceived(e wire.Envelope) {
	var p wire.Pong
	if e.Decode(&p) != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.Nonce != c.pingNonce || c.pingSent.IsZero() {
		return
	}
	sample := time.Since(c.pingSent)
	c.pingSent = time.Time{}
	if c.rtt == 0 {
		c.rtt = sample
	} else {
		c.rtt = (7*c.rtt + sample) / 8 // RFC 6298's smoothing (alpha = 1/8)
	}
}

// RTT returns the smoothed round-trip time measured by Ping, or 0 before the
// first pong.
func (c *Conn) RTT() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rtt
}
