package transfer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/textsafe"
	"github.com/canopy-p2p/canopy/wire"
	"go.uber.org/zap"
)

// progressInterval is the least time between two Progress calls.
const progressInterval = 100 * time.Millisecond

// download is the shared state of one Download: the verified manifest and
// the piece scheduler that every source goroutine claims work from.
type download struct {
	e      *Engine
	id     content.ID
	file   *os.File
	log    *zap.Logger
	window int
	// progress receives a token when a piece was written.
	progress chan struct{}
	// complete is closed when the last piece is written.
	complete chan struct{}

	mu sync.Mutex // guards the fields below
	// m is the verified manifest; nil until a source delivered one.
	m *content.Manifest
	// done marks written pieces.
	done []bool
	// requeued holds pieces given back by sources that dropped; they are
	// claimed before next.
	requeued []int
	// next is the lowest piece never claimed. Claiming in order keeps the
	// writes sequential and the scheduler state O(sources), not O(pieces).
	next int
	have int64
	// held is the part of have the part file held at the start (a resumed
	// download): not fetched, so not part of the rate.
	held int64
	// pieces counts written pieces.
	pieces int
	// resume is the request's Resume, or nil; written holds the pieces
	// written since the last sync of a resumable download.
	resume  *Resume
	written []int
	// reports are the sources' reports so far, by source index.
	reports []SourceReport
	// wake is closed (and replaced) when work appears: a manifest, a
	// requeued piece, completion. Idle sources wait on it.
	wake chan struct{}
}

// manifest returns the verified manifest, or nil.
func (d *download) manifest() *content.Manifest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.m
}

func (d *download) broadcast() {
	close(d.wake)
	d.wake = make(chan struct{})
}

// setManifest adopts a verified manifest unless one is adopted already.
//
// held marks pieces the part file holds already (a resumed download). A
// manifest from a source is handed to Resume.OnManifest first, under d.mu,
// so that of two sources delivering at once only one is adopted and
// reported.
func (d *download) setManifest(m content.Manifest, held []bool, fromSource bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m != nil {
		return nil
	}
	if fromSource && d.resume != nil && d.resume.OnManifest != nil {
		if err := d.resume.OnManifest(m); err != nil {
			return localError{fmt.Errorf("transfer: record the manifest: %w", err)}
		}
	}
	// Sized up front: WriteAt then never extends the file piece by piece,
	// and a short disk fails here rather than midway (on file systems that
	// allocate eagerly).
	if err := d.file.Truncate(m.Size); err != nil {
		return localError{fmt.Errorf("transfer: size %s: %w", d.file.Name(), err)}
	}
	d.m = &m
	d.done = make([]bool, m.PieceCount())
	if len(held) == len(d.done) {
		for i, h := range held {
			if h {
				d.done[i] = true
				d.have += int64(m.PieceLen(i))
				d.pieces++
			}
		}
		d.held = d.have
	}
	if d.pieces == len(d.done) {
		close(d.complete)
	}
	d.broadcast()
	return nil
}

// claim hands out the next piece to fetch. When there is none it returns
// -1 and a channel that is closed when that may have changed, and whether
// the download is complete.
func (d *download) claim() (int, <-chan struct{}, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		return -1, d.wake, false
	}
	if n := len(d.requeued); n > 0 {
		i := d.requeued[n-1]
		d.requeued = d.requeued[:n-1]
		return i, nil, false
	}
	// Pieces held from an earlier run are skipped.
	for d.next < len(d.done) && d.done[d.next] {
		d.next++
	}
	if d.next < len(d.done) {
		d.next++
		return d.next - 1, nil, false
	}
	return -1, d.wake, d.pieces == len(d.done)
}

// release gives back pieces a source claimed but did not deliver.
func (d *download) release(pieces []int) {
	if len(pieces) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, i := range pieces {
		if !d.done[i] {
			d.requeued = append(d.requeued, i)
		}
	}
	d.broadcast()
}

// pieceDone records a verified, written piece, delivered by the source
// with index src.
func (d *download) pieceDone(i, n, src int) {
	d.mu.Lock()
	d.done[i] = true
	d.have += int64(n)
	d.pieces++
	d.reports[src].Pieces++
	d.reports[src].Bytes += int64(n)
	if d.resume != nil {
		d.written = append(d.written, i)
	}
	if d.pieces == len(d.done) {
		close(d.complete)
		d.broadcast()
	}
	d.mu.Unlock()
	select {
	case d.progress <- struct{}{}:
	default:
	}
}

// isComplete reports whether every piece is written.
func (d *download) isComplete() bool {
	select {
	case <-d.complete:
		return true
	default:
		return false
	}
}

func (d *download) heldBytes() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.held
}

func (d *download) snapshot() (have, total int64, pieces, count int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m != nil {
		total, count = d.m.Size, d.m.PieceCount()
	}
	return d.have, total, d.pieces, count
}

// addReport registers a new source and returns its index.
func (d *download) addReport(node identity.NodeID) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reports = append(d.reports, SourceReport{Node: node})
	return len(d.reports) - 1
}

// setConn records how source src is reached, once its channel opened.
func (d *download) setConn(src int, ci ConnInfo, name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reports[src].Conn, d.reports[src].Name = ci, name
}

// endReport replaces source src's report with its final one.
func (d *download) endReport(src int, r SourceReport) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reports[src] = r
}

func (d *download) reportOf(src int) SourceReport {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reports[src]
}

func (d *download) reportsSnapshot() []SourceReport {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]SourceReport(nil), d.reports...)
}

// sync makes the pieces written so far durable and hands them to
// Resume.Synced: the list is taken before the fsync, so every piece in it
// was written before the fsync began.
func (d *download) sync() error {
	d.mu.Lock()
	pieces := d.written
	d.written = nil
	d.mu.Unlock()
	if len(pieces) == 0 {
		return nil
	}
	if err := d.file.Sync(); err != nil {
		return localError{fmt.Errorf("transfer: sync %s: %w", d.file.Name(), err)}
	}
	if d.resume.Synced != nil {
		if err := d.resume.Synced(pieces); err != nil {
			return localError{fmt.Errorf("transfer: record pieces: %w", err)}
		}
	}
	return nil
}

// localError marks a failure of this node (the disk), which ends the whole
// download instead of dropping a source.
type localError struct{ err error }

func (l localError) Error() string { return l.err.Error() }
func (l localError) Unwrap() error { return l.err }

// isBad reports whether a source error means the source sent bad data.
func isBad(err error) bool {
	return errors.Is(err, ErrBadPiece) || errors.Is(err, ErrBadManifest) || errors.Is(err, ErrProtocol)
}

// Download fetches a file from its sources, verifying every piece before it
// is written, and saves it in req.OutDir. See the package comment for the
// protocol. It returns when the file is in place, when every source failed
// (an error wrapping ErrNoSources and each source's reason), when ctx is
// done, or when the engine is closed (ErrClosed). On failure the temporary
// file is removed, unless the request is resumable (Request.Resume): then
// the part file is the caller's, kept on failure and not placed on success.
func (e *Engine) Download(ctx context.Context, req Request) (Result, error) {
	start := time.Now()
	if req.Content.IsZero() {
		return Result{}, fmt.Errorf("%w: no content ID", ErrBadRequest)
	}
	if req.OutDir == "" {
		return Result{}, fmt.Errorf("%w: no output directory", ErrBadRequest)
	}
	name := sanitizeName(req.Name, req.Content)
	// A request without a usable name is saved under the name a source
	// that delivered the file gives it (firstHandName), known only at the
	// end; until then the part file is named by the content ID.
	unnamed := name == req.Content.String()
	part := filepath.Join(req.OutDir, "."+name+partSuffix)
	rs := req.Resume
	if rs != nil {
		if rs.Part == "" {
			return Result{}, fmt.Errorf("%w: a resumable download needs its part file", ErrBadRequest)
		}
		if rs.Manifest != nil && rs.Held != nil && len(rs.Held) != rs.Manifest.PieceCount() {
			return Result{}, fmt.Errorf("%w: %d held pieces for %d", ErrBadRequest, len(rs.Held), rs.Manifest.PieceCount())
		}
		part = rs.Part
	}

	e.mu.Lock()
	switch {
	case e.closed:
		e.mu.Unlock()
		return Result{}, ErrClosed
	case e.parts[part]:
		e.mu.Unlock()
		return Result{}, fmt.Errorf("%w: %s", ErrInProgress, part)
	}
	e.parts[part] = true
	e.wg.Add(1)
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.parts, part)
		e.mu.Unlock()
		e.wg.Done()
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(e.ctx, cancel)
	defer stop()

	log := e.log.With(zap.String("content", req.Content.String()[:16]), zap.String("name", name))
	flags := os.O_RDWR | os.O_CREATE | os.O_TRUNC
	if rs != nil {
		flags &^= os.O_TRUNC // what it holds is the caller's to keep
	}
	f, err := os.OpenFile(part, flags, 0o644)
	if err != nil {
		return Result{}, fmt.Errorf("transfer: create %s: %w", part, err)
	}
	placed := false
	defer func() {
		if !placed {
			f.Close()
			if rs == nil {
				os.Remove(part)
			}
		}
	}()

	d := &download{
		e: e, id: req.Content, file: f, log: log, window: e.cfg.Window,
		progress: make(chan struct{}, 1), complete: make(chan struct{}),
		wake: make(chan struct{}), resume: rs,
	}
	var reports []SourceReport
	switch {
	case emptyManifest(req.Content):
		// The ID of the empty file is its proof: nothing to fetch.
		_ = d.setManifest(content.Manifest{PieceSize: content.DefaultPieceSize}, nil, false)
	case rs != nil && rs.Manifest != nil:
		if err := d.setManifest(*rs.Manifest, rs.Held, false); err != nil {
			return Result{}, err
		}
	}
	if !d.isComplete() {
		reports, err = d.run(ctx, req, start)
		if err != nil {
			if rs != nil {
				// What did arrive is kept: the caller resumes from it.
				if serr := d.sync(); serr != nil {
					log.Warn("pieces not recorded", zap.Error(serr))
				}
			}
			if e.ctx.Err() != nil {
				err = ErrClosed
			}
			log.Info("download failed", zap.Error(err))
			return Result{Sources: reports}, err
		}
	}

	if err := f.Sync(); err != nil {
		return Result{Sources: reports}, fmt.Errorf("transfer: sync %s: %w", part, err)
	}
	if rs != nil {
		if err := d.sync(); err != nil {
			return Result{Sources: reports}, err
		}
	}
	if err := f.Close(); err != nil {
		return Result{Sources: reports}, fmt.Errorf("transfer: close %s: %w", part, err)
	}
	placed = true
	if unnamed {
		if n := firstHandName(req.Sources, reports); n != "" {
			name = sanitizeName(n, req.Content)
		}
	}
	m := d.manifest()
	if rs != nil {
		return Result{Path: part, Name: name, Size: m.Size, Duration: time.Since(start), Sources: reports}, nil
	}
	path, err := placeFile(part, req.OutDir, name)
	if err != nil {
		os.Remove(part)
		return Result{Sources: reports}, fmt.Errorf("transfer: place %s: %w", name, err)
	}
	res := Result{Path: path, Name: name, Size: m.Size, Duration: time.Since(start), Sources: reports}
	log.Info("download complete", zap.String("path", path), zap.Int64("size", m.Size),
		zap.Duration("took", res.Duration), zap.Int("sources", len(reports)))
	return res, nil
}

// sourceResult is what a source goroutine reports when it ends.
type sourceResult struct {
	src    wire.Source
	idx    int // in download.reports
	report SourceReport
	err    error
}

// queuedSource is a source that queued the request, waiting to be asked
// again at at.
type queuedSource struct {
	src wire.Source
	idx int
	at  time.Time
}

// run drives the sources until the file is complete or no source is left.
func (d *download) run(ctx context.Context, req Request, start time.Time) ([]SourceReport, error) {
	e := d.e
	var pending []wire.Source
	seen := map[identity.NodeID]bool{e.self: true}
	for _, s := range req.Sources {
		if !seen[s.Node] {
			seen[s.Node] = true
			pending = append(pending, s)
		}
	}
	if len(pending) == 0 {
		return nil, fmt.Errorf("%w: no sources given", ErrNoSources)
	}

	srcCtx, srcCancel := context.WithCancel(ctx)
	defer srcCancel()
	results := make(chan sourceResult, len(pending))
	active := 0
	start1 := func(src wire.Source, idx int) {
		active++
		go func() { results <- d.runSource(srcCtx, src, idx) }()
	}
	startNext := func() {
		src := pending[0]
		pending = pending[1:]
		start1(src, d.addReport(src.Node))
	}
	// Sources that queued the request wait here to ask again, each keeping
	// its report; a queued source does not hold one of the download's
	// MaxSourcesPerDownload places, so a spare starts meanwhile.
	var queued []queuedSource
	var reask *time.Timer
	var reaskC <-chan time.Time
	defer func() {
		if reask != nil {
			reask.Stop()
		}
	}()
	armReask := func() {
		if len(queued) == 0 {
			reaskC = nil
			return
		}
		next := queued[0].at
		for _, q := range queued[1:] {
			if q.at.Before(next) {
				next = q.at
			}
		}
		if reask == nil {
			reask = time.NewTimer(time.Until(next))
		} else {
			reask.Reset(time.Until(next))
		}
		reaskC = reask.C
	}
	// A resumable download syncs its part file now and then (Resume).
	var syncTick <-chan time.Time
	if rs := req.Resume; rs != nil {
		every := rs.SyncInterval
		if every <= 0 {
			every = DefaultSyncInterval
		}
		t := time.NewTicker(every)
		defer t.Stop()
		syncTick = t.C
	}
	for active < e.cfg.MaxSourcesPerDownload && len(pending) > 0 {
		startNext()
	}

	var (
		reports  []SourceReport
		errs     []error
		fatal    error
		complete = d.complete
		lastCall time.Time
		// trailC fires when a report held back by progressInterval is
		// due, so that the last state (a source queued, say) is not lost.
		trail  *time.Timer
		trailC <-chan time.Time
		report = func(final bool) {
			if req.Progress == nil {
				return
			}
			if since := time.Since(lastCall); !final && since < progressInterval {
				if trailC == nil {
					trail = time.NewTimer(progressInterval - since)
					trailC = trail.C
				}
				return
			}
			lastCall = time.Now()
			have, total, pieces, count := d.snapshot()
			req.Progress(Progress{Have: have, Total: total, Pieces: pieces, PieceCount: count,
				Sources: active, Rate: float64(have-d.heldBytes()) / time.Since(start).Seconds(), Reports: d.reportsSnapshot()})
		}
		done bool
	)
	ctxDone := ctx.Done()
	for active > 0 || (len(queued) > 0 && !done && fatal == nil && ctx.Err() == nil) {
		select {
		case r := <-results:
			active--
			var qe *QueuedError
			if errors.As(r.err, &qe) && !done && fatal == nil && ctx.Err() == nil {
				queued = append(queued, queuedSource{src: r.src, idx: r.idx, at: time.Now().Add(e.cfg.QueueReask)})
				armReask()
				report(false) // its place in the queue
				if len(pending) > 0 && active < e.cfg.MaxSourcesPerDownload {
					startNext()
				}
				continue
			}
			reports = append(reports, r.report)
			if r.err != nil {
				errs = append(errs, fmt.Errorf("source %s: %w", r.report.Node.Short(), r.err))
				var le localError
				if errors.As(r.err, &le) && fatal == nil {
					fatal = le.err
					srcCancel()
				}
			}
			if !done && fatal == nil && ctx.Err() == nil && len(pending) > 0 {
				startNext()
			}
		case <-reaskC:
			now := time.Now()
			kept := queued[:0]
			for _, q := range queued {
				if !now.Before(q.at) && active < e.cfg.MaxSourcesPerDownload {
					start1(q.src, q.idx)
				} else {
					kept = append(kept, q)
				}
			}
			queued = kept
			if len(queued) > 0 && active >= e.cfg.MaxSourcesPerDownload {
				// Due, but every place is taken: ask once one frees.
				for i := range queued {
					if later := now.Add(e.cfg.QueueReask); queued[i].at.Before(later) {
						queued[i].at = later
					}
				}
			}
			armReask()
		case <-ctxDone:
			// Sources see it through srcCtx; a download left with only
			// queued sources ends here (the loop's condition).
			ctxDone = nil
		case <-complete:
			done, complete = true, nil
			// Every piece is in: the remaining sources are no longer needed.
			srcCancel()
		case <-d.progress:
			report(false)
		case <-trailC:
			trailC = nil
			report(false)
		case <-syncTick:
			if err := d.sync(); err != nil && fatal == nil {
				fatal = err
				srcCancel()
			}
		}
	}
	for _, q := range queued {
		reports = append(reports, d.reportOf(q.idx))
	}
	// The last source can end with every piece in before the select above
	// has taken complete: results and complete were ready together.
	if !done && fatal == nil && d.isComplete() {
		done = true
	}
	switch {
	case done:
		report(true)
		return reports, nil
	case fatal != nil:
		return reports, fatal
	case ctx.Err() != nil:
		return reports, ctx.Err()
	}
	have, _, pieces, count := d.snapshot()
	return reports, fmt.Errorf("%w: %d of %d pieces (%d bytes) fetched: %w",
		ErrNoSources, pieces, count, have, errors.Join(errs...))
}

// runSource connects to one source and fetches pieces from it until the
// download is complete or the source fails.
func (d *download) runSource(ctx context.Context, src wire.Source, idx int) sourceResult {
	s := &source{d: d, idx: idx, report: SourceReport{Node: src.Node},
		log: d.log.With(zap.String("source", src.Node.Short()))}
	err := s.run(ctx, src)
	if s.ch != nil {
		// Read after the session ended, so that a pair change during the
		// transfer shows in the report.
		s.report.Conn = s.ch.connInfo()
		s.report.Name = s.ch.peerName
	}
	if d.isComplete() {
		// Ending because the file is complete is success, however the
		// cancellation reached this source.
		err = nil
	}
	var qe *QueuedError
	switch {
	case errors.As(err, &qe):
		// Not dropped: it is asked again (run).
		s.report.Queued = qe.Position
	case err != nil:
		s.report.Err = err.Error()
		s.report.Bad = isBad(err)
		if s.report.Bad {
			d.e.stats.badSources.Add(1)
			s.log.Warn("dropping bad source", zap.Error(err),
				zap.Int("pieces_before", s.report.Pieces))
		} else {
			s.log.Debug("source dropped", zap.Error(err))
		}
	}
	d.endReport(idx, s.report)
	return sourceResult{src: src, idx: idx, report: s.report, err: err}
}

// source is one source of a download, owned by its goroutine.
type source struct {
	d      *download
	idx    int // in d.reports
	ch     *channel
	log    *zap.Logger
	report SourceReport
	// inflight are the pieces requested and not yet received, in request
	// order, which is the order the uploader serves them.
	inflight []int
	// got is how much of inflight[0] has arrived, in buf.
	got int
	buf []byte
	// staleManifests counts manifest replies still on their way after the
	// source stopped fetching the manifest because another source's
	// manifest was adopted first.
	staleManifests int
}

func (s *source) run(ctx context.Context, src wire.Source) error {
	d := s.d
	ch, err := d.e.dial(ctx, src, d.id, s.log)
	if err != nil {
		return err
	}
	s.ch = ch
	defer ch.close()
	s.log.Debug("source connected", ch.connInfo().logFields()...)
	d.setConn(s.idx, ch.connInfo(), ch.peerName)
	defer func() { d.release(s.inflight) }()

	if d.manifest() == nil {
		m, err := s.fetchManifest(ctx)
		if err != nil {
			return err
		}
		if m != nil {
			if err := d.setManifest(*m, nil, true); err != nil {
				return err
			}
		}
	}
	m := d.manifest()
	s.buf = make([]byte, m.PieceSize)
	for {
		var wake <-chan struct{}
		for len(s.inflight) < d.window {
			i, w, complete := d.claim()
			if complete {
				return nil
			}
			if i < 0 {
				wake = w
				break
			}
			// Claimed before sent: on error the deferred release gives it
			// back.
			s.inflight = append(s.inflight, i)
			if err := ch.sendMsg(ctx, wire.TypePieceRequest, wire.PieceRequest{Content: d.id, Index: uint32(i)}); err != nil {
				return err
			}
		}
		var msgs <-chan []byte
		if len(s.inflight) > 0 || s.staleManifests > 0 {
			msgs = ch.msgs
		}
		select {
		case b := <-msgs:
			// Held here under a download limit: the channel's reader
			// waits, and SCTP's window slows the sender.
			if err := waitBytes(ctx, d.e.down, len(b)); err != nil {
				return err
			}
			if err := s.handle(m, b); err != nil {
				return err
			}
		case <-wake:
		case <-ch.dead:
			return ErrPeerClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// handle takes one message in the piece phase.
func (s *source) handle(m *content.Manifest, b []byte) error {
	env, err := wire.Unmarshal(b)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	switch env.Type {
	case wire.TypePieceData:
		var pd wire.PieceData
		if err := env.Decode(&pd); err != nil {
			return fmt.Errorf("%w: %v", ErrProtocol, err)
		}
		return s.block(m, pd)
	case wire.TypeManifest:
		if s.staleManifests == 0 {
			return fmt.Errorf("%w: manifest not asked for", ErrProtocol)
		}
		s.staleManifests--
		return nil
	case wire.TypeTransferError:
		return transferError(env)
	default:
		return fmt.Errorf("%w: unexpected %s from uploader", ErrProtocol, env.Type)
	}
}

// block takes one block of the piece at the head of the pipeline; the last
// block of a piece gets it verified and written.
func (s *source) block(m *content.Manifest, pd wire.PieceData) error {
	if len(s.inflight) == 0 || int64(pd.Index) != int64(s.inflight[0]) {
		return fmt.Errorf("%w: data for piece %d, which was not requested next", ErrProtocol, pd.Index)
	}
	i := s.inflight[0]
	n := m.PieceLen(i)
	if int(pd.Offset) != s.got || len(pd.Data) == 0 || s.got+len(pd.Data) > n {
		return fmt.Errorf("%w: piece %d block at %d+%d, expected offset %d of %d",
			ErrProtocol, i, pd.Offset, len(pd.Data), s.got, n)
	}
	s.got += copy(s.buf[s.got:], pd.Data)
	s.d.e.stats.bytesReceived.Add(int64(len(pd.Data)))
	if s.got < n {
		return nil
	}
	data := s.buf[:n]
	// Verified before it is written: nothing unverified ever reaches the
	// file (docs/architecture.md, fixed decision 5).
	if err := m.VerifyPiece(i, data); err != nil {
		s.d.e.stats.badPieces.Add(1)
		return fmt.Errorf("%w: %v", ErrBadPiece, err)
	}
	if _, err := s.d.file.WriteAt(data, m.PieceOffset(i)); err != nil {
		return localError{fmt.Errorf("transfer: write %s: %w", s.d.file.Name(), err)}
	}
	s.inflight = s.inflight[1:]
	s.got = 0
	s.report.Pieces++
	s.report.Bytes += int64(n)
	s.d.pieceDone(i, n, s.idx)
	return nil
}

func transferError(env wire.Envelope) error {
	var te wire.TransferError
	if err := env.Decode(&te); err != nil {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	reason := textsafe.Bound(te.Reason, maxReasonLen)
	if pos, ok := parseQueued(reason); ok {
		// Its slots filled while it connected: it queued the request.
		return &QueuedError{Position: pos}
	}
	if reason == reasonBusy || reason == reasonPeerBusy {
		// An uploader whose slots filled while it connected: a refusal,
		// like a Close "busy" before connecting.
		return fmt.Errorf("%w: %w: %q", ErrRefused, ErrSourceFailed, reason)
	}
	return fmt.Errorf("%w: %q", ErrSourceFailed, reason)
}

// maxReasonLen bounds the reason of a peer's TransferError or Close kept in
// errors and logs; every reason Canopy sends is far shorter.
const maxReasonLen = 64

// fetchManifest fetches the piece hash list, up to Window requests ahead,
// and verifies it against the content ID. It returns nil, nil when another
// source's manifest was adopted while it was fetching.
func (s *source) fetchManifest(ctx context.Context) (*content.Manifest, error) {
	d := s.d
	ask := func(first uint32) error {
		return s.ch.sendMsg(ctx, wire.TypeManifestRequest, wire.ManifestRequest{
			Content: d.id, First: first, Count: wire.MaxManifestHashes})
	}
	if err := ask(0); err != nil {
		return nil, err
	}
	var (
		m        *content.Manifest
		count    uint32 // pieces in the file, from the first reply
		received uint32 // hashes received
		asked    uint32 // hashes asked for (First of the next request)
		pending  = 1    // requests without reply
	)
	for {
		var b []byte
		select {
		case b = <-s.ch.msgs:
		case <-s.ch.dead:
			return nil, ErrPeerClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		pending--
		env, err := wire.Unmarshal(b)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrProtocol, err)
		}
		if env.Type == wire.TypeTransferError {
			return nil, transferError(env)
		}
		if env.Type != wire.TypeManifest {
			return nil, fmt.Errorf("%w: %s while fetching the manifest", ErrProtocol, env.Type)
		}
		var part wire.Manifest
		if err := env.Decode(&part); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrProtocol, err)
		}
		if m == nil {
			// The header is checked before anything is allocated for the
			// hash list, so a peer cannot make us allocate more than
			// MaxPieces hashes.
			probe := content.Manifest{Size: part.Size, PieceSize: part.PieceSize}
			if !content.ValidPieceSize(part.PieceSize) || part.Size < 0 ||
				part.Size > int64(content.MaxPieces)*int64(part.PieceSize) {
				return nil, fmt.Errorf("%w: size %d, piece size %d", ErrBadManifest, part.Size, part.PieceSize)
			}
			want := (part.Size + int64(part.PieceSize) - 1) / int64(part.PieceSize)
			if int64(part.PieceCount) != want {
				return nil, fmt.Errorf("%w: %d pieces for size %d", ErrBadManifest, part.PieceCount, part.Size)
			}
			probe.Pieces = make([][32]byte, part.PieceCount)
			m, count = &probe, part.PieceCount
			asked = min(count, wire.MaxManifestHashes)
		}
		wantN := min(count-received, wire.MaxManifestHashes)
		switch {
		case content.ID(part.Content) != d.id:
			return nil, fmt.Errorf("%w: manifest for other content", ErrProtocol)
		case part.Size != m.Size || part.PieceSize != m.PieceSize || part.PieceCount != count:
			return nil, fmt.Errorf("%w: manifest header changed midway", ErrBadManifest)
		case part.First != received || uint32(len(part.Hashes)) != 32*wantN:
			return nil, fmt.Errorf("%w: manifest part %d+%d, want %d+%d",
				ErrProtocol, part.First, len(part.Hashes)/32, received, wantN)
		}
		for k := range wantN {
			copy(m.Pieces[received+k][:], part.Hashes[32*k:])
		}
		received += wantN
		if received == count {
			if err := m.Verify(d.id); err != nil {
				d.e.stats.badMfst.Add(1)
				return nil, fmt.Errorf("%w: %v", ErrBadManifest, err)
			}
			return m, nil
		}
		if d.manifest() != nil {
			s.staleManifests = pending
			return nil, nil
		}
		for asked < count && pending < d.window {
			if err := ask(asked); err != nil {
				return nil, err
			}
			asked += min(count-asked, wire.MaxManifestHashes)
			pending++
		}
	}
}
