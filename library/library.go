package library

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	// Registers the pure-Go "sqlite" driver.
	_ "modernc.org/sqlite"
)

// Library is a leaf's set of shared files. See the package comment for its
// concurrency rules.
type Library struct {
	cfg Config
	log *zap.Logger
	db  *sql.DB

	// ownFiles are the database and its companions, never shared.
	ownFiles map[string]bool

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
	// WAL lets readers of the file (say, a diagnostics tool) run while a scan
	// writes; synchronous=NORMAL is durable to the last checkpoint and
	// always consistent, which suits a cache of facts that a scan can
	// rebuild. busy_timeout covers another process holding the lock briefly.
	dsn := cfg.DBPath + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("library: open %s: %w", cfg.DBPath, err)
	}
	// One connection: SQLite allows one writer anyway, and it rules out
	// SQLITE_BUSY between our own connections. Code here therefore never
	// runs a query while it holds an open *sql.Rows.
	db.SetMaxOpenConns(1)
	db.SetConnMaxLifetime(0)
	if err := migrate(context.Background(), db); err != nil {
		db.Close()
		return nil, fmt.Errorf("library: %s: %w", cfg.DBPath, err)
	}
	var rev int64
	if err := db.QueryRow(`SELECT value FROM state WHERE key = 'revision'`).Scan(&rev); err != nil {
		db.Close()
		return nil, fmt.Errorf("library: %s: read revision: %w", cfg.DBPath, err)
	}
	l := &Library{
		cfg:      cfg,
		log:      cfg.Logger,
		db:       db,
		ownFiles: make(map[string]bool),
		openFile: os.Open,
	}
	// Scans see paths with symbolic links resolved, so the database is
	// listed under both spellings.
	dbPaths := []string{cfg.DBPath}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(cfg.DBPath)); err == nil {
		dbPaths = append(dbPaths, filepath.Join(dir, filepath.Base(cfg.DBPath)))
	}
	for _, p := range dbPaths {
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			l.ownFiles[p+suffix] = true
		}
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.revision.Store(rev)
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
