package leaf

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/library"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/wire"
)

// uploadBatch is how many files one IndexUpdate carries: about 100 KiB of CBOR
// before compression, far under the payload limit.
const uploadBatch = 1000

// attachment is a link to one supernode.
type attachment struct {
	conn  *link.Conn
	addr  string
	since time.Time
	kick  chan struct{} // capacity 1: "the library changed, send the delta"

	mu       sync.Mutex // guards the fields below
	files    int
	indexErr string
	// guidance is the supernode's latest view of the ring.
	guidance   wire.Guidance
	guidanceAt time.Time
	// ice is the supernode's STUN/TURN services and our credentials.
	ice wire.ICEServers

	// successors and leavingSince are guarded by Leaf.mu: the supernode's
	// emergency successors, and when it started handing the leaf over.
	successors   []wire.PeerInfo
	leavingSince time.Time
}

func (a *attachment) kickUpload() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *attachment) acked(ack wire.IndexAck) {
	a.mu.Lock()
	a.files, a.indexErr = ack.Files, ack.Error
	a.mu.Unlock()
}

func (a *attachment) describe() Attachment {
	a.mu.Lock()
	defer a.mu.Unlock()
	return Attachment{ID: a.conn.Peer(), Control: a.addr, Since: a.since, Files: a.files, IndexError: a.indexErr}
}

// upload sends the whole index once, then deltas whenever the library changes,
// until the link closes. It owns the attachment's uploaded revision.
func (l *Leaf) upload(a *attachment) {
	defer l.wg.Done()
	lib := l.cfg.Library
	if lib == nil {
		return
	}
	ctx, cancel := context.WithCancel(l.ctx)
	defer cancel()
	go func() {
		select {
		case <-a.conn.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	// gen is the library's access generation the supernode's copy
	// reflects: when it changes (a folder made private, or shared with
	// everyone), the supernode gets the whole public index again, since no
	// change log entry says which files left it.
	gen := lib.AccessGen()
	rev, err := l.fullUpload(ctx, a.conn, lib)
	for err == nil {
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		}
		if g := lib.AccessGen(); g != gen {
			gen = g
			rev, err = l.fullUpload(ctx, a.conn, lib)
			continue
		}
		rev, err = l.deltaUpload(ctx, a.conn, lib, rev)
	}
	if ctx.Err() == nil {
		l.log.Warn("index upload failed", zap.String("supernode", a.conn.Peer().Short()), zap.Error(err))
		a.conn.Close("index upload failed: " + err.Error())
	}
}

// fullUpload replaces what the supernode holds for us with the whole library.
func (l *Leaf) fullUpload(ctx context.Context, c *link.Conn, lib *library.Library) (int64, error) {
	// Snapshot pairs the entries with the revision they match, so that the
	// next delta continues exactly where this upload ends.
	entries, rev, err := lib.Snapshot()
	if err != nil {
		return 0, err
	}
	// Only files shared with everyone enter a supernode's index: a folder
	// for contacts must not be found by strangers, nor its names known to
	// the supernodes.
	files := make([]wire.IndexFile, 0, len(entries))
	for _, e := range entries {
		if lib.Public(e.Path) {
			files = append(files, wire.IndexFile{ID: e.ID, Name: indexName(e.Name), Size: e.Size})
		}
	}
	first := true
	for first || len(files) > 0 {
		n := min(len(files), uploadBatch)
		u := wire.IndexUpdate{Reset: first, Add: files[:n], Rev: rev, More: n < len(files)}
		if err := send(ctx, c, &u); err != nil {
			return 0, err
		}
		files, first = files[n:], false
	}
	l.log.Debug("index uploaded", zap.String("supernode", c.Peer().Short()), zap.Int("files", len(entries)), zap.Int64("rev", rev))
	return rev, nil
}

// deltaUpload sends the changes since rev, or the whole library when the
// change log no longer reaches back that far.
func (l *Leaf) deltaUpload(ctx context.Context, c *link.Conn, lib *library.Library, rev int64) (int64, error) {
	changes, now, err := lib.Changes(rev)
	if errors.Is(err, library.ErrRevisionTooOld) {
		return l.fullUpload(ctx, c, lib)
	}
	if err != nil {
		return rev, err
	}
	if len(changes) == 0 {
		return now, nil
	}
	var add, remove []wire.IndexFile
	for _, ch := range changes {
		// A change to a file that is not public is not the supernode's
		// business (its removal would name it too). A file whose folder
		// changed visibility since is covered by the full upload that the
		// access generation asks for.
		if !lib.Public(ch.Entry.Path) {
			continue
		}
		f := wire.IndexFile{ID: ch.Entry.ID, Name: indexName(ch.Entry.Name), Size: ch.Entry.Size}
		if ch.Op == library.OpRemove {
			remove = append(remove, f)
		} else {
			add = append(add, f)
		}
	}
	for len(add)+len(remove) > 0 {
		nr := min(len(remove), uploadBatch)
		na := min(len(add), uploadBatch-nr)
		u := wire.IndexUpdate{Add: add[:na], Remove: remove[:nr], Rev: now, More: na+nr < len(add)+len(remove)}
		if err := send(ctx, c, &u); err != nil {
			return rev, err
		}
		add, remove = add[na:], remove[nr:]
	}
	return now, nil
}

func send(ctx context.Context, c *link.Conn, u *wire.IndexUpdate) error {
	e, err := wire.New(wire.TypeIndexUpdate, u)
	if err != nil {
		return err
	}
	return c.SendWait(ctx, e)
}

// indexName is name as the leaf uploads it: at most wire.MaxIndexName bytes
// (wire.CutName). The supernode refuses a longer name, and with it the batch
// that carries it.
func indexName(name string) string { return wire.CutName(name, wire.MaxIndexName) }
