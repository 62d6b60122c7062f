package downloads

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/sqlitecheck"
	"github.com/canopy-p2p/canopy/wire"
)

// schemaVersion is stored in PRAGMA user_version; 0 is an empty database.
const schemaVersion = 1

// schema creates version 1. One row per job; what the job needs to resume
// is in its row: the manifest once known (piece_size, hashes), the record
// of verified pieces (held) with the part file's stamp when it was written,
// and the destination while the file is being placed (target).
var schema = []string{
	`CREATE TABLE jobs (
		id          INTEGER PRIMARY KEY AUTOINCREMENT,
		content     BLOB    NOT NULL,
		name        TEXT    NOT NULL,
		out_dir     TEXT    NOT NULL,
		sources     TEXT    NOT NULL,
		state       TEXT    NOT NULL,
		reason      TEXT    NOT NULL,
		created_ns  INTEGER NOT NULL,
		updated_ns  INTEGER NOT NULL,
		finished_ns INTEGER NOT NULL,
		size        INTEGER NOT NULL,
		piece_size  INTEGER NOT NULL,
		hashes      BLOB    NOT NULL,
		part        TEXT    NOT NULL,
		held        BLOB    NOT NULL,
		stamp_size  INTEGER NOT NULL,
		stamp_mtime INTEGER NOT NULL,
		stamp_ino   INTEGER NOT NULL,
		target      TEXT    NOT NULL,
		path        TEXT    NOT NULL,
		fetched     INTEGER NOT NULL,
		reports     TEXT    NOT NULL
	)`,
	`CREATE INDEX jobs_by_state ON jobs(state, id)`,
}

// columns are the jobs table's columns in the order row.scan reads them.
const columns = `id, content, name, out_dir, sources, state, reason, created_ns, updated_ns, finished_ns,
	size, piece_size, hashes, part, held, stamp_size, stamp_mtime, stamp_ino, target, path, fetched, reports`

// maxStoredSources bounds the sources kept with a job.
const maxStoredSources = 64

// row is a job as stored.
type row struct {
	id                         int64
	content                    content.ID
	name, outDir               string
	sources                    []wire.Source
	state                      State
	reason                     string
	created, updated, finished time.Time
	size                       int64
	manifest                   *content.Manifest
	part                       string
	held                       pieceSet
	stamp                      stamp
	target, path               string
	fetched                    int64
	reports                    []Source
}

// stamp identifies a part file's content as of a record: if any of them
// changed, something wrote to the file since.
type stamp struct {
	size, mtime, ino int64
}

type scanner interface{ Scan(...any) error }

// scanRow reads a row; a row that does not decode is reported as damage.
func scanRow(s scanner) (row, error) {
	var (
		r                       row
		cid, hashes, held       []byte
		sources, state, reports string
		created, updated, fin   int64
		pieceSize               int64
	)
	if err := s.Scan(&r.id, &cid, &r.name, &r.outDir, &sources, &state, &r.reason, &created, &updated, &fin,
		&r.size, &pieceSize, &hashes, &r.part, &held, &r.stamp.size, &r.stamp.mtime, &r.stamp.ino,
		&r.target, &r.path, &r.fetched, &reports); err != nil {
		return row{}, err
	}
	if len(cid) != len(r.content) {
		return row{}, fmt.Errorf("job %d: content ID of %d bytes", r.id, len(cid))
	}
	copy(r.content[:], cid)
	r.state = State(state)
	if !r.state.valid() {
		return row{}, fmt.Errorf("job %d: unknown state %q", r.id, state)
	}
	r.created, r.updated = time.Unix(0, created), time.Unix(0, updated)
	if fin != 0 {
		r.finished = time.Unix(0, fin)
	}
	var err error
	if r.sources, err = decodeSources(sources); err != nil {
		return row{}, fmt.Errorf("job %d: %w", r.id, err)
	}
	if reports != "" {
		if err := json.Unmarshal([]byte(reports), &r.reports); err != nil {
			return row{}, fmt.Errorf("job %d: reports: %w", r.id, err)
		}
	}
	if pieceSize != 0 {
		m := content.Manifest{Size: r.size, PieceSize: uint32(pieceSize)}
		if len(hashes)%32 != 0 || int64(pieceSize) != int64(m.PieceSize) {
			return row{}, fmt.Errorf("job %d: manifest of %d hash bytes, piece size %d", r.id, len(hashes), pieceSize)
		}
		m.Pieces = make([][32]byte, len(hashes)/32)
		for i := range m.Pieces {
			copy(m.Pieces[i][:], hashes[32*i:])
		}
		// A manifest in the database is trusted no more than one from a
		// peer: it must still name this content.
		if err := m.Verify(r.content); err != nil {
			return row{}, fmt.Errorf("job %d: stored manifest: %w", r.id, err)
		}
		r.manifest = &m
		if r.held, err = unmarshalPieceSet(held); err != nil {
			return row{}, fmt.Errorf("job %d: %w", r.id, err)
		}
		if r.held.n != m.PieceCount() {
			return row{}, fmt.Errorf("job %d: %w: %d pieces for a manifest of %d", r.id, ErrBadRecord, r.held.n, m.PieceCount())
		}
	}
	return r, nil
}

// storedSource is a wire.Source as the jobs table keeps it.
type storedSource struct {
	Node identity.NodeID   `json:"node"`
	Via  []identity.NodeID `json:"via,omitempty"`
}

func encodeSources(src []wire.Source) string {
	out := make([]storedSource, 0, len(src))
	for _, s := range src {
		out = append(out, storedSource{Node: s.Node, Via: s.Via})
	}
	b, _ := json.Marshal(out)
	return string(b)
}

func decodeSources(s string) ([]wire.Source, error) {
	var in []storedSource
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return nil, fmt.Errorf("sources: %w", err)
	}
	if len(in) > maxStoredSources {
		return nil, fmt.Errorf("sources: %d, more than %d", len(in), maxStoredSources)
	}
	out := make([]wire.Source, 0, len(in))
	for _, s := range in {
		out = append(out, wire.Source{Node: s.Node, Via: s.Via})
	}
	return out, nil
}

func encodeReports(r []Source) string {
	if len(r) == 0 {
		return ""
	}
	b, _ := json.Marshal(r)
	return string(b)
}

func manifestColumns(m *content.Manifest) (pieceSize int64, hashes []byte) {
	if m == nil {
		return 0, []byte{}
	}
	hashes = make([]byte, 0, 32*len(m.Pieces))
	for _, h := range m.Pieces {
		hashes = append(hashes, h[:]...)
	}
	return int64(m.PieceSize), hashes
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// store is the jobs table. Its methods are called with the manager's lock
// held or from one job's goroutine for that job's row; the one connection
// serialises them.
type store struct {
	db *sql.DB
}

func (s *store) insert(ctx context.Context, r *row) error {
	ps, hashes := manifestColumns(r.manifest)
	held := []byte{}
	if r.manifest != nil {
		held = r.held.marshal()
	}
	// A job carried over from a damaged database keeps its ID (its part
	// file is named by it); a new one gets the next.
	var id any
	if r.id != 0 {
		id = r.id
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO jobs(id, content, name, out_dir, sources, state, reason, created_ns, updated_ns,
		finished_ns, size, piece_size, hashes, part, held, stamp_size, stamp_mtime, stamp_ino, target, path, fetched, reports)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, r.content[:], r.name, r.outDir, encodeSources(r.sources), string(r.state), r.reason, nanos(r.created), nanos(r.updated),
		nanos(r.finished), r.size, ps, hashes, r.part, held, r.stamp.size, r.stamp.mtime, r.stamp.ino, r.target, r.path,
		r.fetched, encodeReports(r.reports))
	if err != nil {
		return err
	}
	if r.id == 0 {
		r.id, err = res.LastInsertId()
	}
	return err
}

// save writes every column of r but its ID and creation time.
func (s *store) save(ctx context.Context, r *row) error {
	ps, hashes := manifestColumns(r.manifest)
	held := []byte{}
	if r.manifest != nil {
		held = r.held.marshal()
	}
	_, err := s.db.ExecContext(ctx, `UPDATE jobs SET name = ?, sources = ?, state = ?, reason = ?, updated_ns = ?, finished_ns = ?,
		size = ?, piece_size = ?, hashes = ?, part = ?, held = ?, stamp_size = ?, stamp_mtime = ?, stamp_ino = ?, target = ?,
		path = ?, fetched = ?, reports = ? WHERE id = ?`,
		r.name, encodeSources(r.sources), string(r.state), r.reason, nanos(r.updated), nanos(r.finished),
		r.size, ps, hashes, r.part, held, r.stamp.size, r.stamp.mtime, r.stamp.ino, r.target,
		r.path, r.fetched, encodeReports(r.reports), r.id)
	return err
}

// saveRecord writes a job's piece record, with its stamp and fetched bytes:
// the write that follows every sync of the part file.
func (s *store) saveRecord(ctx context.Context, id int64, held pieceSet, st stamp, fetched int64, updated time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE jobs SET held = ?, stamp_size = ?, stamp_mtime = ?, stamp_ino = ?, fetched = ?,
		updated_ns = ? WHERE id = ?`, held.marshal(), st.size, st.mtime, st.ino, fetched, nanos(updated), id)
	return err
}

func (s *store) delete(ctx context.Context, ids []int64) error {
	for _, id := range ids {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM jobs WHERE id = ?`, id); err != nil {
			return err
		}
	}
	return nil
}

// load reads every job, oldest first.
func (s *store) load(ctx context.Context) ([]row, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+columns+` FROM jobs ORDER BY id`)
	if err != nil {
		return nil, classify("read jobs", err, true)
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return nil, classify("read jobs", err, true)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("read jobs", err, true)
	}
	return out, nil
}

// salvage reads what it can of the jobs of a damaged database at path: row
// by row, skipping rows that do not decode, until the table cannot be read
// any further. It never writes to the file.
func salvage(path string) (saved []row, lost int) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(1000)")
	if err != nil {
		return nil, 0
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rows, err := db.Query(`SELECT ` + columns + ` FROM jobs ORDER BY id`)
	if err != nil {
		return nil, 0
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			lost++
			continue
		}
		saved = append(saved, r)
	}
	if rows.Err() != nil {
		lost++ // at least the row where reading stopped
	}
	return saved, lost
}

// classify makes err a sqlitecheck.DamagedError when SQLite says the file is damaged,
// or, for a step that only reads what a sound database must hold (strict),
// when it is anything but the environment's fault.
func classify(step string, err error, strict bool) error {
	c := sqlitecheck.Code(err)
	if c == sqlite3.SQLITE_CORRUPT || c == sqlite3.SQLITE_NOTADB || (strict && !sqlitecheck.IsEnvironment(err)) {
		return sqlitecheck.Damaged("%s: %v", step, err)
	}
	return fmt.Errorf("%s: %w", step, err)
}

// ErrSchemaTooNew is returned for a database of a later version of this
// program; it is left alone.
var ErrSchemaTooNew = errors.New("downloads: database written by a newer Canopy")

// openDB opens the database at path, checks it as the library does its own
// (SQLite's header before SQLite opens it, PRAGMA quick_check, the columns
// this version uses), and creates the schema in a new one. A damaged file
// gives a *sqlitecheck.DamagedError.
func openDB(path string) (*sql.DB, error) {
	ctx := context.Background()
	if err := checkHeader(path); err != nil {
		return nil, err
	}
	// WAL with synchronous=NORMAL: a commit survives a killed process, and
	// a power cut can only lose the last commits, which makes the piece
	// record lag the part file (fine), never lead it.
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	db.SetMaxOpenConns(1)
	db.SetConnMaxLifetime(0)
	if err := checkAndMigrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func checkAndMigrate(ctx context.Context, db *sql.DB) error {
	var version int
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return classify("read schema version", err, true)
	}
	var found []string
	rows, err := db.QueryContext(ctx, `PRAGMA quick_check(3)`)
	if err != nil {
		return classify("quick_check", err, false)
	}
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
	if len(found) != 1 || found[0] != "ok" {
		return sqlitecheck.Damaged("quick_check: %s", strings.Join(found, "; "))
	}
	switch {
	case version > schemaVersion:
		return fmt.Errorf("%w: version %d, this program knows %d", ErrSchemaTooNew, version, schemaVersion)
	case version == 0:
		var tables int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema`).Scan(&tables); err != nil {
			return classify("read schema", err, true)
		}
		if tables > 0 {
			return sqlitecheck.Damaged("schema version 0 but %d schema entries", tables)
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return classify("create schema", err, false)
		}
		defer tx.Rollback()
		for _, stmt := range schema {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return classify("create schema", err, false)
			}
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion)); err != nil {
			return classify("create schema", err, false)
		}
		if err := tx.Commit(); err != nil {
			return classify("create schema", err, false)
		}
	}
	r, err := db.QueryContext(ctx, `SELECT `+columns+` FROM jobs LIMIT 0`)
	if err == nil {
		err = r.Close()
	}
	if err != nil {
		return classify("schema", err, true)
	}
	return nil
}

const sqliteMagic = "SQLite format 3\x00"

// checkHeader reports a file that is neither missing, empty, nor an SQLite
// database SQLite can open, before SQLite opens it (and folds a write-ahead
// log into it).
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
		return nil
	}
	head := make([]byte, 100)
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
	}
	return nil
}
