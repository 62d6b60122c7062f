package gossip

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/link"
	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// gossipALPN is the TLS protocol name of gossip streams. It differs from the
// control link's (link.ALPN), so a gossip stream can never be taken for a
// control link, nor the other way round.
const gossipALPN = "canopy-gossip/1"

// streamHandshakeTimeout bounds an incoming stream's TLS handshake and
// metadata exchange; the verification of a new peer gets VerifyTimeout on
// top.
const streamHandshakeTimeout = link.HandshakeTimeout

// trustStore is what the transport needs from the verifier.
type trustStore interface {
	// key returns the public key of id if a verification confirmed it.
	key(id identity.NodeID) (ed25519.PublicKey, bool)
	// verifyNow returns nil once m's node is verified, verifying it if
	// need be.
	verifyNow(ctx context.Context, m Meta) error
}

// authTransport wraps memberlist's UDP/TCP transport so that everything
// memberlist receives comes from a proven holder of a verified key:
//
//   - Packets carry a signed header (see packet.go); the packet pump, the
//     one goroutine that reads the inner transport's packets, drops those
//     that do not authenticate before memberlist sees them.
//   - Streams run over TLS 1.3 with the node keys (mutual, gossipALPN); after
//     the handshake each side sends its signed Meta, which must be signed by
//     the key the peer proved, and a peer not yet verified is verified
//     (Config.Verify) before memberlist reads a byte from it. That is how a
//     joiner's first contact is accepted: its push/pull stream proves its key
//     and waits for its verification.
//
// TLS for streams rather than a signed first message: push/pull streams
// carry the whole membership, and only TLS protects all of it (integrity,
// and no splicing into an authenticated connection). One TLS 1.3 handshake
// per stream is cheap at memberlist's rate of one push/pull per member every
// 15 to 30 s.
type authTransport struct {
	inner     *memberlist.NetTransport
	id        *identity.Identity
	creds     *link.Credentials
	trust     trustStore
	localMeta func() []byte
	skew      time.Duration
	// verifyTimeout is how long an incoming stream may spend on verifying
	// its peer, on top of streamHandshakeTimeout.
	verifyTimeout time.Duration
	refusals      *refusalCounters
	log           *zap.Logger

	// maxSenders bounds the replay windows kept (one per verified sender).
	maxSenders int
	// replay holds the replay windows, owned by the packet pump goroutine.
	replay map[identity.NodeID]*replayWindow

	lastTime atomic.Int64 // the last packet time sent, Unix ns
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	pending  chan struct{} // a slot per incoming stream in its handshake

	ctx      context.Context // cancelled by Shutdown
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	shutOnce sync.Once
	shutErr  error
}

var _ memberlist.NodeAwareTransport = (*authTransport)(nil)

func newAuthTransport(inner *memberlist.NetTransport, cfg Config, trust trustStore, localMeta func() []byte, refusals *refusalCounters, log *zap.Logger) *authTransport {
	t := &authTransport{
		inner:         inner,
		id:            cfg.Creds.ID(),
		creds:         cfg.Creds,
		trust:         trust,
		localMeta:     localMeta,
		skew:          cfg.ClockSkew,
		verifyTimeout: cfg.VerifyTimeout,
		refusals:      refusals,
		log:           log,
		maxSenders:    cfg.VerifyCache,
		replay:        make(map[identity.NodeID]*replayWindow),
		packetCh:      make(chan *memberlist.Packet),
		streamCh:      make(chan net.Conn),
		pending:       make(chan struct{}, cfg.MaxPendingStreams),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.wg.Add(2)
	go t.packetPump()
	go t.streamPump()
	return t
}

// FinalAdvertiseAddr implements memberlist.Transport.
func (t *authTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

// WriteTo implements memberlist.Transport.
func (t *authTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport: it signs b.
func (t *authTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	p, err := sealPacket(t.id, t.nextTime(), b)
	if err != nil {
		return time.Time{}, err
	}
	return t.inner.WriteToAddress(p, a)
}

// nextTime returns the time for the next packet: the clock, or one
// nanosecond past the last packet's time if the clock has not moved on, so
// that no two packets share a time (the replay filter would drop the second).
func (t *authTransport) nextTime() int64 {
	for {
		last := t.lastTime.Load()
		ts := max(time.Now().UnixNano(), last+1)
		if t.lastTime.CompareAndSwap(last, ts) {
			return ts
		}
	}
}

// PacketCh implements memberlist.Transport.
func (t *authTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// StreamCh implements memberlist.Transport.
func (t *authTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// packetPump authenticates every packet the inner transport receives and
// passes on the payloads of those that authenticate.
func (t *authTransport) packetPump() {
	defer t.wg.Done()
	for {
		select {
		case <-t.ctx.Done():
			return
		case p := <-t.inner.PacketCh():
			if !t.authenticate(p) {
				continue
			}
			select {
			case t.packetCh <- p:
			case <-t.ctx.Done():
				return
			}
		}
	}
}

// authenticate checks p and, if it authenticates, replaces its buffer with
// the payload. It runs only on the packet pump.
func (t *authTransport) authenticate(p *memberlist.Packet) bool {
	h, signed, payload, sig, err := parsePacket(p.Buf)
	if err != nil {
		t.refusals.refuse(reasonPacketMalformed, zap.Stringer("from", p.From), zap.Error(err))
		return false
	}
	now := p.Timestamp.UnixNano()
	if d := time.Duration(h.time - now); d > t.skew || d < -t.skew {
		t.refusals.refuse(reasonPacketClock, zap.Stringer("from", p.From), zap.String("sender", h.from.String()), zap.Duration("offset", d))
		return false
	}
	// The cheap checks come before the signature, so that a stranger's
	// flood costs a map look-up per packet, not a signature check.
	pub, ok := t.trust.key(h.from)
	if !ok {
		t.refusals.refuse(reasonPacketUnknown, zap.Stringer("from", p.From), zap.String("sender", h.from.String()))
		return false
	}
	if err := identity.VerifyContext(h.from, pub, packetContext, signed, sig); err != nil {
		t.refusals.refuse(reasonPacketSignature, zap.Stringer("from", p.From), zap.String("sender", h.from.String()))
		return false
	}
	w := t.replay[h.from]
	if w == nil {
		t.pruneReplay(now)
		w = &replayWindow{}
		t.replay[h.from] = w
	}
	if !w.admit(h.time, now) {
		t.refusals.refuse(reasonPacketReplay, zap.Stringer("from", p.From), zap.String("sender", h.from.String()))
		return false
	}
	p.Buf = payload
	return true
}

// pruneReplay makes room for one more replay window: it forgets senders
// silent for longer than the clock skew (their old packets are refused by
// time anyway), and if that is not enough, an arbitrary one.
func (t *authTransport) pruneReplay(now int64) {
	if len(t.replay) < t.maxSenders {
		return
	}
	for id, w := range t.replay {
		if time.Duration(now-w.last) > t.skew {
			delete(t.replay, id)
		}
	}
	for id := range t.replay {
		if len(t.replay) < t.maxSenders {
			break
		}
		delete(t.replay, id)
	}
}

// DialTimeout implements memberlist.Transport.
func (t *authTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport: it opens a
// TLS stream to a.Addr, expecting the node a.Name when memberlist knows it
// (not when joining by address), exchanges signed metadata and verifies the
// peer if it is new.
func (t *authTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	var want identity.NodeID
	if a.Name != "" {
		var err error
		if want, err = identity.ParseNodeID(a.Name); err != nil {
			return nil, fmt.Errorf("gossip: dial %s: %w", a.Addr, err)
		}
	}
	// The TCP connection gets memberlist's timeout; the handshake on it at
	// least streamHandshakeTimeout: memberlist's local profile gives a stream
	// one second, which a TLS handshake and a verification dial on a loaded
	// machine can exceed. memberlist sets its own deadline for what follows.
	deadline := time.Now().Add(max(timeout, streamHandshakeTimeout))
	raw, err := t.inner.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	cfg := t.creds.ClientConfig(want)
	cfg.NextProtos = []string{gossipALPN}
	tc := tls.Client(raw, cfg)
	ctx, cancel := context.WithDeadline(t.ctx, deadline)
	defer cancel()
	if err := t.handshake(ctx, tc, deadline); err != nil {
		tc.Close()
		return nil, fmt.Errorf("gossip: dial %s: %w", a.Addr, err)
	}
	return tc, nil
}

// streamPump hands every incoming stream to a handshake goroutine, at most
// MaxPendingStreams at once.
func (t *authTransport) streamPump() {
	defer t.wg.Done()
	for {
		select {
		case <-t.ctx.Done():
			return
		case raw := <-t.inner.StreamCh():
			select {
			case t.pending <- struct{}{}:
			default:
				t.refusals.refuse(reasonStreamBusy, zap.Stringer("from", raw.RemoteAddr()))
				raw.Close()
				continue
			}
			t.wg.Add(1)
			go t.accept(raw)
		}
	}
}

// accept authenticates one incoming stream and hands it to memberlist.
func (t *authTransport) accept(raw net.Conn) {
	defer t.wg.Done()
	defer func() { <-t.pending }()
	cfg := t.creds.ServerConfig()
	cfg.NextProtos = []string{gossipALPN}
	tc := tls.Server(raw, cfg)
	deadline := time.Now().Add(streamHandshakeTimeout + t.verifyTimeout)
	ctx, cancel := context.WithDeadline(t.ctx, deadline)
	defer cancel()
	if err := t.handshake(ctx, tc, deadline); err != nil {
		tc.Close()
		return
	}
	select {
	case t.streamCh <- tc:
	case <-t.ctx.Done():
		tc.Close()
	}
}

// handshake runs the TLS handshake on tc, exchanges signed metadata and
// verifies the peer, with deadline on the connection and ctx for the
// verification. On success tc has no deadline left. Failures are counted.
func (t *authTransport) handshake(ctx context.Context, tc *tls.Conn, deadline time.Time) error {
	remote := tc.RemoteAddr().String()
	_ = tc.SetDeadline(deadline)
	if err := tc.HandshakeContext(ctx); err != nil {
		t.refusals.refuse(reasonStreamHandshake, zap.String("remote", remote), zap.Error(err))
		return err
	}
	cs := tc.ConnectionState()
	if cs.NegotiatedProtocol != gossipALPN {
		err := fmt.Errorf("%w: protocol %q", ErrBadPacket, cs.NegotiatedProtocol)
		t.refusals.refuse(reasonStreamHandshake, zap.String("remote", remote), zap.Error(err))
		return err
	}
	peer, err := link.PeerID(cs)
	if err != nil {
		t.refusals.refuse(reasonStreamHandshake, zap.String("remote", remote), zap.Error(err))
		return err
	}
	// Both sides write first, then read: the records are small enough for
	// the socket buffers, so neither waits on the other.
	if err := writeMetaFrame(tc, t.localMeta()); err != nil {
		t.refusals.refuse(reasonStreamHandshake, zap.String("remote", remote), zap.Error(err))
		return err
	}
	b, err := readMetaFrame(tc)
	if err != nil {
		t.refusals.refuse(reasonStreamHandshake, zap.String("remote", remote), zap.Error(err))
		return err
	}
	m, err := DecodeMeta(b)
	if err == nil && m.NodeID != peer {
		err = fmt.Errorf("%w: metadata of %s on a stream from %s", ErrBadPacket, m.NodeID.Short(), peer.Short())
	}
	if err != nil {
		t.refusals.refuse(reasonStreamMeta, zap.String("remote", remote), zap.String("peer", peer.String()), zap.Error(err))
		return err
	}
	if err := t.trust.verifyNow(ctx, m); err != nil {
		t.refusals.refuse(reasonStreamUnverified, zap.String("remote", remote), zap.String("peer", peer.String()), zap.Error(err))
		return err
	}
	return tc.SetDeadline(time.Time{})
}

// writeMetaFrame writes b as a metadata frame: a 2-byte big-endian length,
// then the bytes.
func writeMetaFrame(w io.Writer, b []byte) error {
	if len(b) > MaxMetaSize {
		return fmt.Errorf("%w: %d bytes", ErrMetaTooLarge, len(b))
	}
	frame := make([]byte, 2+len(b))
	binary.BigEndian.PutUint16(frame, uint16(len(b)))
	copy(frame[2:], b)
	_, err := w.Write(frame)
	return err
}

// readMetaFrame reads one metadata frame, refusing a length over
// MaxMetaSize before reading it.
func readMetaFrame(r io.Reader) ([]byte, error) {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, fmt.Errorf("metadata frame: %w", err)
	}
	size := int(binary.BigEndian.Uint16(n[:]))
	if size > MaxMetaSize {
		return nil, fmt.Errorf("%w: metadata frame of %d bytes, limit %d", ErrBadPacket, size, MaxMetaSize)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("metadata frame: %w", err)
	}
	return b, nil
}

// Shutdown implements memberlist.Transport. The inner transport shuts down
// first, while the pumps still drain it (its listeners block on unbuffered
// channels); then the pumps and handshakes stop. It is idempotent.
func (t *authTransport) Shutdown() error {
	t.shutOnce.Do(func() {
		t.shutErr = t.inner.Shutdown()
		t.cancel()
		t.wg.Wait()
	})
	return t.shutErr
}
