package library

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/content"
)

// Visibility is who a shared folder is shared with. The library only keeps
// it; who counts as a contact or a trusted contact is the node's people
// service, and the node's uploader checks it for every request.
type Visibility uint8

// Visibilities, from the widest to the narrowest. The values are on the
// wire (wire.ListFolder.Visibility).
const (
	// VisibleEveryone: any node may find (the files enter the supernodes'
	// index), browse and download it. What Canopy always did.
	VisibleEveryone Visibility = 0
	// VisibleContacts: only contacts (and trusted contacts) may browse and
	// download it; it never enters a supernode's index.
	VisibleContacts Visibility = 1
	// VisibleTrusted: only trusted contacts may.
	VisibleTrusted Visibility = 2
)

// String returns "everyone", "contacts" or "trusted".
func (v Visibility) String() string {
	switch v {
	case VisibleEveryone:
		return "everyone"
	case VisibleContacts:
		return "contacts"
	case VisibleTrusted:
		return "trusted"
	}
	return "Visibility(" + strconv.Itoa(int(v)) + ")"
}

// ParseVisibility reads "everyone", "contacts" or "trusted".
func ParseVisibility(s string) (Visibility, error) {
	for _, v := range []Visibility{VisibleEveryone, VisibleContacts, VisibleTrusted} {
		if s == v.String() {
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: visibility %q is not everyone, contacts or trusted", ErrConfig, s)
}

// Share is a shared directory with its visibility.
type Share struct {
	Dir        string
	Visibility Visibility
}

// root is a configured share as the library uses it: the directory, its
// real path (symbolic links resolved; empty while it cannot be resolved),
// the name other nodes see it under, and its visibility.
type root struct {
	dir, real, name string
	vis             Visibility
}

// shareState is the library's configured shares, which SetShares changes
// while the node runs. Guarded by its mutex; gen counts the changes to who
// may see what, so that an uploader of the public index knows to start
// over.
type shareState struct {
	mu    sync.RWMutex
	roots []root
	gen   int64
}

// validShares checks the shares and makes their directories absolute.
func validShares(shares []Share) ([]Share, error) {
	out := make([]Share, 0, len(shares))
	for _, s := range shares {
		if s.Visibility > VisibleTrusted {
			return nil, fmt.Errorf("%w: dir %q: visibility %d", ErrConfig, s.Dir, s.Visibility)
		}
		abs, err := filepath.Abs(s.Dir)
		if err != nil {
			return nil, fmt.Errorf("%w: dir %q: %v", ErrConfig, s.Dir, err)
		}
		out = append(out, Share{Dir: abs, Visibility: s.Visibility})
	}
	return out, nil
}

// resolve turns shares into roots: real paths resolved, names made unique
// ("Music", "Music (2)"), a directory configured twice kept once with the
// narrowest visibility, and sorted deepest real path first, so that a walk
// claims each file for the most specific share that holds it.
func resolve(shares []Share, log *zap.Logger) []root {
	var roots []root
	names := make(map[string]bool)
	for _, s := range shares {
		real, err := filepath.EvalSymlinks(s.Dir)
		if err != nil {
			log.Warn("shared directory unavailable; its files are not shared",
				zap.String("dir", s.Dir), zap.Error(err))
			real = ""
		}
		if i := slices.IndexFunc(roots, func(r root) bool { return r.dir == s.Dir || (real != "" && r.real == real) }); i >= 0 {
			roots[i].vis = max(roots[i].vis, s.Visibility)
			continue
		}
		base := filepath.Base(s.Dir)
		if base == "/" || base == "." || base == "" {
			base = "shared"
		}
		name := base
		for n := 2; names[name]; n++ {
			name = fmt.Sprintf("%s (%d)", base, n)
		}
		names[name] = true
		roots = append(roots, root{dir: s.Dir, real: real, name: name, vis: s.Visibility})
	}
	// Deepest first; ties (never nested) in configured order.
	slices.SortStableFunc(roots, func(a, b root) int { return len(b.real) - len(a.real) })
	return roots
}

// sameAccess reports whether two root sets give every file the same
// visibility and name.
func sameAccess(a, b []root) bool {
	return slices.Equal(a, b)
}

// setRoots installs roots, counting a change of who may see what.
func (l *Library) setRoots(roots []root) {
	l.shares.mu.Lock()
	defer l.shares.mu.Unlock()
	if !sameAccess(l.shares.roots, roots) {
		l.shares.gen++
	}
	l.shares.roots = roots
}

// SetShares replaces the shared directories while the library runs. The
// next Scan adds the files of new directories and removes those of
// directories no longer shared; a change of visibility takes effect at once
// for browsing and downloads, and for the index at the next upload (see
// AccessGen).
func (l *Library) SetShares(shares []Share) error {
	if err := l.check(); err != nil {
		return err
	}
	s, err := validShares(shares)
	if err != nil {
		return err
	}
	l.sharesCfg.Lock()
	l.cfg.Shares = s
	l.sharesCfg.Unlock()
	l.setRoots(resolve(s, zap.NewNop())) // the next scan warns about a missing one
	return nil
}

// configuredShares returns the shares of the config: Dirs (everyone) and
// Shares.
func (l *Library) configuredShares() []Share {
	l.sharesCfg.Lock()
	defer l.sharesCfg.Unlock()
	return slices.Clone(l.cfg.Shares)
}

// AccessGen counts the changes to which files are visible to whom since
// Open. An uploader of the public index that sees it change uploads the
// whole index again instead of a delta: a folder made private must leave
// the supernodes' index, which no change log entry says.
func (l *Library) AccessGen() int64 {
	l.shares.mu.RLock()
	defer l.shares.mu.RUnlock()
	return l.shares.gen
}

// rootsNow returns the roots in force.
func (l *Library) rootsNow() []root {
	l.shares.mu.RLock()
	defer l.shares.mu.RUnlock()
	return l.shares.roots
}

// rootOf returns the most specific root holding path.
func rootOf(roots []root, path string) (root, bool) {
	for _, r := range roots {
		if r.real == "" {
			continue
		}
		if path == r.real || strings.HasPrefix(path, r.real+string(filepath.Separator)) || (r.real == string(filepath.Separator) && strings.HasPrefix(path, r.real)) {
			return r, true
		}
	}
	return root{}, false
}

// Placement says where a shared file is, as other nodes may see it.
type Placement struct {
	// Folder is the share's name (the base name of its directory, made
	// unique), and RelPath the file's path inside it, '/'-separated.
	Folder, RelPath string
	// Visibility is the share's.
	Visibility Visibility
}

// Place returns where path is shared, or false when no share in force holds
// it (a directory no longer shared, whose files the next scan removes):
// such a file is shown to no one.
func (l *Library) Place(path string) (Placement, bool) {
	r, ok := rootOf(l.rootsNow(), path)
	if !ok {
		return Placement{}, false
	}
	rel, err := filepath.Rel(r.real, path)
	if err != nil {
		return Placement{}, false
	}
	return Placement{Folder: r.name, RelPath: filepath.ToSlash(rel), Visibility: r.vis}, true
}

// Public reports whether path is shared with everyone, so that it may enter
// the supernodes' index.
func (l *Library) Public(path string) bool {
	p, ok := l.Place(path)
	return ok && p.Visibility == VisibleEveryone
}

// ManifestFor is Manifest restricted to the copies of the content that allow
// says may be served: those in shares whose visibility it accepts. A content
// held only elsewhere is ErrNotFound, as if it were not there.
func (l *Library) ManifestFor(id content.ID, allow func(Visibility) bool) (content.Manifest, string, error) {
	return l.manifest(id, func(path string) bool {
		p, ok := l.Place(path)
		return ok && allow(p.Visibility)
	})
}

// FolderInfo is one share as ListFolders shows it.
type FolderInfo struct {
	Name       string
	Visibility Visibility
}

// ListFolders returns the shares in force that allow accepts, in configured
// order less those that cannot be read.
func (l *Library) ListFolders(allow func(Visibility) bool) []FolderInfo {
	var out []FolderInfo
	for _, s := range l.configuredRootsOrder() {
		if s.real != "" && allow(s.vis) {
			out = append(out, FolderInfo{Name: s.name, Visibility: s.vis})
		}
	}
	return out
}

// configuredRootsOrder returns the roots in their configured order.
func (l *Library) configuredRootsOrder() []root {
	roots := slices.Clone(l.rootsNow())
	order := l.configuredShares()
	slices.SortStableFunc(roots, func(a, b root) int {
		return slices.IndexFunc(order, func(s Share) bool { return s.Dir == a.dir }) -
			slices.IndexFunc(order, func(s Share) bool { return s.Dir == b.dir })
	})
	return roots
}

// ListEntry is one file of a listing.
type ListEntry struct {
	Placement
	Size int64
	ID   content.ID
	// Cursor is where a listing continues after this entry: the folder
	// name and the path inside it, never the path on this disk.
	Cursor string
}

// listChunk is how many rows List reads at a time while it skips files the
// asker may not see.
const listChunk = 1000

// List returns up to max files that allow accepts, after the cursor of an
// earlier entry (empty: from the start), in path order, and whether more
// follow. The cursor names a folder and a path in it; a cursor for a folder
// no longer shared (or one this library never wrote) ends the listing:
// starting over would list the same files again.
func (l *Library) List(after string, max int, allow func(Visibility) bool) ([]ListEntry, bool, error) {
	if err := l.check(); err != nil {
		return nil, false, err
	}
	roots := l.rootsNow()
	from := ""
	if after != "" {
		folder, rel, _ := strings.Cut(after, "\x00")
		for _, r := range roots {
			if r.name == folder && r.real != "" {
				from = filepath.Join(r.real, filepath.FromSlash(rel))
				break
			}
		}
		if from == "" {
			return nil, false, nil
		}
	}
	var out []ListEntry
	for {
		rows, err := l.db.Query(`SELECT path, size, id FROM files WHERE path > ? ORDER BY path LIMIT ?`, from, listChunk)
		if err != nil {
			return nil, false, l.dbErr("list", err)
		}
		n := 0
		for rows.Next() {
			n++
			var (
				path string
				size int64
				id   []byte
			)
			if err := rows.Scan(&path, &size, &id); err != nil {
				rows.Close()
				return nil, false, l.dbErr("list", err)
			}
			from = path
			r, ok := rootOf(roots, path)
			if !ok || !allow(r.vis) {
				continue
			}
			cid, err := idFromBlob(id)
			if err != nil {
				rows.Close()
				return nil, false, l.dbErr("list", err)
			}
			if len(out) == max {
				rows.Close()
				return out, true, nil
			}
			rel, _ := filepath.Rel(r.real, path)
			rel = filepath.ToSlash(rel)
			out = append(out, ListEntry{
				Placement: Placement{Folder: r.name, RelPath: rel, Visibility: r.vis},
				Size:      size, ID: cid, Cursor: r.name + "\x00" + rel,
			})
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, false, l.dbErr("list", err)
		}
		if n < listChunk {
			return out, false, nil
		}
	}
}

// Has reports whether the library shares a file with the content ID, in any
// share.
func (l *Library) Has(id content.ID) (bool, error) {
	if err := l.check(); err != nil {
		return false, err
	}
	var n int
	if err := l.db.QueryRow(`SELECT count(*) FROM files WHERE id = ?`, id[:]).Scan(&n); err != nil {
		return false, l.dbErr("has", err)
	}
	return n > 0, nil
}

// ShareStatus is one share as the library's owner sees it.
type ShareStatus struct {
	// Dir is the directory as configured, Name the name other nodes see.
	Dir, Name  string
	Visibility Visibility
	// Available is false when the directory cannot be read now.
	Available bool
	// Files and Bytes count what it shares, as of the last scan.
	Files int
	Bytes int64
}

// ScanState says what the library's scans are doing.
type ScanState struct {
	// Scanning is set while a scan runs; Hashing is then the file being
	// hashed, if any.
	Scanning bool
	Hashing  string
	// LastScan is when the last scan ended (zero before the first), and
	// LastResult what it did.
	LastScan   time.Time
	LastResult ScanResult
	LastError  string
}

// Shares returns every configured share with its counts, in configured
// order.
func (l *Library) Shares() ([]ShareStatus, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	roots := l.configuredRootsOrder()
	out := make([]ShareStatus, len(roots))
	index := make(map[string]int, len(roots))
	for i, r := range roots {
		out[i] = ShareStatus{Dir: r.dir, Name: r.name, Visibility: r.vis, Available: r.real != ""}
		index[r.dir] = i
	}
	sorted := l.rootsNow()
	rows, err := l.db.QueryContext(context.Background(), `SELECT path, size FROM files`)
	if err != nil {
		return nil, l.dbErr("shares", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			path string
			size int64
		)
		if err := rows.Scan(&path, &size); err != nil {
			return nil, l.dbErr("shares", err)
		}
		if r, ok := rootOf(sorted, path); ok {
			s := &out[index[r.dir]]
			s.Files++
			s.Bytes += size
		}
	}
	if err := rows.Err(); err != nil && err != sql.ErrNoRows {
		return nil, l.dbErr("shares", err)
	}
	return out, nil
}

// ScanState returns what the scans are doing.
func (l *Library) ScanState() ScanState {
	l.scanState.Lock()
	defer l.scanState.Unlock()
	return l.scanState.s
}

// scanProgress is the live ScanState.
type scanProgress struct {
	sync.Mutex
	s ScanState
}

func (l *Library) scanStarted() {
	l.scanState.Lock()
	l.scanState.s.Scanning = true
	l.scanState.Unlock()
}

func (l *Library) hashing(path string) {
	l.scanState.Lock()
	l.scanState.s.Hashing = path
	l.scanState.Unlock()
}

func (l *Library) scanEnded(res ScanResult, err error) {
	l.scanState.Lock()
	defer l.scanState.Unlock()
	l.scanState.s = ScanState{LastScan: time.Now(), LastResult: res}
	if err != nil {
		l.scanState.s.LastError = err.Error()
	}
}
