package library

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"time"

	"github.com/canopy-p2p/canopy/content"
)

// Entry is one shared file as the rest of the node sees it.
type Entry struct {
	// ID is the file's content ID.
	ID content.ID
	// Name is the base name of the file, which is what searches match.
	Name string
	// Path is the absolute local path. It is for this node only: it reveals
	// the user's directory layout and is not meant for other nodes.
	Path string
	// Size is the file length in bytes.
	Size int64
	// ModTime is the file's modification time when its content was last
	// hashed or found unchanged.
	ModTime time.Time
}

// Entries returns every shared file, ordered by path.
func (l *Library) Entries() ([]Entry, error) {
	entries, _, err := l.Snapshot()
	return entries, err
}

// Snapshot returns every shared file, ordered by path, with the revision
// they are the state of: the starting point for Changes after a full upload.
func (l *Library) Snapshot() ([]Entry, int64, error) {
	if err := l.check(); err != nil {
		return nil, 0, err
	}
	ctx := context.Background()
	tx, err := l.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, l.dbErr("entries", err)
	}
	defer tx.Rollback()
	rev, _, err := readState(ctx, tx)
	if err != nil {
		return nil, 0, l.dbErr("entries", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT path, name, size, mtime_ns, id FROM files ORDER BY path`)
	if err != nil {
		return nil, 0, l.dbErr("entries", err)
	}
	defer rows.Close()
	var entries []Entry
	for rows.Next() {
		var (
			e     Entry
			mtime int64
			id    []byte
		)
		if err := rows.Scan(&e.Path, &e.Name, &e.Size, &mtime, &id); err != nil {
			return nil, 0, l.dbErr("entries", err)
		}
		e.ModTime = time.Unix(0, mtime)
		if e.ID, err = idFromBlob(id); err != nil {
			return nil, 0, l.dbErr("entries", err)
		}
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, l.dbErr("entries", err)
	}
	return entries, rev, nil
}

// Count returns the number of shared files.
func (l *Library) Count() (int, error) {
	if err := l.check(); err != nil {
		return 0, err
	}
	var n int
	if err := l.db.QueryRow(`SELECT count(*) FROM files`).Scan(&n); err != nil {
		return 0, l.dbErr("count", err)
	}
	return n, nil
}

// Manifest returns the manifest of a shared file and the path to read it
// from. When several paths hold the content, the first one still as it was
// hashed wins. If the file has changed on disk since it was hashed, Manifest
// returns ErrStale rather than a manifest the data would fail; if no file has
// the ID, ErrNotFound. The manifest is read from the database on each call
// (32 bytes per piece), so an uploader serving it often should cache it.
func (l *Library) Manifest(id content.ID) (content.Manifest, string, error) {
	return l.manifest(id, nil)
}

// manifest is Manifest over the paths keep accepts (nil: all).
func (l *Library) manifest(id content.ID, keep func(path string) bool) (content.Manifest, string, error) {
	if err := l.check(); err != nil {
		return content.Manifest{}, "", err
	}
	type candidate struct {
		path      string
		stat      fileStat
		pieceSize uint32
		pieces    []byte
	}
	// Read every candidate before touching the disk: with one database
	// connection, the rows must be closed before anything else can query.
	var cands []candidate
	rows, err := l.db.Query(`SELECT path, size, mtime_ns, inode, dev, piece_size, pieces FROM files WHERE id = ? ORDER BY path`, id[:])
	if err != nil {
		return content.Manifest{}, "", l.dbErr("manifest "+id.String(), err)
	}
	for rows.Next() {
		var (
			c        candidate
			ino, dev int64
		)
		if err := rows.Scan(&c.path, &c.stat.size, &c.stat.mtimeNs, &ino, &dev, &c.pieceSize, &c.pieces); err != nil {
			rows.Close()
			return content.Manifest{}, "", l.dbErr("manifest "+id.String(), err)
		}
		c.stat.inode, c.stat.dev = uint64(ino), uint64(dev)
		if keep == nil || keep(c.path) {
			cands = append(cands, c)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return content.Manifest{}, "", l.dbErr("manifest "+id.String(), err)
	}
	if len(cands) == 0 {
		return content.Manifest{}, "", fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	for _, c := range cands {
		fi, err := os.Lstat(c.path)
		if err != nil || !fi.Mode().IsRegular() || statOf(fi) != c.stat {
			continue
		}
		pieces, err := unpackPieces(c.pieces)
		if err != nil {
			return content.Manifest{}, "", fmt.Errorf("library: manifest %s: %s: %w", id, c.path, err)
		}
		m := content.Manifest{Size: c.stat.size, PieceSize: c.pieceSize, Pieces: pieces}
		// A damaged database must not make this node serve a manifest that
		// does not match the ID it is asked for.
		if err := m.Verify(id); err != nil {
			return content.Manifest{}, "", fmt.Errorf("library: manifest %s: %s: %w", id, c.path, err)
		}
		return m, c.path, nil
	}
	return content.Manifest{}, "", fmt.Errorf("%w: %s: %s", ErrStale, id, cands[0].path)
}
