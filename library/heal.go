package library

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/canopy-p2p/canopy/internal/sqlitecheck"
)

// dbCompanions are the files SQLite keeps beside a database. A damaged
// database is moved aside with them: its write-ahead log left beside a new,
// empty database would be replayed into it.
var dbCompanions = []string{"-wal", "-shm", "-journal"}

// quickCheckRows is how many problems PRAGMA quick_check is asked to list;
// one is enough to know the database is damaged, a few help to see how.
const quickCheckRows = 3

// Recovery describes a damaged library database that Open moved aside before
// it started an empty one. The next Scan fills the new one from the shared
// directories, rehashing every file.
type Recovery struct {
	// Reason is why the database was judged damaged, at most a few hundred
	// bytes.
	Reason string
	// MovedTo is the damaged file's new path, <DBPath>.corrupt-<UTC time>;
	// its -wal and -shm, where they existed, are beside it under the same
	// name with their suffixes.
	MovedTo string
	// At is when Open moved it.
	At time.Time
}

// Recovered reports whether Open found the database damaged, moved it aside
// and started an empty one, and if so what it did. Open has logged it once
// at WARN; the caller need not log it again.
func (l *Library) Recovered() (Recovery, bool) {
	return l.recovery, l.recovery.MovedTo != ""
}

// classify turns an error of a step of openDB into a sqlitecheck.DamagedError when SQLite
// says the file is damaged, or, for the steps that only read what a sound
// database of this schema must hold (strict), when it is anything but the
// environment's fault.
func classify(step string, err error, strict bool) error {
	if sqlitecheck.IsDamage(err) || (strict && !sqlitecheck.IsEnvironment(err)) {
		return sqlitecheck.Damaged("%s: %v", step, err)
	}
	return fmt.Errorf("%s: %w", step, err)
}

// openDB opens the database at path, checks it, brings its schema up to date
// and returns it with its current revision. A damaged file gives a
// *sqlitecheck.DamagedError.
//
// What is checked at every open, and why it is cheap enough:
//   - before SQLite opens the file, its header: empty (a new database) or
//     SQLite's magic string and file format numbers. A file that is no
//     database at all (its first pages overwritten, or truncated) is so
//     moved aside with its -wal and -shm untouched; once SQLite has opened
//     a file, it folds the write-ahead log into it when the connection
//     closes (or keeps the log when it cannot), so for damage only SQLite
//     finds, what the log held goes aside with the file either way;
//   - that SQLite reads the header and the schema;
//   - PRAGMA quick_check: every page of every b-tree is read and checked for
//     well-formed structure, but indexes are not cross-checked against their
//     tables as integrity_check does. It costs one read of the file: 0.2 s
//     for 100,000 files (206 MiB) with a warm cache, where integrity_check
//     took 0.6 s, and the scan that follows every start reads the files table
//     anyway;
//   - that each table has the columns this version uses and that the state
//     rows exist and agree, a handful of point reads.
func openDB(path string) (*sql.DB, int64, error) {
	ctx := context.Background()
	if err := checkHeader(path); err != nil {
		return nil, 0, err
	}
	// WAL lets readers of the file (say, a diagnostics tool) run while a scan
	// writes; synchronous=NORMAL is durable to the last checkpoint and
	// always consistent, which suits a cache of facts that a scan can
	// rebuild. busy_timeout covers another process holding the lock briefly.
	dsn := path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, 0, fmt.Errorf("open: %w", err)
	}
	// One connection: SQLite allows one writer anyway, and it rules out
	// SQLITE_BUSY between our own connections. Code here therefore never
	// runs a query while it holds an open *sql.Rows.
	db.SetMaxOpenConns(1)
	db.SetConnMaxLifetime(0)
	rev, err := checkAndMigrate(ctx, db)
	if err != nil {
		db.Close()
		return nil, 0, err
	}
	return db, rev, nil
}

func checkAndMigrate(ctx context.Context, db *sql.DB) (int64, error) {
	// The first statement opens the connection, which reads the header and
	// sets the journal mode: a file that is not a database fails here.
	var version int
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		// Strict: the statement is trivial, so whatever fails in it is
		// the file's doing unless it is the environment's.
		return 0, classify("read schema version", err, true)
	}
	if err := quickCheck(ctx, db); err != nil {
		return 0, err
	}
	if version == 0 {
		// A database this program created has tables only once its version
		// is set (migrate does both in one transaction), so tables at version
		// 0 mean a damaged header.
		var tables int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema`).Scan(&tables); err != nil {
			return 0, classify("read schema", err, true)
		}
		if tables > 0 {
			return 0, sqlitecheck.Damaged("schema version 0 but %d schema entries", tables)
		}
	}
	if err := migrate(ctx, db); err != nil {
		if errors.Is(err, ErrSchemaTooNew) {
			return 0, err
		}
		return 0, classify("migrate", err, false)
	}
	return checkSchema(ctx, db)
}

// quickCheck runs PRAGMA quick_check and reports what it found.
func quickCheck(ctx context.Context, db *sql.DB) error {
	// PRAGMA takes no parameters; the value is a constant.
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`PRAGMA quick_check(%d)`, quickCheckRows))
	if err != nil {
		return classify("quick_check", err, false)
	}
	var found []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return classify("quick_check", err, false)
		}
		found = append(found, s)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return classify("quick_check", err, false)
	}
	if len(found) == 1 && found[0] == "ok" {
		return nil
	}
	return sqlitecheck.Damaged("quick_check: %s", strings.Join(found, "; "))
}

// schemaProbes select every column this version reads or writes, so a table
// or column that is missing shows at Open rather than in the middle of a
// scan.
var schemaProbes = []string{
	`SELECT path, root, name, size, mtime_ns, inode, dev, recheck, id, piece_size, pieces, revision FROM files LIMIT 0`,
	`SELECT revision, op, path, name, size, mtime_ns, id FROM changes LIMIT 0`,
	`SELECT key, value FROM state LIMIT 0`,
}

// sqliteMagic begins every SQLite database file.
const sqliteMagic = "SQLite format 3\x00"

// headerSize is the size of an SQLite database header.
const headerSize = 100

// checkHeader reports a file at path that is not missing, not empty (how
// SQLite begins every database), and not a database SQLite can open: shorter
// than the header, without sqliteMagic, or with file format numbers other
// than 1 (rollback journal) and 2 (WAL), which SQLite refuses as
// "unsupported file format" and no SQLite since 3.7 writes.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		return nil // SQLite will say what is wrong with it
	}
	head := make([]byte, headerSize)
	n, err := io.ReadFull(f, head)
	switch {
	case n == 0 && (err == io.EOF || err == nil):
		return nil
	case errors.Is(err, io.ErrUnexpectedEOF):
		return sqlitecheck.Damaged("file is not a database: %d bytes, shorter than SQLite's header", n)
	case err != nil:
		return fmt.Errorf("read header: %w", err)
	case string(head[:len(sqliteMagic)]) != sqliteMagic:
		return sqlitecheck.Damaged("file is not a database: it does not begin with SQLite's header")
	case head[18] < 1 || head[18] > 2 || head[19] < 1 || head[19] > 2:
		return sqlitecheck.Damaged("file format numbers %d and %d in the header; SQLite writes 1 or 2", head[18], head[19])
	}
	return nil
}

// checkSchema checks the tables and the state rows of a database at
// schemaVersion and returns its revision.
func checkSchema(ctx context.Context, db *sql.DB) (int64, error) {
	for _, q := range schemaProbes {
		rows, err := db.QueryContext(ctx, q)
		if err == nil {
			err = rows.Close()
		}
		if err != nil {
			return 0, classify("schema", err, true)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, classify("read state", err, false)
	}
	defer tx.Rollback()
	var rows int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM state WHERE key IN ('revision', 'log_floor')`).Scan(&rows); err != nil {
		return 0, classify("read state", err, true)
	}
	if rows != 2 {
		return 0, sqlitecheck.Damaged("state table holds %d of its 2 rows", rows)
	}
	rev, floor, err := readState(ctx, tx)
	if err != nil {
		return 0, classify("read state", err, true)
	}
	if floor > rev {
		return 0, sqlitecheck.Damaged("change log floor %d is above the revision %d", floor, rev)
	}
	return rev, nil
}
