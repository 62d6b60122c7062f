package transfer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/textsafe"
	"github.com/canopy-p2p/canopy/wire"
	"go.uber.org/zap"
)

// PeerSource is a PieceSource that decides, on this node's side, what each
// peer may have: the node's library with its contacts' trust. An engine
// whose Source is one asks it about every offer, by the offer's signer
// (authenticated by the signal's signature, and end to end by the DTLS
// fingerprint the signature covers), and serves browse sessions from it.
// Its methods run on session goroutines, possibly concurrently.
type PeerSource interface {
	PieceSource
	// Allowed says whether peer may open a session at all. An error
	// wrapping ErrBlocked refuses it with the reason "blocked".
	Allowed(peer identity.NodeID) error
	// ManifestFor is Manifest for one peer: a content that peer may not
	// have is an error, as if it were not shared.
	ManifestFor(peer identity.NodeID, id content.ID) (content.Manifest, string, error)
	// List returns the page of what peer may browse that follows req.After,
	// within the bounds of wire.CheckListing and with a CBOR body of at
	// most wire.MaxListingBody bytes.
	List(peer identity.NodeID, req wire.ListRequest) (wire.Listing, error)
}

// ErrBlocked reports a peer this node refuses everything: PeerSource.Allowed
// returns it for a blocked node, and Browse and Download return it (wrapped
// in ErrRefused) when a peer refused this node for it.
var ErrBlocked = errors.New("transfer: blocked")

// Bounds of browsing.
const (
	// DefaultMaxBrowses bounds the browse sessions served at once. They
	// hold no upload slot (a listing is a few pages of names, not a file),
	// so they have places of their own.
	DefaultMaxBrowses = 4
	// DefaultBrowseMaxEntries bounds the entries one Browse collects, when
	// the caller names no bound: 20,000 entries of at most 1 KiB each is
	// at most ~20 MiB in the asker's memory, in 79 pages or more.
	DefaultBrowseMaxEntries = 20_000
	// browseSessionMax bounds a browse session on the serving side,
	// whatever the asker does: a listing of 20,000 entries takes under a
	// second on loopback and a few on a slow uplink.
	browseSessionMax = 2 * time.Minute
	// browseIdleTimeout ends a served browse session with no request for
	// this long.
	browseIdleTimeout = 30 * time.Second
	// browsePageTimeout bounds the wait for one page on the asking side.
	browsePageTimeout = 30 * time.Second
)

// reasonBlocked is the refusal a blocked peer hears.
const reasonBlocked = "blocked"

// BrowseResult is what a peer shares with this node.
type BrowseResult struct {
	// Folders are the peer's shared folders this node may see, in the
	// peer's order.
	Folders []wire.ListFolder
	// Files are the files, in the peer's path order.
	Files []BrowsedFile
	// Truncated is set when the listing had more than the entries asked
	// for; Files holds the first ones.
	Truncated bool
	// Pages counts the pages received.
	Pages int
	// Conn is how the peer was reached.
	Conn ConnInfo
}

// BrowsedFile is one file of a browse listing.
type BrowsedFile struct {
	// Folder is the name of the peer's folder holding it, and Path the
	// file's path inside it ('/'-separated, checked to stay inside it).
	Folder, Path string
	Size         int64
	ID           content.ID
}

// Browse asks peer, signalled through the supernodes in peer.Via, for the
// listing of what it shares with this node, page by page over the
// authenticated data channel a download would use, and returns at most
// maxEntries files (zero: DefaultBrowseMaxEntries). A peer that refuses
// returns an error wrapping ErrRefused (and ErrBlocked when it blocked this
// node); a page out of its bounds ends the browse with an error wrapping
// ErrProtocol.
func (e *Engine) Browse(ctx context.Context, peer wire.Source, maxEntries int) (BrowseResult, error) {
	if maxEntries <= 0 {
		maxEntries = DefaultBrowseMaxEntries
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return BrowseResult{}, ErrClosed
	}
	e.wg.Add(1)
	e.mu.Unlock()
	defer e.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(e.ctx, cancel)
	defer stop()

	log := e.log.With(zap.String("peer", peer.Node.Short()), zap.String("session", "browse"))
	ch, err := e.dial(ctx, peer, wire.BrowseContent, log)
	if err != nil {
		if e.ctx.Err() != nil {
			return BrowseResult{}, ErrClosed
		}
		return BrowseResult{}, err
	}
	defer ch.close()
	res := BrowseResult{Conn: ch.connInfo()}
	folders := make(map[string]bool)
	after := ""
	for {
		want := min(maxEntries-len(res.Files)+1, wire.MaxListEntries)
		if err := ch.sendMsg(ctx, wire.TypeListRequest, wire.ListRequest{After: after, Max: uint16(want)}); err != nil {
			return res, err
		}
		page, err := e.readListing(ctx, ch)
		if err != nil {
			return res, err
		}
		res.Pages++
		for _, f := range page.Folders {
			if !folders[f.Name] && len(res.Folders) < wire.MaxListFolders {
				folders[f.Name] = true
				res.Folders = append(res.Folders, f)
			}
		}
		for _, en := range page.Entries {
			if len(res.Files) == maxEntries {
				res.Truncated = true
				return res, nil
			}
			res.Files = append(res.Files, BrowsedFile{Folder: page.Folders[en.Folder].Name, Path: en.Path, Size: en.Size, ID: content.ID(en.ID)})
		}
		if page.Next == "" {
			return res, nil
		}
		if page.Next == after || len(page.Entries) == 0 {
			// A peer that does not move on would keep this loop going.
			return res, fmt.Errorf("%w: a listing page that does not advance", ErrProtocol)
		}
		after = page.Next
	}
}

// readListing waits for one page.
func (e *Engine) readListing(ctx context.Context, ch *channel) (wire.Listing, error) {
	t := time.NewTimer(browsePageTimeout)
	defer t.Stop()
	select {
	case b := <-ch.msgs:
		l, err := wire.DecodeListing(b)
		if refused, ok := errors.AsType[*wire.ListRefusedError](err); ok {
			return l, fmt.Errorf("%w: %s", ErrSourceFailed, textsafe.Bound(refused.Reason, maxReasonLen))
		}
		if err != nil {
			return l, fmt.Errorf("%w: %v", ErrProtocol, err)
		}
		return l, nil
	case <-ch.dead:
		return wire.Listing{}, ErrPeerClosed
	case <-t.C:
		return wire.Listing{}, fmt.Errorf("%w: no listing page within %v", ErrPeerClosed, browsePageTimeout)
	case <-ctx.Done():
		return wire.Listing{}, ctx.Err()
	}
}

// runBrowse serves one browse session from its accepted offer to its end.
func (e *Engine) runBrowse(sess *session, offer wire.Signal, received time.Time, ps PeerSource) {
	log := e.log.With(zap.String("peer", offer.From.Short()), zap.String("session", "browse"))
	ch, err := e.accept(e.ctx, sess, offer, received, "", log)
	if err != nil {
		if errors.Is(err, ErrConnect) && e.ctx.Err() == nil {
			e.refused.pendingExpired.Add(1)
		}
		log.Debug("browse not connected", zap.Error(err))
		return
	}
	defer ch.close()
	if !e.takeBrowse(sess) {
		e.refused.busyAtOpen.Add(1)
		ctx, cancel := context.WithTimeout(e.ctx, signalTimeout)
		_ = ch.sendMsg(ctx, wire.TypeTransferError, wire.TransferError{Reason: reasonBusy})
		cancel()
		return
	}
	e.stats.browsesServed.Add(1)
	ctx, cancel := context.WithTimeout(e.ctx, browseSessionMax)
	defer cancel()
	err = e.serveBrowse(ctx, sess, ch, offer.From, ps)
	log.Debug("browse ended", zap.Error(err))
}

// serveBrowse answers list requests in order until the asker closes.
func (e *Engine) serveBrowse(ctx context.Context, sess *session, ch *channel, peer identity.NodeID, ps PeerSource) error {
	idle := time.NewTimer(browseIdleTimeout)
	defer idle.Stop()
	for {
		select {
		case b := <-ch.msgs:
			if err := e.answerList(ctx, ch, peer, ps, b); err != nil {
				return err
			}
			idle.Reset(browseIdleTimeout)
		case <-idle.C:
			return fmt.Errorf("%w: idle for %v", ErrPeerClosed, browseIdleTimeout)
		case s := <-sess.inbox:
			if s.Kind == wire.SignalClose {
				return ErrPeerClosed
			}
		case <-ch.dead:
			return ErrPeerClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// answerList answers one list request. A request that breaks the protocol
// ends the session (and only it); the source failing is told to the asker.
func (e *Engine) answerList(ctx context.Context, ch *channel, peer identity.NodeID, ps PeerSource, b []byte) error {
	env, err := wire.Unmarshal(b)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	if env.Type != wire.TypeListRequest {
		return fmt.Errorf("%w: unexpected %s from a browser", ErrProtocol, env.Type)
	}
	var req wire.ListRequest
	if err := env.Decode(&req); err != nil {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	if err := wire.CheckListRequest(&req); err != nil {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	if req.Max == 0 || req.Max > wire.MaxListEntries {
		req.Max = wire.MaxListEntries
	}
	page, err := ps.List(peer, req)
	if err != nil {
		reason := "listing failed"
		if errors.Is(err, ErrBlocked) {
			reason = reasonBlocked
		}
		_ = ch.sendMsg(ctx, wire.TypeTransferError, wire.TransferError{Reason: reason})
		return err
	}
	out, err := wire.New(wire.TypeListing, &page)
	if err != nil {
		return err
	}
	msg, err := wire.Marshal(out)
	if err != nil {
		return err
	}
	if len(msg) > wire.MaxListingMessage {
		// The source broke its contract (a body past MaxListingBody that
		// did not compress): say so rather than send what the peer refuses.
		_ = ch.sendMsg(ctx, wire.TypeTransferError, wire.TransferError{Reason: "listing too large"})
		return fmt.Errorf("transfer: listing page of %d bytes exceeds %d", len(msg), wire.MaxListingMessage)
	}
	if e.corruptListing != nil {
		msg = e.corruptListing(msg)
	}
	return ch.send(ctx, msg)
}

// takeBrowse moves a browse session whose data channel opened from its
// pending place to a browse place, or reports false when all are taken.
func (e *Engine) takeBrowse(sess *session) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.releasePending(sess)
	if e.browses >= e.cfg.MaxBrowses {
		return false
	}
	sess.browse = true
	e.browses++
	return true
}
