package downloads

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/quarantine"
	"github.com/canopy-p2p/canopy/internal/sqlitecheck"
	"github.com/canopy-p2p/canopy/transfer"
	"github.com/canopy-p2p/canopy/wire"
)

// Defaults for the Config fields left zero.
const (
	// DefaultMaxActive is how many jobs run at once; the rest wait queued.
	// Each running job connects to up to transfer.DefaultMaxSourcesPerDownload
	// sources, and a home downlink shared by more than three files finishes
	// none of them sooner: the user gets the first file first instead.
	DefaultMaxActive = 3
	// DefaultMaxHistory is how many finished jobs (done or failed) are kept;
	// the oldest go first. 500 rows are a few hundred KiB (a row holds the
	// manifest, 32 bytes a piece), and more than a screen of history.
	DefaultMaxHistory = 500
	// DefaultEventInterval is the least time between two progress events
	// of one job. State changes are sent at once.
	DefaultEventInterval = 250 * time.Millisecond
	// DefaultMaxRetries is how many times in a row a job whose sources all
	// failed is queued again by itself before it fails: sources come back
	// (a laptop opened again, a node restarted), and a node that restarts
	// may start its jobs before its supernodes answer. A run that fetched
	// something starts the count again.
	DefaultMaxRetries = 5
	// DefaultRetryDelay is the wait before the first automatic retry; each
	// further one waits twice as long, at most maxRetryDelay: 5 s, 10 s,
	// 20 s, 40 s, 80 s, a little over two and a half minutes in all.
	DefaultRetryDelay = 5 * time.Second
	// maxRetryDelay caps the wait between automatic retries.
	maxRetryDelay = 10 * time.Minute
	// maxRounds bounds the download-and-verify rounds of one run: a part
	// file that fails its final verification this often is on a disk that
	// does not keep what it is given.
	maxRounds = 3
	// maxReason bounds a failure reason kept with a job.
	maxReason = 1000
)

// DBName is the database's file name in the data directory.
const DBName = "downloads.db"

// Fetcher runs one download; *transfer.Engine (through the leaf) is one.
type Fetcher interface {
	Download(ctx context.Context, req transfer.Request) (transfer.Result, error)
}

// Found is what a look-up says of a file.
type Found struct {
	Name    string
	Size    int64
	Sources []wire.Source
}

// Config configures a Manager.
type Config struct {
	// DBPath is the jobs database. Must not be empty.
	DBPath string
	// Fetcher runs the downloads. Must not be nil.
	Fetcher Fetcher
	// Lookup, if not nil, finds the sources of a file each time a job
	// starts; they are tried with the sources the job was given.
	Lookup func(ctx context.Context, id content.ID) (Found, error)
	// MaxActive bounds the jobs running at once. Zero: DefaultMaxActive.
	MaxActive int
	// MaxHistory bounds the finished jobs kept. Zero: DefaultMaxHistory.
	MaxHistory int
	// EventInterval is the least time between a job's progress events.
	// Zero: DefaultEventInterval.
	EventInterval time.Duration
	// MaxRetries is how many automatic retries a job whose sources all
	// failed gets (DefaultMaxRetries); NoRetries for none.
	MaxRetries int
	// RetryDelay is the first automatic retry's wait. Zero:
	// DefaultRetryDelay.
	RetryDelay time.Duration
	// SyncInterval is the part files' sync interval (transfer.Resume).
	// Zero: transfer.DefaultSyncInterval.
	SyncInterval time.Duration
	// Logger; nil means none.
	Logger *zap.Logger
	// AfterStep, if not nil, is called at the named steps of placing a
	// file: "target-recorded", "linked", "part-removed". It exists for
	// crash tests, which kill the process there.
	AfterStep func(step string)
}

// NoRetries, as Config.MaxRetries, fails a job at its first run whose
// sources all failed.
const NoRetries = -1

func (c Config) withDefaults() Config {
	switch {
	case c.MaxRetries == 0:
		c.MaxRetries = DefaultMaxRetries
	case c.MaxRetries < 0:
		c.MaxRetries = 0
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.MaxActive == 0 {
		c.MaxActive = DefaultMaxActive
	}
	if c.MaxHistory == 0 {
		c.MaxHistory = DefaultMaxHistory
	}
	if c.EventInterval == 0 {
		c.EventInterval = DefaultEventInterval
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Validate checks a Config after defaults; errors wrap ErrConfig.
func (c Config) Validate() error {
	switch {
	case c.DBPath == "":
		return fmt.Errorf("%w: no DBPath", ErrConfig)
	case c.Fetcher == nil:
		return fmt.Errorf("%w: no Fetcher", ErrConfig)
	case c.MaxActive < 1:
		return fmt.Errorf("%w: MaxActive %d", ErrConfig, c.MaxActive)
	case c.MaxHistory < 1:
		return fmt.Errorf("%w: MaxHistory %d", ErrConfig, c.MaxHistory)
	case c.EventInterval < 0 || c.SyncInterval < 0 || c.RetryDelay < 0:
		return fmt.Errorf("%w: negative interval", ErrConfig)
	}
	return nil
}

// Request asks for a download.
type Request struct {
	// Content is the file. Must not be zero.
	Content content.ID
	// Name is the file name to save as; empty: the sources' own name.
	Name string
	// Size is the size a hit announced: a hint until the manifest is known.
	Size int64
	// OutDir is the destination directory: absolute, existing.
	OutDir string
	// Sources are tried with those Config.Lookup finds; at most 64.
	Sources []wire.Source
}

// Job is a snapshot of a job.
type Job struct {
	ID      int64      `json:"id"`
	Content content.ID `json:"content"`
	// Name is the name asked for, or once placed the name given.
	Name   string `json:"name"`
	OutDir string `json:"out_dir"`
	State  State  `json:"state"`
	// Reason says why a job failed.
	Reason string `json:"reason,omitempty"`
	// Running says a run of the job holds a slot: after a pause or a
	// cancel, until its transfer has stopped.
	Running  bool      `json:"running"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
	Finished time.Time `json:"finished,omitzero"`
	// Size is the file's size (the hint until the manifest is known); Have
	// the verified bytes the part file holds; Pieces of PieceCount.
	Size       int64 `json:"size"`
	Have       int64 `json:"have"`
	Pieces     int   `json:"pieces"`
	PieceCount int   `json:"piece_count"`
	// Rate is the bytes per second fetched in this run.
	Rate float64 `json:"rate"`
	// Sources are the sources of the current or last run and how each is
	// reached.
	Sources []Source `json:"sources,omitempty"`
	// Part is the part file; Path the placed file, once done.
	Part string `json:"part,omitempty"`
	Path string `json:"path,omitempty"`
	// Fetched counts the verified bytes received over all runs; Refetched
	// the part of it the part file no longer holds or held already: pieces
	// fetched more than once (after a crash that lost them, a part file
	// edited on disk). Pieces in flight when a run ended abruptly are
	// counted only once they arrive whole.
	Fetched   int64 `json:"fetched"`
	Refetched int64 `json:"refetched"`
}

// Source is one source of a job.
type Source struct {
	Node identity.NodeID `json:"node"`
	// Path is transfer.PathDirect or transfer.PathRelayed once connected;
	// Local and Remote the ICE candidate types of the pair.
	Path      string  `json:"path,omitempty"`
	Local     string  `json:"local,omitempty"`
	Remote    string  `json:"remote,omitempty"`
	ConnectMS float64 `json:"connect_ms,omitempty"`
	// Bytes is the verified data it delivered in this run.
	Bytes int64 `json:"bytes"`
	// Err says why it was dropped; Bad that it sent bad data.
	Err string `json:"error,omitempty"`
	Bad bool   `json:"bad,omitempty"`
	// Queued is the job's place in the source's upload queue (1 first)
	// while it waits to ask again; 0 when it is not queued.
	Queued int `json:"queued,omitempty"`
}

func sourcesOf(reports []transfer.SourceReport) []Source {
	out := make([]Source, 0, len(reports))
	for _, r := range reports {
		out = append(out, Source{Node: r.Node, Path: r.Conn.Path, Local: r.Conn.LocalType, Remote: r.Conn.RemoteType,
			ConnectMS: float64(r.Conn.ConnectTime) / float64(time.Millisecond), Bytes: r.Bytes, Err: r.Err, Bad: r.Bad,
			Queued: r.Queued})
	}
	return out
}

// job is a job's row and what its run adds. Guarded by Manager.mu.
type job struct {
	row
	have    int64
	pieces  int
	rate    float64
	running bool
	// cancel stops the run; stopping says the run was stopped by an action
	// (its state is set already), not by a failure.
	cancel   context.CancelFunc
	stopping bool
	// deletePart is set by a cancel while running: the run's end deletes
	// the part file, once the transfer has closed it.
	deletePart bool
	lastEvent  time.Time
	// retries counts the automatic retries in a row; notBefore is when
	// the next may start, and retry the timer that kicks it then.
	retries   int
	notBefore time.Time
	retry     *time.Timer
}

func (j *job) snapshot() Job {
	out := Job{ID: j.id, Content: j.content, Name: j.name, OutDir: j.outDir, State: j.state, Reason: j.reason, Running: j.running,
		Created: j.created, Updated: j.updated, Finished: j.finished, Size: j.size, Have: j.have, Pieces: j.pieces,
		Rate: j.rate, Sources: slices.Clone(j.reports), Part: j.part, Path: j.path, Fetched: j.fetched}
	if j.manifest != nil {
		out.PieceCount = j.manifest.PieceCount()
	}
	if !j.running {
		out.Rate = 0
	}
	if j.state == Done {
		out.Part = ""
	}
	out.Refetched = max(0, j.fetched-j.have)
	return out
}

// recount sets have and pieces from the record.
func (j *job) recount() {
	j.have, j.pieces = 0, 0
	if j.manifest == nil {
		return
	}
	for i := range j.manifest.PieceCount() {
		if j.held.has(i) {
			j.have += int64(j.manifest.PieceLen(i))
			j.pieces++
		}
	}
}

// Manager runs the download jobs of a node. It is safe for concurrent use.
type Manager struct {
	cfg Config
	log *zap.Logger
	st  *store

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the job goroutines

	mu     sync.Mutex // guards the fields below and every job
	jobs   map[int64]*job
	active int
	closed bool
	subs   map[*Subscription]struct{}
}

// Open opens (or creates) the jobs database and starts the jobs that were
// unfinished when the node stopped, paused ones excepted. A damaged
// database is moved aside and what can be read of it carried over (see the
// package comment).
func Open(cfg Config) (*Manager, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger.Named("downloads")
	db, rows, err := openAndLoad(cfg.DBPath)
	var salvaged []row
	if de, ok := errors.AsType[*sqlitecheck.DamagedError](err); ok {
		moved, qerr := quarantine.Move(cfg.DBPath, time.Now(), 0, "-wal", "-shm", "-journal")
		if moved == "" {
			return nil, fmt.Errorf("downloads: %s: %w; moving it aside failed: %w", cfg.DBPath, de, qerr)
		}
		lost := 0
		salvaged, lost = salvage(moved)
		log.Warn("downloads database damaged: moved aside and started afresh with the jobs that could still be read; their part files are verified again",
			zap.String("reason", de.Reason), zap.String("moved_to", moved), zap.Int("jobs_saved", len(salvaged)),
			zap.Int("jobs_lost", lost), zap.NamedError("prune", qerr))
		db, rows, err = openAndLoad(cfg.DBPath)
	}
	if err != nil {
		return nil, fmt.Errorf("downloads: %s: %w", cfg.DBPath, err)
	}
	m := &Manager{cfg: cfg, log: log, st: &store{db: db}, jobs: map[int64]*job{}, subs: map[*Subscription]struct{}{}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	ctx := context.Background()
	for _, r := range salvaged {
		// The damaged copy's record is not trusted: the part file is
		// verified whole when the job starts.
		r.stamp = stamp{}
		if err := m.st.insert(ctx, &r); err != nil {
			db.Close()
			return nil, fmt.Errorf("downloads: carry job %d over: %w", r.id, err)
		}
		rows = append(rows, r)
	}
	resumed := 0
	for _, r := range rows {
		j := &job{row: r}
		j.recount()
		if j.state.Active() {
			// It was running when the node stopped (or died): it resumes.
			j.state = Queued
			if err := m.st.save(ctx, &j.row); err != nil {
				db.Close()
				return nil, fmt.Errorf("downloads: %w", err)
			}
		}
		if j.state == Queued {
			resumed++
		}
		m.jobs[j.id] = j
	}
	if resumed > 0 {
		log.Info("resuming downloads", zap.Int("jobs", resumed))
	}
	m.mu.Lock()
	m.kick()
	m.mu.Unlock()
	return m, nil
}

// openAndLoad opens the database and reads its jobs; damage found by
// either is a *sqlitecheck.DamagedError.
func openAndLoad(path string) (*sql.DB, []row, error) {
	db, err := openDB(path)
	if err != nil {
		return nil, nil, err
	}
	rows, err := (&store{db: db}).load(context.Background())
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, rows, nil
}

// Close stops the running jobs, keeping what they have (they resume at the
// next Open), and closes the database.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	for _, j := range m.jobs {
		if j.cancel != nil {
			j.cancel()
		}
		if j.retry != nil {
			j.retry.Stop()
		}
	}
	for s := range m.subs {
		s.close()
	}
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	return m.st.db.Close()
}

// Enqueue adds a job, or returns the unfinished job for the same content
// and directory if there is one (existing is then true): asking twice for
// a file does not download it twice. A failed job for it (not a cancelled
// one) is retried and returned.
func (m *Manager) Enqueue(req Request) (_ Job, existing bool, _ error) {
	switch {
	case req.Content.IsZero():
		return Job{}, false, fmt.Errorf("%w: no content ID", ErrBadRequest)
	case !filepath.IsAbs(req.OutDir):
		return Job{}, false, fmt.Errorf("%w: %q is not an absolute directory", ErrBadRequest, req.OutDir)
	case len(req.Sources) > maxStoredSources:
		return Job{}, false, fmt.Errorf("%w: %d sources, at most %d", ErrBadRequest, len(req.Sources), maxStoredSources)
	}
	dir := filepath.Clean(req.OutDir)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return Job{}, false, fmt.Errorf("%w: %s is not a directory", ErrBadRequest, dir)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Job{}, false, ErrClosed
	}
	for _, j := range m.sorted() {
		if j.content != req.Content || j.outDir != dir {
			continue
		}
		if !j.state.Finished() {
			return j.snapshot(), true, nil
		}
		if j.state == Failed && j.reason != ReasonCancelled && !j.running {
			// Asking again for a file whose job failed is a retry: it
			// resumes from the part file instead of starting another.
			j.state, j.reason, j.finished, j.updated = Queued, "", time.Time{}, time.Now()
			j.retries, j.notBefore = 0, time.Time{}
			if err := m.st.save(context.Background(), &j.row); err != nil {
				return Job{}, false, fmt.Errorf("downloads: %w", err)
			}
			m.log.Info("download retried by a new request", zap.Int64("job", j.id))
			m.notify(j)
			m.kick()
			return j.snapshot(), true, nil
		}
	}
	now := time.Now()
	j := &job{row: row{content: req.Content, name: req.Name, outDir: dir, sources: req.Sources, state: Queued,
		created: now, updated: now, size: req.Size}}
	ctx := context.Background()
	if err := m.st.insert(ctx, &j.row); err != nil {
		return Job{}, false, fmt.Errorf("downloads: %w", err)
	}
	j.part = partPath(dir, partName(j.name, j.content), j.id)
	if err := m.st.save(ctx, &j.row); err != nil {
		return Job{}, false, fmt.Errorf("downloads: %w", err)
	}
	m.jobs[j.id] = j
	m.log.Info("download queued", zap.Int64("job", j.id), zap.String("content", j.content.String()[:16]), zap.String("name", j.name))
	m.notify(j)
	m.kick()
	return j.snapshot(), false, nil
}

// partName is the name part of a part file: the file's name, bounded so
// that ".NAME.JOB.canopy-part" fits a file system's 255 bytes, or the
// start of the content ID.
func partName(name string, id content.ID) string {
	n := transfer.SafeName(name, id)
	if n == id.String() {
		return n[:16]
	}
	return wire.CutName(n, 200)
}

// List returns every job, oldest first.
func (m *Manager) List() []Job {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Job, 0, len(m.jobs))
	for _, j := range m.sorted() {
		out = append(out, j.snapshot())
	}
	return out
}

// Get returns one job.
func (m *Manager) Get(id int64) (Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok {
		return Job{}, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	return j.snapshot(), nil
}

// Do applies a user's action to a job and returns the job as it is then.
// Pause and cancel stop a running job at once: its state changes now, and
// the transfer ends shortly after.
func (m *Manager) Do(id int64, a Action) (Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Job{}, ErrClosed
	}
	j, ok := m.jobs[id]
	if !ok {
		return Job{}, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	to, err := apply(j.state, a)
	if err != nil {
		return j.snapshot(), err
	}
	j.state, j.updated = to, time.Now()
	switch a {
	case Cancel:
		j.reason, j.finished = ReasonCancelled, j.updated
		if j.running {
			j.deletePart = true
		} else {
			m.discardPart(j)
		}
	case Retry:
		j.reason, j.finished = "", time.Time{}
	}
	// The user's word comes before any automatic retry's wait.
	j.retries, j.notBefore = 0, time.Time{}
	if j.retry != nil {
		j.retry.Stop()
		j.retry = nil
	}
	if j.running {
		j.stopping = true
		j.cancel()
	}
	if err := m.st.save(context.Background(), &j.row); err != nil {
		m.log.Error("save job", zap.Int64("job", id), zap.Error(err))
	}
	m.log.Info("download "+string(a), zap.Int64("job", id), zap.String("state", string(to)))
	m.notify(j)
	if to.Finished() {
		m.prune()
	}
	m.kick()
	return j.snapshot(), nil
}

// discardPart deletes a cancelled job's part file and its record. m.mu held.
func (m *Manager) discardPart(j *job) {
	if err := os.Remove(j.part); err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.log.Warn("cancelled download: part file not removed", zap.String("part", j.part), zap.Error(err))
	}
	if j.manifest != nil {
		j.held = newPieceSet(j.manifest.PieceCount())
	}
	j.stamp, j.target = stamp{}, ""
	j.recount()
}

// sorted returns the jobs by ID. m.mu held.
func (m *Manager) sorted() []*job {
	out := make([]*job, 0, len(m.jobs))
	for _, j := range m.jobs {
		out = append(out, j)
	}
	slices.SortFunc(out, func(a, b *job) int { return int(a.id - b.id) })
	return out
}

// kick starts queued jobs, oldest first, while slots are free. m.mu held.
func (m *Manager) kick() {
	if m.closed {
		return
	}
	for _, j := range m.sorted() {
		if m.active >= m.cfg.MaxActive {
			return
		}
		if j.state != Queued || j.running || time.Now().Before(j.notBefore) {
			continue
		}
		m.setState(j, Connecting, "")
		ctx, cancel := context.WithCancel(m.ctx)
		j.running, j.cancel, j.stopping, j.deletePart = true, cancel, false, false
		j.reports = nil
		m.active++
		m.wg.Add(1)
		go m.run(ctx, j)
	}
}

// setState moves a job to state to (through the table of step) and saves
// it. m.mu held. A stopped run's late changes are ignored: the action that
// stopped it set the state.
func (m *Manager) setState(j *job, to State, reason string) {
	if j.stopping || j.state == to {
		return
	}
	if err := step(j.state, to); err != nil {
		m.log.Error("job state", zap.Int64("job", j.id), zap.Error(err))
		return
	}
	j.state, j.reason, j.updated = to, reason, time.Now()
	if to.Finished() {
		j.finished = j.updated
	}
	if err := m.st.save(context.Background(), &j.row); err != nil {
		m.log.Error("save job", zap.Int64("job", j.id), zap.Error(err))
	}
	m.notify(j)
}

// run owns one run of a job, from its slot to its end.
func (m *Manager) run(ctx context.Context, j *job) {
	defer m.wg.Done()
	m.mu.Lock()
	fetched := j.fetched
	m.mu.Unlock()
	err := m.attempt(ctx, j)
	m.mu.Lock()
	defer m.mu.Unlock()
	j.running, j.rate = false, 0
	j.cancel()
	j.cancel = nil
	m.active--
	switch {
	case j.deletePart:
		m.discardPart(j)
		if serr := m.st.save(context.Background(), &j.row); serr != nil {
			m.log.Error("save job", zap.Int64("job", j.id), zap.Error(serr))
		}
		m.notify(j)
	case err == nil || j.stopping || m.closed:
		// Done, stopped by an action (its state is set), or stopped with
		// the node: the state in the database makes it resume.
		m.notify(j)
	case errors.Is(err, transfer.ErrNoSources) && (j.retries < m.cfg.MaxRetries || j.fetched > fetched):
		if j.fetched > fetched {
			j.retries = 0 // it got somewhere: the count starts again
		}
		j.retries++
		delay := min(m.cfg.RetryDelay<<(j.retries-1), maxRetryDelay)
		j.notBefore = time.Now().Add(delay)
		reason := fmt.Sprintf("retry %d of %d in %s: %v", j.retries, m.cfg.MaxRetries, delay.Round(time.Second), err)
		m.log.Info("download will retry", zap.Int64("job", j.id), zap.String("reason", reason))
		m.setState(j, Queued, wire.CutName(reason, maxReason))
		j.retry = time.AfterFunc(delay, func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.kick()
		})
	default:
		reason := failReason(err, j)
		m.log.Info("download failed", zap.Int64("job", j.id), zap.String("reason", reason))
		m.setState(j, Failed, reason)
	}
	if j.state.Finished() {
		m.prune()
	}
	m.kick()
}

// failReason is the reason a failed job shows: what went wrong and, where
// the user can do something about it, what.
func failReason(err error, j *job) string {
	var r string
	switch {
	case isDiskFull(err):
		r = fmt.Sprintf("%v: %v; the part file keeps what arrived: free some space, then retry the job (canopy downloads retry %d)", ErrDiskFull, err, j.id)
	case errors.Is(err, transfer.ErrNoSources):
		r = fmt.Sprintf("no source could deliver the file: %v; retry the job later (canopy downloads retry %d)", err, j.id)
	default:
		r = err.Error()
	}
	if len(r) > maxReason {
		r = wire.CutName(r, maxReason)
	}
	return r
}

// prune deletes the oldest finished jobs beyond MaxHistory. m.mu held.
func (m *Manager) prune() {
	var fin []*job
	for _, j := range m.jobs {
		if j.state.Finished() && !j.running {
			fin = append(fin, j)
		}
	}
	if len(fin) <= m.cfg.MaxHistory {
		return
	}
	slices.SortFunc(fin, func(a, b *job) int {
		if c := a.finished.Compare(b.finished); c != 0 {
			return c
		}
		return int(a.id - b.id)
	})
	var ids []int64
	for _, j := range fin[:len(fin)-m.cfg.MaxHistory] {
		ids = append(ids, j.id)
		delete(m.jobs, j.id)
	}
	if err := m.st.delete(context.Background(), ids); err != nil {
		m.log.Error("prune history", zap.Error(err))
	}
}

// attempt runs a job until its file is placed or it fails.
func (m *Manager) attempt(ctx context.Context, j *job) error {
	if done, err := m.recoverPlacement(ctx, j); done || err != nil {
		return err
	}
	for round := 1; ; round++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		sources := m.sources(ctx, j)
		m.mu.Lock()
		name, size, man, part := j.name, j.size, j.manifest, j.part
		m.mu.Unlock()
		var held []bool
		if man != nil {
			ps, err := m.checkPart(ctx, j, man)
			if err != nil {
				return err
			}
			held = ps.bools()
		}
		m.mu.Lock()
		m.setState(j, Connecting, "")
		m.mu.Unlock()
		if len(sources) == 0 && (man == nil || slices.Contains(held, false)) {
			return fmt.Errorf("%w: none found for %s", transfer.ErrNoSources, j.content)
		}
		res, err := m.cfg.Fetcher.Download(ctx, transfer.Request{
			Content: j.content, Name: name, Size: size, Sources: sources, OutDir: j.outDir,
			Progress: func(p transfer.Progress) { m.progress(j, p) },
			Resume: &transfer.Resume{
				Part: part, Manifest: man, Held: held, SyncInterval: m.cfg.SyncInterval,
				OnManifest: func(mf content.Manifest) error { return m.adoptManifest(j, mf) },
				Synced:     func(pieces []int) error { return m.synced(j, pieces) },
			},
		})
		m.mu.Lock()
		if len(res.Sources) > 0 {
			j.reports = sourcesOf(res.Sources)
		}
		m.mu.Unlock()
		if err != nil {
			return err
		}
		m.mu.Lock()
		man = j.manifest
		m.setState(j, Verifying, "")
		m.mu.Unlock()
		// The whole part file once more, from the disk: what is placed
		// is what was verified.
		whole, err := verifyPart(part, man, nil, ctx.Done(), nil)
		if err != nil {
			return fmt.Errorf("verify %s: %w", part, err)
		}
		if whole.count() == man.PieceCount() {
			return m.place(ctx, j, res.Name)
		}
		m.log.Warn("complete part file failed verification; fetching the bad pieces again",
			zap.Int64("job", j.id), zap.Int("bad", man.PieceCount()-whole.count()), zap.Int("round", round))
		if err := m.record(j, whole); err != nil {
			return err
		}
		if round == maxRounds {
			return fmt.Errorf("the part file %s failed verification %d times after it was complete: the disk does not keep what is written to it", part, maxRounds)
		}
	}
}

// sources merges the job's own sources with a fresh look-up.
func (m *Manager) sources(ctx context.Context, j *job) []wire.Source {
	m.mu.Lock()
	src := slices.Clone(j.sources)
	m.mu.Unlock()
	if m.cfg.Lookup == nil {
		return src
	}
	found, err := m.cfg.Lookup(ctx, j.content)
	if err != nil {
		m.log.Debug("source look-up", zap.Int64("job", j.id), zap.Error(err))
		return src
	}
	m.mu.Lock()
	if j.name == "" && found.Name != "" {
		j.name = found.Name
	}
	if j.size == 0 {
		j.size = found.Size
	}
	m.mu.Unlock()
	for _, s := range found.Sources {
		if !slices.ContainsFunc(src, func(o wire.Source) bool { return o.Node == s.Node }) {
			src = append(src, s)
		}
	}
	return src
}

// checkPart settles what the part file holds before a run: the record if
// the part file is as the record left it, else whatever of it verifies.
func (m *Manager) checkPart(ctx context.Context, j *job, man *content.Manifest) (pieceSet, error) {
	m.mu.Lock()
	part, rec, recStamp := j.part, pieceSet{n: j.held.n, bits: slices.Clone(j.held.bits)}, j.stamp
	m.mu.Unlock()
	st, exists, err := stampOf(part)
	if err != nil {
		return pieceSet{}, fmt.Errorf("part file: %w", err)
	}
	var held pieceSet
	switch {
	case !exists:
		held = newPieceSet(man.PieceCount())
		if rec.count() > 0 {
			m.log.Warn("part file missing: fetching it whole", zap.Int64("job", j.id), zap.String("part", part))
		}
	case st == recStamp && recStamp != (stamp{}):
		return rec, nil
	default:
		m.mu.Lock()
		m.setState(j, Verifying, "")
		m.mu.Unlock()
		held, err = verifyPart(part, man, nil, ctx.Done(), nil)
		if err != nil {
			if errors.Is(err, errStopped) {
				return pieceSet{}, ctx.Err()
			}
			return pieceSet{}, fmt.Errorf("verify part file %s: %w", part, err)
		}
		lost, found := 0, 0
		for i := range man.PieceCount() {
			switch {
			case rec.has(i) && !held.has(i):
				lost++
			case !rec.has(i) && held.has(i):
				found++
			}
		}
		m.log.Info("part file verified", zap.Int64("job", j.id), zap.Int("held", held.count()),
			zap.Int("recorded", rec.count()), zap.Int("not_recorded_but_intact", found), zap.Int("recorded_but_bad", lost))
		// Pieces found intact but never recorded were fetched by a run
		// that ended before it recorded them: they count as fetched.
		m.mu.Lock()
		for i := range man.PieceCount() {
			if !rec.has(i) && held.has(i) {
				j.fetched += int64(man.PieceLen(i))
			}
		}
		m.mu.Unlock()
	}
	if err := m.record(j, held); err != nil {
		return pieceSet{}, err
	}
	return held, nil
}

// record replaces a job's piece record with held, stamped with the part
// file as it is now.
func (m *Manager) record(j *job, held pieceSet) error {
	st, _, err := stampOf(j.part)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	j.held, j.stamp = held, st
	j.recount()
	j.updated = time.Now()
	return m.st.saveRecord(context.Background(), j.id, j.held, j.stamp, j.fetched, j.updated)
}

// adoptManifest records the manifest a source delivered, before any piece
// is written, so that a restart knows how to verify the part file.
func (m *Manager) adoptManifest(j *job, mf content.Manifest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j.manifest, j.size = &mf, mf.Size
	j.held, j.stamp = newPieceSet(mf.PieceCount()), stamp{}
	j.recount()
	return m.st.save(context.Background(), &j.row)
}

// synced records pieces the engine has made durable.
func (m *Manager) synced(j *job, pieces []int) error {
	st, _, err := stampOf(j.part)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, i := range pieces {
		if !j.held.has(i) {
			j.held.set(i)
		}
		j.fetched += int64(j.manifest.PieceLen(i))
	}
	j.stamp = st
	j.recount()
	j.updated = time.Now()
	return m.st.saveRecord(context.Background(), j.id, j.held, j.stamp, j.fetched, j.updated)
}

// progress takes the engine's progress report.
func (m *Manager) progress(j *job, p transfer.Progress) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p.Total > 0 {
		j.have, j.pieces = p.Have, p.Pieces
	}
	j.rate = p.Rate
	j.reports = sourcesOf(p.Reports)
	connected := slices.ContainsFunc(p.Reports, func(r transfer.SourceReport) bool { return r.Conn.Path != "" && r.Err == "" })
	if j.state == Connecting && connected && p.Total > 0 {
		m.setState(j, Downloading, "")
		return
	}
	if time.Since(j.lastEvent) >= m.cfg.EventInterval {
		m.notify(j)
	}
}

// recoverPlacement finishes a placement a crash interrupted. done is true
// when the job is done after all.
func (m *Manager) recoverPlacement(ctx context.Context, j *job) (done bool, err error) {
	m.mu.Lock()
	target, part, man := j.target, j.part, j.manifest
	m.mu.Unlock()
	if target == "" || man == nil {
		return false, nil
	}
	pfi, perr := os.Lstat(part)
	tfi, terr := os.Lstat(target)
	switch {
	case perr == nil && terr == nil && os.SameFile(pfi, tfi):
		// Linked, and the crash came before the part file was removed.
		if err := os.Remove(part); err != nil {
			return false, err
		}
		m.log.Info("finishing a placement a restart interrupted", zap.Int64("job", j.id), zap.String("path", target))
		return true, m.placed(j, target)
	case errors.Is(perr, fs.ErrNotExist) && terr == nil:
		// Linked (or renamed) and the part file removed: the job was done
		// but for its record. The file is checked before it is called so.
		m.mu.Lock()
		m.setState(j, Verifying, "")
		m.mu.Unlock()
		ok, err := verifyWhole(target, man, ctx.Done())
		if err != nil {
			return false, err
		}
		if ok {
			return true, m.placed(j, target)
		}
		m.log.Warn("the placed file does not match and the part file is gone: fetching it again",
			zap.Int64("job", j.id), zap.String("path", target))
	}
	// Not placed yet (or the name was taken since): placing starts over.
	m.mu.Lock()
	defer m.mu.Unlock()
	j.target = ""
	return false, m.st.save(context.Background(), &j.row)
}

// place moves the verified part file to its destination, crash-safely (see
// the package comment).
func (m *Manager) place(ctx context.Context, j *job, name string) error {
	if name == "" {
		name = transfer.SafeName(j.name, j.content)
	}
	renamed := false
	target := ""
	for n := 0; ; n++ {
		if n == maxNumbered {
			return fmt.Errorf("no free name for %q in %s", name, j.outDir)
		}
		target = filepath.Join(j.outDir, numberedName(name, n))
		m.mu.Lock()
		if j.stopping || ctx.Err() != nil {
			m.mu.Unlock()
			return ctx.Err()
		}
		j.target = target
		err := m.st.save(context.Background(), &j.row)
		m.mu.Unlock()
		if err != nil {
			return err
		}
		m.step("target-recorded")
		err = os.Link(j.part, target)
		if err == nil {
			break
		}
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		// No hard links here: a rename after a check. It can replace a
		// file created in between, which links rule out.
		if _, serr := os.Lstat(target); serr == nil {
			continue
		}
		if err := os.Rename(j.part, target); err != nil {
			if isDiskFull(err) {
				return err
			}
			return fmt.Errorf("place %s: %w", target, err)
		}
		renamed = true
		break
	}
	m.step("linked")
	if !renamed {
		if err := os.Remove(j.part); err != nil {
			return fmt.Errorf("remove %s: %w", j.part, err)
		}
	}
	m.step("part-removed")
	if err := syncDir(j.outDir); err != nil {
		m.log.Warn("sync directory", zap.String("dir", j.outDir), zap.Error(err))
	}
	return m.placed(j, target)
}

func (m *Manager) step(name string) {
	if m.cfg.AfterStep != nil {
		m.cfg.AfterStep(name)
	}
}

// placed marks a job done at path.
func (m *Manager) placed(j *job, path string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j.path, j.target, j.name = path, "", filepath.Base(path)
	// The file is in place: that is the end of it, whatever action came
	// while it was being placed.
	j.stopping, j.deletePart = false, false
	j.held = newPieceSet(j.manifest.PieceCount())
	for i := range j.manifest.PieceCount() {
		j.held.set(i)
	}
	j.recount()
	m.setState(j, Done, "")
	m.log.Info("download done", zap.Int64("job", j.id), zap.String("path", path), zap.Int64("size", j.size),
		zap.Int64("fetched", j.fetched), zap.Int64("refetched", max(0, j.fetched-j.have)))
	return nil
}
