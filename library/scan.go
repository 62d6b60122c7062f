package library

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/content"
)

// PartialSuffix marks a file that a download is still writing. Such files are
// never shared: their content is not yet what their name promises.
const PartialSuffix = ".canopy-part"

// ScanResult counts what a scan found and did.
type ScanResult struct {
	// Added counts files shared for the first time.
	Added int
	// Changed counts files whose content changed.
	Changed int
	// Removed counts files no longer shared: deleted, unreadable, or under a
	// directory no longer configured.
	Removed int
	// Unchanged counts files whose content is as before, including files
	// hashed again because their mtime or inode changed.
	Unchanged int
	// Skipped counts files left for the next scan: they could not be read,
	// or they changed while being hashed.
	Skipped int
	// Hashed counts files hashed in this scan.
	Hashed int
	// Bytes counts bytes hashed in this scan.
	Bytes int64
}

// errChangedWhileHashing reports a file whose stat differed after hashing.
var errChangedWhileHashing = errors.New("file changed while being hashed")

// knownFile is a row of the files table without the piece hashes.
type knownFile struct {
	root      string
	name      string
	stat      fileStat
	recheck   bool
	id        content.ID
	pieceSize uint32
}

// scan is the state of one Scan call.
type scan struct {
	l     *Library
	ctx   context.Context
	known map[string]knownFile
	// seen holds the paths that are still shared after this scan.
	seen map[string]bool
	res  ScanResult
}

// Scan brings the library up to date with the configured directories: it
// hashes new and changed files, removes vanished ones, and logs every change
// under a new revision. Only regular files are shared; symbolic links, names
// starting with "." and files ending in PartialSuffix are skipped, and so are
// the library's own database files. A file that cannot be read is logged and
// skipped without stopping the scan.
//
// Each change commits on its own, so a scan stopped by ctx or Close keeps
// the work done so far and returns the partial result with an error wrapping
// ctx.Err() (or ErrClosed). A scan stopped before its walk finished removes
// nothing, since it has not seen every file.
func (l *Library) Scan(ctx context.Context) (ScanResult, error) {
	if err := l.check(); err != nil {
		return ScanResult{}, err
	}
	l.scanMu.Lock()
	defer l.scanMu.Unlock()
	if err := l.check(); err != nil {
		return ScanResult{}, err
	}
	l.scans.Add(1)
	l.scanStarted()
	res, err := l.scan(ctx)
	l.scanEnded(res, err)
	return res, err
}

// scan is Scan's work, with scanMu held.
func (l *Library) scan(ctx context.Context) (ScanResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(l.ctx, cancel)
	defer stop()

	known, err := l.loadKnown(ctx)
	if err != nil {
		return ScanResult{}, err
	}
	s := &scan{l: l, ctx: ctx, known: known, seen: make(map[string]bool, len(known))}
	for _, root := range l.roots() {
		if err := s.walk(root); err != nil {
			return s.res, s.stopped(err)
		}
	}
	if err := s.removeVanished(); err != nil {
		return s.res, s.stopped(err)
	}
	if err := l.pruneLog(ctx); err != nil {
		return s.res, s.stopped(err)
	}
	return s.res, nil
}

// stopped turns an error that ended a scan into the one Scan returns. A
// cancelled or closed scan reports that, whatever operation noticed it;
// other errors come from the database helpers, already wrapped.
func (s *scan) stopped(err error) error {
	if s.l.closed.Load() {
		return fmt.Errorf("library: scan: %w", ErrClosed)
	}
	if cerr := s.ctx.Err(); cerr != nil {
		return fmt.Errorf("library: scan: %w", cerr)
	}
	return err
}

// roots resolves the configured directories again (one may have appeared
// or gone since) and installs them. A root given as a symbolic link is
// resolved so the walk enters it, and a root configured twice is walked
// once. Roots come deepest first: a root inside another is walked before
// it, so that its files belong to it (seen then skips them in the outer
// walk), and they take its visibility.
func (l *Library) roots() []string {
	roots := resolve(l.configuredShares(), l.log)
	l.setRoots(roots)
	var out []string
	for _, r := range roots {
		if r.real != "" && !slices.Contains(out, r.real) {
			out = append(out, r.real)
		}
	}
	return out
}

// loadKnown reads the files table, less the piece hashes.
func (l *Library) loadKnown(ctx context.Context) (map[string]knownFile, error) {
	rows, err := l.db.QueryContext(ctx,
		`SELECT path, root, name, size, mtime_ns, inode, dev, recheck, id, piece_size FROM files`)
	if err != nil {
		return nil, l.dbErr("scan: load files", err)
	}
	defer rows.Close()
	known := make(map[string]knownFile)
	for rows.Next() {
		var (
			path     string
			k        knownFile
			ino, dev int64
			id       []byte
		)
		if err := rows.Scan(&path, &k.root, &k.name, &k.stat.size, &k.stat.mtimeNs,
			&ino, &dev, &k.recheck, &id, &k.pieceSize); err != nil {
			return nil, l.dbErr("scan: load files", err)
		}
		k.stat.inode, k.stat.dev = uint64(ino), uint64(dev)
		if k.id, err = idFromBlob(id); err != nil {
			return nil, l.dbErr("scan: load files", fmt.Errorf("%s: %w", path, err))
		}
		known[path] = k
	}
	if err := rows.Err(); err != nil {
		return nil, l.dbErr("scan: load files", err)
	}
	return known, nil
}

// walk visits every file under root. It returns an error only when the scan
// must stop.
func (s *scan) walk(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if cerr := s.ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			// An unreadable directory (or root) is skipped; files already
			// listed under it stay unseen and are removed.
			s.l.log.Warn("cannot read directory; skipping it", zap.String("path", path), zap.Error(err))
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if path != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasSuffix(d.Name(), PartialSuffix) || s.l.isOwn(path) || s.seen[path] {
			return nil
		}
		return s.visit(root, path, d)
	})
}

// visit brings one file's row up to date.
func (s *scan) visit(root, path string, d fs.DirEntry) error {
	fi, err := d.Info()
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.l.log.Warn("cannot stat file; not sharing it", zap.String("path", path), zap.Error(err))
			s.res.Skipped++
		}
		return nil
	}
	st := statOf(fi)
	pieceSize := s.l.cfg.pieceSizeFor(st.size)
	if pieceSize == 0 {
		s.l.log.Warn("file too large to share", zap.String("path", path), zap.Int64("size", st.size))
		s.res.Skipped++
		return nil
	}
	old, isKnown := s.known[path]
	if isKnown && !old.recheck && old.stat == st && old.pieceSize == pieceSize {
		s.seen[path] = true
		s.res.Unchanged++
		if old.root != root {
			return s.l.setRoot(s.ctx, path, root)
		}
		return nil
	}

	m, st, err := s.hash(path, pieceSize)
	switch {
	case s.ctx.Err() != nil:
		return s.ctx.Err()
	case errors.Is(err, errChangedWhileHashing):
		// A row from before stays until the next scan; Manifest notices
		// that it is stale meanwhile.
		s.l.log.Debug("file changed while hashing; retrying next scan", zap.String("path", path))
		s.seen[path] = isKnown
		s.res.Skipped++
		return nil
	case err != nil:
		s.l.log.Warn("cannot read file; not sharing it", zap.String("path", path), zap.Error(err))
		s.res.Skipped++
		return nil
	}
	s.seen[path] = true
	row := fileRow{
		path:     path,
		root:     root,
		name:     filepath.Base(path),
		stat:     st,
		recheck:  st.racy(time.Now()),
		manifest: m,
		id:       m.ID(),
	}
	var prev *knownFile
	if isKnown {
		prev = &old
	}
	kind, err := s.l.apply(s.ctx, prev, row)
	if err != nil {
		return err
	}
	switch kind {
	case applyAdded:
		s.res.Added++
	case applyChanged:
		s.res.Changed++
	case applyUnchanged:
		s.res.Unchanged++
	}
	return nil
}

// hash hashes the file at path and returns its manifest with the stat it was
// hashed at. It fails with errChangedWhileHashing when the file changed under
// it: a write (size or mtime differ) or a replacement (the path now names
// another inode, as after an atomic rename).
func (s *scan) hash(path string, pieceSize uint32) (content.Manifest, fileStat, error) {
	s.l.hashing(path)
	defer s.l.hashing("")
	f, err := s.l.openFile(path)
	if err != nil {
		return content.Manifest{}, fileStat{}, err
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return content.Manifest{}, fileStat{}, err
	}
	st := statOf(before)
	m, err := content.Hash(ctxReader{s.ctx, f}, pieceSize)
	s.res.Hashed++
	s.res.Bytes += m.Size
	s.l.hashedFiles.Add(1)
	s.l.hashedBytes.Add(m.Size)
	if err != nil {
		return content.Manifest{}, fileStat{}, err
	}
	after, err := f.Stat()
	if err != nil {
		return content.Manifest{}, fileStat{}, err
	}
	now, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return content.Manifest{}, fileStat{}, errChangedWhileHashing
		}
		return content.Manifest{}, fileStat{}, err
	}
	if statOf(after) != st || statOf(now) != st || m.Size != st.size {
		return content.Manifest{}, fileStat{}, errChangedWhileHashing
	}
	return m, st, nil
}

// removeVanished removes the rows of files not seen by this scan.
func (s *scan) removeVanished() error {
	var gone []string
	for path := range s.known {
		if !s.seen[path] {
			gone = append(gone, path)
		}
	}
	slices.Sort(gone)
	for _, path := range gone {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		if err := s.l.remove(s.ctx, path, s.known[path]); err != nil {
			return err
		}
		s.res.Removed++
	}
	return nil
}

// ctxReader stops a read loop once its context is done, so that cancelling a
// scan does not wait for a large file to finish hashing.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
