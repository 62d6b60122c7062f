package library

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/canopy-p2p/canopy/content"
)

// fileRow is a freshly hashed file, ready to be written.
type fileRow struct {
	path     string
	root     string
	name     string
	stat     fileStat
	recheck  bool
	manifest content.Manifest
	id       content.ID
}

// applyKind says what apply did.
type applyKind int

const (
	applyAdded applyKind = iota
	applyChanged
	applyUnchanged
)

// Change log operation codes as stored in the changes table.
const (
	dbOpAdd    = 1
	dbOpRemove = 2
)

// packPieces lays the piece hashes end to end, 32 bytes each.
func packPieces(pieces [][32]byte) []byte {
	b := make([]byte, 0, len(pieces)*32)
	for _, p := range pieces {
		b = append(b, p[:]...)
	}
	return b
}

// unpackPieces reverses packPieces.
func unpackPieces(b []byte) ([][32]byte, error) {
	if len(b)%32 != 0 {
		return nil, fmt.Errorf("piece hashes blob of %d bytes is not a multiple of 32", len(b))
	}
	pieces := make([][32]byte, len(b)/32)
	for i := range pieces {
		copy(pieces[i][:], b[i*32:])
	}
	return pieces, nil
}

// idFromBlob reads a content ID column, refusing a damaged one instead of
// panicking on a short slice.
func idFromBlob(b []byte) (content.ID, error) {
	if len(b) != content.IDLen {
		return content.ID{}, fmt.Errorf("content id of %d bytes in database", len(b))
	}
	return content.ID(b), nil
}

// apply writes a hashed file in one transaction. prev is the row the file had
// before, or nil. New content gets new revisions and change log entries (a
// change is a remove of the old entry then an add of the new one, so a
// receiver keyed by content ID drops the old ID); the same content under a
// new mtime or inode only updates the row, since nothing the network sees
// has changed.
func (l *Library) apply(ctx context.Context, prev *knownFile, row fileRow) (applyKind, error) {
	kind := applyAdded
	if prev != nil {
		kind = applyChanged
		if prev.id == row.id {
			kind = applyUnchanged
		}
	}
	err := l.write(ctx, func(tx *sql.Tx, rev *int64) error {
		if kind == applyUnchanged {
			_, err := tx.ExecContext(ctx,
				`UPDATE files SET root = ?, mtime_ns = ?, inode = ?, dev = ?, recheck = ? WHERE path = ?`,
				row.root, row.stat.mtimeNs, int64(row.stat.inode), int64(row.stat.dev), row.recheck, row.path)
			return err
		}
		if kind == applyChanged {
			*rev++
			if err := logChange(ctx, tx, *rev, dbOpRemove, row.path, *prev); err != nil {
				return err
			}
		}
		*rev++
		_, err := tx.ExecContext(ctx, `INSERT INTO files
			(path, root, name, size, mtime_ns, inode, dev, recheck, id, piece_size, pieces, revision)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT(path) DO UPDATE SET
				root = excluded.root, name = excluded.name, size = excluded.size,
				mtime_ns = excluded.mtime_ns, inode = excluded.inode, dev = excluded.dev,
				recheck = excluded.recheck, id = excluded.id, piece_size = excluded.piece_size,
				pieces = excluded.pieces, revision = excluded.revision`,
			row.path, row.root, row.name, row.stat.size, row.stat.mtimeNs,
			int64(row.stat.inode), int64(row.stat.dev), row.recheck, row.id[:],
			row.manifest.PieceSize, packPieces(row.manifest.Pieces), *rev)
		if err != nil {
			return err
		}
		added := knownFile{name: row.name, stat: row.stat, id: row.id}
		return logChange(ctx, tx, *rev, dbOpAdd, row.path, added)
	})
	if err != nil {
		return 0, l.dbErr("scan: write "+row.path, err)
	}
	return kind, nil
}

// remove deletes a file's row and logs its removal in one transaction.
func (l *Library) remove(ctx context.Context, path string, prev knownFile) error {
	err := l.write(ctx, func(tx *sql.Tx, rev *int64) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM files WHERE path = ?`, path); err != nil {
			return err
		}
		*rev++
		return logChange(ctx, tx, *rev, dbOpRemove, path, prev)
	})
	if err != nil {
		return l.dbErr("scan: remove "+path, err)
	}
	return nil
}

// setRoot records that a file is now reached through another shared root,
// which happens when the configured directories change.
func (l *Library) setRoot(ctx context.Context, path, root string) error {
	if _, err := l.db.ExecContext(ctx, `UPDATE files SET root = ? WHERE path = ?`, root, path); err != nil {
		return l.dbErr("scan: update root of "+path, err)
	}
	return nil
}

// logChange appends one change log entry.
func logChange(ctx context.Context, tx *sql.Tx, rev int64, op int, path string, f knownFile) error {
	_, err := tx.ExecContext(ctx,
		`INSERT INTO changes (revision, op, path, name, size, mtime_ns, id) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		rev, op, path, f.name, f.stat.size, f.stat.mtimeNs, f.id[:])
	return err
}

// write runs fn in a transaction. fn advances *rev once per revision it
// issues; the new value is stored with the transaction and published to
// Revision only once the transaction commits.
func (l *Library) write(ctx context.Context, fn func(tx *sql.Tx, rev *int64) error) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var rev int64
	if err := tx.QueryRowContext(ctx, `SELECT value FROM state WHERE key = 'revision'`).Scan(&rev); err != nil {
		return err
	}
	start := rev
	if err := fn(tx, &rev); err != nil {
		return err
	}
	if rev != start {
		if _, err := tx.ExecContext(ctx, `UPDATE state SET value = ? WHERE key = 'revision'`, rev); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	l.revision.Store(rev)
	return nil
}
