package library

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/internal/quarantine"
	"github.com/canopy-p2p/canopy/internal/sqlitecheck"
)

// Library is a leaf's set of shared files. See the package comment for its
// concurrency rules.
type Library struct {
	cfg Config
	log *zap.Logger
	db  *sql.DB

	// ownFiles are the database and its companions, and ownPrefixes the
	// start of the paths its quarantined copies take: never shared.
	ownFiles    map[string]bool
	ownPrefixes []string

	// openFile opens a file for hashing; tests replace it to make a file
	// unreadable even to root.
	openFile func(path string) (*os.File, error)

	// scanMu serializes scans. A scan reads the files table once at its
	// start and then writes it file by file, so two scans at once would
	// both add the same new file.
	scanMu sync.Mutex

	// ctx is cancelled by Close to stop a running scan.
	ctx    context.Context
	cancel context.CancelFunc

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	// revision mirrors the 'revision' row of the state table, updated after
	// every commit, so Revision needs no database round trip.
	revision atomic.Int64

	// shares are the shares in force (shares.go); sharesCfg guards
	// cfg.Shares, which SetShares replaces. scanState is what scans do.
	shares    shareState
	sharesCfg sync.Mutex
	scanState scanProgress

	// recovery is what Open did about a damaged database; zero if nothing.
	recovery Recovery

	// Counters since Open, for Stats.
	scans       atomic.Int64
	hashedFiles atomic.Int64
	hashedBytes atomic.Int64
}

// Stats counts the work a Library has done since Open.
type Stats struct {
	// Scans is the number of scans started.
	Scans int64
	// HashedFiles is the number of files hashed, whether or not the result
	// was kept.
	HashedFiles int64
	// HashedBytes is the number of bytes hashed.
	HashedBytes int64
}

// Open opens (creating if needed) the library database and returns the
// library. It does not scan: call Scan for that.
//
// A damaged database (not a database at all, failing PRAGMA quick_check, or
// missing the tables and rows this version keeps) is moved aside as
// <DBPath>.corrupt-<UTC time>, with its -wal and -shm, keeping the newest
// quarantine.DefaultKeep copies; Open then starts an empty database, logs
// that once at WARN, and reports it through Recovered. A database Open cannot
// read for other reasons (permissions, a lock, a newer schema) is an error
// and is left as it is.
func Open(cfg Config) (*Library, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg, err := cfg.absolute()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.DBPath), 0o700); err != nil {
		return nil, fmt.Errorf("library: create database directory: %w", err)
	}
	db, rev, err := openDB(cfg.DBPath)
	var recovery Recovery
	if d := (*sqlitecheck.DamagedError)(nil); errors.As(err, &d) {
		// The database is a cache of what a scan recomputes from the shared
		// files, so a damaged one costs a rehash, not the node's start.
		now := time.Now()
		moved, qerr := quarantine.Move(cfg.DBPath, now, quarantine.DefaultKeep, dbCompanions...)
		if moved == "" {
			return nil, fmt.Errorf("library: %s: %s, and it could not be moved aside: %w", cfg.DBPath, d.Error(), qerr)
		}
		recovery = Recovery{Reason: d.Reason, MovedTo: moved, At: now}
		fields := []zap.Field{zap.String("path", cfg.DBPath), zap.String("reason", d.Reason), zap.String("moved_to", moved)}
		if qerr != nil {
			fields = append(fields, zap.NamedError("prune_error", qerr))
		}
		if db, rev, err = openDB(cfg.DBPath); err != nil {
			return nil, fmt.Errorf("library: %s: moved a damaged database aside to %s, but a new one does not open: %w", cfg.DBPath, moved, err)
		}
		cfg.Logger.Warn("library database is damaged: moved it aside and started an empty one; the scan refills it from the shared directories", fields...)
	}
	if err != nil {
		return nil, fmt.Errorf("library: %s: %w", cfg.DBPath, err)
	}
	l := &Library{
		cfg:      cfg,
		log:      cfg.Logger,
		db:       db,
		ownFiles: make(map[string]bool),
		openFile: os.Open,
		recovery: recovery,
	}
	// Scans see paths with symbolic links resolved, so the database is
	// listed under both spellings.
	dbPaths := []string{cfg.DBPath}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(cfg.DBPath)); err == nil {
		dbPaths = append(dbPaths, filepath.Join(dir, filepath.Base(cfg.DBPath)))
	}
	for _, p := range dbPaths {
		l.ownFiles[p] = true
		for _, suffix := range dbCompanions {
			l.ownFiles[p+suffix] = true
		}
		l.ownPrefixes = append(l.ownPrefixes, p+quarantine.Marker)
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.revision.Store(rev)
	// Quietly: the first scan warns about a directory that is missing.
	l.shares.roots = resolve(cfg.Shares, zap.NewNop())
	return l, nil
}

// Close stops a running scan, waits for it, and closes the database. It is
// safe to call more than once; later calls return the first call's result.
func (l *Library) Close() error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		l.cancel()
		l.scanMu.Lock()
		defer l.scanMu.Unlock()
		if err := l.db.Close(); err != nil {
			l.closeErr = fmt.Errorf("library: close: %w", err)
		}
	})
	return l.closeErr
}

// Revision returns the last revision issued: the revision of the library's
// current state. Revisions are opaque increasing numbers, not counts.
func (l *Library) Revision() int64 { return l.revision.Load() }

// Stats returns the counters since Open.
func (l *Library) Stats() Stats {
	return Stats{
		Scans:       l.scans.Load(),
		HashedFiles: l.hashedFiles.Load(),
		HashedBytes: l.hashedBytes.Load(),
	}
}

// isOwn reports whether path is the database, a companion of it, or a
// quarantined copy of either, which a scan must not share.
func (l *Library) isOwn(path string) bool {
	if l.ownFiles[path] {
		return true
	}
	for _, p := range l.ownPrefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// check returns ErrClosed once Close has begun.
func (l *Library) check() error {
	if l.closed.Load() {
		return ErrClosed
	}
	return nil
}

// dbErr wraps a database error with what was being done, and reports
// ErrClosed for a database closed under a running call, whose own error
// ("sql: database is closed") has no sentinel to test.
func (l *Library) dbErr(what string, err error) error {
	if l.closed.Load() {
		return fmt.Errorf("library: %s: %w", what, ErrClosed)
	}
	return fmt.Errorf("library: %s: %w", what, err)
}
