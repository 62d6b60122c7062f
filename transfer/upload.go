package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/wire"
	"go.uber.org/zap"
)

// blockSize is the piece data carried by one PieceData message. With the
// CBOR and envelope overhead (under 64 bytes) a message stays below 64 KiB:
// pion's data channel read buffer is 65535 bytes, and a larger message would
// make it grow its buffer and copy.
const blockSize = 60 << 10

// uploadIdleTimeout ends an upload session that has had no request for this
// long, so that a peer cannot hold an upload slot without using it. A
// downloader always has requests in flight while it still needs the source.
const uploadIdleTimeout = 2 * time.Minute

// upload is one upload session: the answering side of a transfer.
type upload struct {
	e    *Engine
	log  *zap.Logger
	ch   *channel
	id   content.ID
	m    content.Manifest
	file *os.File
	// buf holds one piece, reused for every request.
	buf []byte
	// name, started and sent are for Uploads: the file's name here, when
	// the slot was taken, and the piece bytes served so far.
	peer    identity.NodeID
	name    string
	started time.Time
	sent    atomic.Int64
}

// runUpload owns one upload session from accepted offer, received at
// received, to close.
func (e *Engine) runUpload(sess *session, offer wire.Signal, received time.Time) {
	defer e.wg.Done()
	defer e.endSession(sess)
	log := e.log.With(zap.String("peer", offer.From.Short()), zap.String("content", content.ID(offer.Content).String()[:16]))
	id := content.ID(offer.Content)

	// Who asks is the offer's signer: the signature was checked before the
	// offer got here, and the answer's DTLS fingerprint ties the channel
	// to it. A PeerSource decides for that node on this node's side.
	ps, perPeer := e.cfg.Source.(PeerSource)
	if perPeer {
		if err := ps.Allowed(offer.From); err != nil {
			e.stats.uploadsAccepted.Add(-1)
			reason := reasonNotShared
			if errors.Is(err, ErrBlocked) {
				reason = reasonBlocked
			}
			log.Debug("offer refused by the peer's trust", zap.Error(err))
			e.refuse(offer, reason)
			return
		}
	}
	if offer.Content == wire.BrowseContent {
		if !perPeer {
			e.stats.uploadsAccepted.Add(-1)
			e.refuse(offer, reasonNotShared)
			return
		}
		e.runBrowse(sess, offer, received, ps)
		return
	}
	var (
		m    content.Manifest
		path string
		err  error
	)
	if perPeer {
		m, path, err = ps.ManifestFor(offer.From, id)
	} else {
		m, path, err = e.cfg.Source.Manifest(id)
	}
	var f *os.File
	if err == nil {
		f, err = os.Open(path)
	}
	if err != nil {
		log.Debug("offer for content not shared", zap.Error(err))
		e.stats.uploadsAccepted.Add(-1)
		e.refuse(offer, reasonNotShared)
		return
	}
	defer f.Close()

	// This node's own name for the file, sent with the answer: the name a
	// downloader can trust came from a sharer rather than from a vote.
	name := boundName(filepath.Base(path))
	ch, err := e.accept(e.ctx, sess, offer, received, name, log)
	if err != nil {
		if errors.Is(err, ErrConnect) && e.ctx.Err() == nil {
			e.refused.pendingExpired.Add(1)
		}
		log.Debug("upload not connected", zap.Error(err))
		return
	}
	defer ch.close()
	if why := e.takeSlot(sess); why != "" {
		// The slots filled while this session connected (or the peer's
		// share did). Tell the peer on the channel (it is live now), which
		// its download reads as a refusal, and let it try another source.
		switch {
		case why == reasonBusy:
			e.refused.busyAtOpen.Add(1)
			e.stats.uploadsRefused.Add(1)
		case why == reasonPeerBusy:
			e.refused.peerBusy.Add(1)
			e.stats.uploadsRefused.Add(1)
		default:
			e.refused.queued.Add(1)
		}
		ctx, cancel := context.WithTimeout(e.ctx, signalTimeout)
		_ = ch.sendMsg(ctx, wire.TypeTransferError, wire.TransferError{Content: id, Reason: why})
		cancel()
		log.Debug("upload connected with no slot for it; refused", zap.String("reason", why))
		return
	}
	// At Info, unlike the rest of the session: which uploads needed a
	// relay, and how long connecting took, is what an operator looks for
	// when transfers are slow or a supernode's relay is busy.
	log.Info("upload connected", ch.connInfo().logFields()...)
	u := &upload{e: e, log: log, ch: ch, id: id, m: m, file: f, peer: offer.From, name: name,
		started: time.Now()}
	e.mu.Lock()
	sess.up = u
	e.mu.Unlock()
	err = u.serve(e.ctx, sess)
	switch {
	case err == nil, errors.Is(err, ErrPeerClosed), errors.Is(err, context.Canceled):
		log.Debug("upload ended", zap.Error(err))
	default:
		log.Info("upload ended", zap.Error(err))
	}
}

// serve answers requests, in the order they arrive, until the peer closes.
func (u *upload) serve(ctx context.Context, sess *session) error {
	idle := time.NewTimer(uploadIdleTimeout)
	defer idle.Stop()
	for {
		select {
		case b := <-u.ch.msgs:
			if err := u.handle(ctx, b); err != nil {
				return err
			}
			idle.Reset(uploadIdleTimeout)
		case <-idle.C:
			return fmt.Errorf("%w: idle for %v", ErrPeerClosed, uploadIdleTimeout)
		case s := <-sess.inbox:
			if s.Kind == wire.SignalClose {
				return ErrPeerClosed
			}
		case <-u.ch.dead:
			return ErrPeerClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (u *upload) handle(ctx context.Context, b []byte) error {
	env, err := wire.Unmarshal(b)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	switch env.Type {
	case wire.TypeManifestRequest:
		var req wire.ManifestRequest
		if err := env.Decode(&req); err != nil {
			return fmt.Errorf("%w: %v", ErrProtocol, err)
		}
		return u.sendManifest(ctx, req)
	case wire.TypePieceRequest:
		var req wire.PieceRequest
		if err := env.Decode(&req); err != nil {
			return fmt.Errorf("%w: %v", ErrProtocol, err)
		}
		return u.sendPiece(ctx, req)
	default:
		return fmt.Errorf("%w: unexpected %s from downloader", ErrProtocol, env.Type)
	}
}

// transferError tells the peer why a request fails.
func (u *upload) transferError(ctx context.Context, reason string) error {
	return u.ch.sendMsg(ctx, wire.TypeTransferError, wire.TransferError{Content: u.id, Reason: reason})
}

// sendManifest answers with up to MaxManifestHashes piece hashes from
// req.First on.
func (u *upload) sendManifest(ctx context.Context, req wire.ManifestRequest) error {
	n := uint32(u.m.PieceCount())
	if content.ID(req.Content) != u.id || req.First > n || (req.First == n && n != 0) {
		return u.transferError(ctx, "bad manifest request")
	}
	count := min(req.Count, n-req.First, wire.MaxManifestHashes)
	hashes := make([]byte, 0, 32*count)
	for _, h := range u.m.Pieces[req.First : req.First+count] {
		hashes = append(hashes, h[:]...)
	}
	return u.ch.sendMsg(ctx, wire.TypeManifest, wire.Manifest{
		Content: u.id, Size: u.m.Size, PieceSize: u.m.PieceSize,
		PieceCount: n, First: req.First, Hashes: hashes,
	})
}

// sendPiece reads a piece, checks it against the manifest and sends it as
// blocks. A piece that does not match (the file changed on disk since it
// was hashed) is answered with TransferError "stale", never with the data.
func (u *upload) sendPiece(ctx context.Context, req wire.PieceRequest) error {
	i := int(req.Index)
	if content.ID(req.Content) != u.id || i >= u.m.PieceCount() {
		return u.transferError(ctx, "bad piece request")
	}
	n := u.m.PieceLen(i)
	if cap(u.buf) < n {
		u.buf = make([]byte, u.m.PieceSize)
	}
	data := u.buf[:n]
	if _, err := u.file.ReadAt(data, u.m.PieceOffset(i)); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
		u.e.stats.stalePieces.Add(1)
		u.log.Warn("shared file unreadable", zap.Int("piece", i), zap.Error(err))
		return u.transferError(ctx, "stale")
	}
	if err := u.m.VerifyPiece(i, data); err != nil {
		u.e.stats.stalePieces.Add(1)
		u.log.Warn("shared file changed on disk; not serving it", zap.Int("piece", i), zap.Error(err))
		return u.transferError(ctx, "stale")
	}
	if u.e.corruptPiece != nil {
		u.e.corruptPiece(i, data)
	}
	for off := 0; off < n; off += blockSize {
		end := min(off+blockSize, n)
		if err := waitBytes(ctx, u.e.up, end-off); err != nil {
			return err
		}
		if err := u.ch.sendMsg(ctx, wire.TypePieceData, wire.PieceData{
			Index: req.Index, Offset: uint32(off), Data: data[off:end],
		}); err != nil {
			return err
		}
		// By block, so that a page showing the upload's rate sees it
		// move smoothly even on a slow link.
		u.sent.Add(int64(end - off))
	}
	// Bytes first: a reader that sees the piece served sees its bytes.
	u.e.stats.countBytes(true, u.ch.connInfo().Path, n)
	u.e.stats.piecesServed.Add(1)
	return nil
}
