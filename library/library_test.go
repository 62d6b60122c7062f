package library

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/canopy-p2p/canopy/content"
)

// past is a modification time far enough back that hashes of test files are
// never racy (see racyWindow), so rescans hash only what tests change.
var past = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// writeFile writes data at path with the given mtime.
func writeFile(t *testing.T, path, data string, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

type fixture struct {
	t      *testing.T
	share  string
	dbPath string
	logs   *observer.ObservedLogs
	lib    *Library
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, share: filepath.Join(t.TempDir(), "share"), dbPath: filepath.Join(t.TempDir(), "db", "library.db")}
	if err := os.MkdirAll(f.share, 0o755); err != nil {
		t.Fatal(err)
	}
	f.open(Config{})
	return f
}

// open (re)opens the library; cfg's Dirs and DBPath default to the fixture's.
func (f *fixture) open(cfg Config) {
	f.t.Helper()
	if f.lib != nil {
		if err := f.lib.Close(); err != nil {
			f.t.Fatal(err)
		}
	}
	if cfg.Dirs == nil {
		cfg.Dirs = []string{f.share}
	}
	if cfg.DBPath == "" {
		cfg.DBPath = f.dbPath
	}
	core, logs := observer.New(zap.DebugLevel)
	f.logs = logs
	cfg.Logger = zap.New(core)
	lib, err := Open(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	f.lib = lib
	f.t.Cleanup(func() { lib.Close() })
}

func (f *fixture) path(name string) string { return filepath.Join(f.share, name) }

func (f *fixture) write(name, data string, mtime time.Time) {
	f.t.Helper()
	writeFile(f.t, f.path(name), data, mtime)
}

func (f *fixture) scan(want ScanResult) {
	f.t.Helper()
	got, err := f.lib.Scan(context.Background())
	if err != nil {
		f.t.Fatalf("Scan: %v", err)
	}
	if got != want {
		f.t.Fatalf("Scan = %+v, want %+v", got, want)
	}
}

// changes returns Changes(since) as "op name" strings.
func (f *fixture) changes(since int64) []string {
	f.t.Helper()
	cs, rev, err := f.lib.Changes(since)
	if err != nil {
		f.t.Fatalf("Changes(%d): %v", since, err)
	}
	if rev != f.lib.Revision() {
		f.t.Fatalf("Changes revision %d, Revision() %d", rev, f.lib.Revision())
	}
	var out []string
	for _, c := range cs {
		out = append(out, c.Op.String()+" "+c.Entry.Name)
		if c.Entry.Path != f.path(c.Entry.Name) && !strings.HasSuffix(c.Entry.Path, "/"+c.Entry.Name) {
			f.t.Fatalf("change %v has path %s", c, c.Entry.Path)
		}
	}
	return out
}

func wantList(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s = %q, want %q", what, got, want)
	}
}

// checkManifests checks that the library's manifest of every entry equals a
// fresh content.HashFile of the file.
func (f *fixture) checkManifests() {
	f.t.Helper()
	entries, err := f.lib.Entries()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, e := range entries {
		want, err := content.HashFile(e.Path, content.DefaultPieceSize)
		if err != nil {
			f.t.Fatal(err)
		}
		if want.ID() != e.ID {
			f.t.Fatalf("%s: entry ID %s, HashFile %s", e.Path, e.ID, want.ID())
		}
		m, path, err := f.lib.Manifest(e.ID)
		if err != nil {
			f.t.Fatalf("Manifest(%s): %v", e.Name, err)
		}
		if m.Size != want.Size || m.PieceSize != want.PieceSize || !slices.Equal(m.Pieces, want.Pieces) {
			f.t.Fatalf("%s: manifest differs from HashFile", e.Name)
		}
		if _, err := os.Stat(path); err != nil {
			f.t.Fatalf("Manifest path %s: %v", path, err)
		}
	}
}

func TestScanLifecycle(t *testing.T) {
	f := newFixture(t)
	big := strings.Repeat("canopy", 100_000) // 600 kB: three pieces
	f.write("a.txt", "alpha", past)
	f.write("sub/b.bin", big, past)
	f.write("sub/deeper/c", "", past)
	// None of these are shared.
	f.write(".hidden", "h", past)
	f.write(".git/config", "g", past)
	f.write("movie.mkv"+PartialSuffix, "partial", past)
	if err := os.Symlink(f.path("a.txt"), f.path("link")); err != nil {
		t.Fatal(err)
	}

	rev0 := f.lib.Revision()
	f.scan(ScanResult{Added: 3, Hashed: 3, Bytes: int64(5 + len(big))})
	if n, err := f.lib.Count(); err != nil || n != 3 {
		t.Fatalf("Count = %d, %v", n, err)
	}
	wantList(t, "changes after first scan", f.changes(rev0), "add a.txt", "add b.bin", "add c")
	f.checkManifests()

	// A restart hashes nothing.
	f.open(Config{})
	rev1 := f.lib.Revision()
	f.scan(ScanResult{Unchanged: 3})
	if s := f.lib.Stats(); s.HashedFiles != 0 || s.HashedBytes != 0 || s.Scans != 1 {
		t.Fatalf("Stats after rescan = %+v", s)
	}
	if f.lib.Revision() != rev1 {
		t.Fatal("revision moved on a scan that changed nothing")
	}

	// Modify one file.
	f.write("a.txt", "alpha, edited", past.Add(time.Hour))
	f.scan(ScanResult{Changed: 1, Unchanged: 2, Hashed: 1, Bytes: 13})
	wantList(t, "changes after edit", f.changes(rev1), "remove a.txt", "add a.txt")
	f.checkManifests()

	// Remove one.
	rev2 := f.lib.Revision()
	if err := os.Remove(f.path("sub/deeper/c")); err != nil {
		t.Fatal(err)
	}
	f.scan(ScanResult{Removed: 1, Unchanged: 2})
	wantList(t, "changes after remove", f.changes(rev2), "remove c")

	// Add one.
	rev3 := f.lib.Revision()
	f.write("new/d.txt", "delta", past)
	f.scan(ScanResult{Added: 1, Unchanged: 2, Hashed: 1, Bytes: 5})
	wantList(t, "changes after add", f.changes(rev3), "add d.txt")
	wantList(t, "changes at head", f.changes(f.lib.Revision()))

	// Coalesced over all of it: c came and went, a.txt was edited.
	wantList(t, "changes since start", f.changes(rev0), "add b.bin", "add a.txt", "add d.txt")
	wantList(t, "changes since restart", f.changes(rev1), "remove a.txt", "remove c", "add a.txt", "add d.txt")
	f.checkManifests()

	if s := f.lib.Stats(); s.HashedFiles != 2 || s.HashedBytes != 18 {
		t.Fatalf("Stats = %+v, want 2 files, 18 bytes", s)
	}
}

func TestTouchWithoutEdit(t *testing.T) {
	f := newFixture(t)
	f.write("a", "same", past)
	f.scan(ScanResult{Added: 1, Hashed: 1, Bytes: 4})
	rev := f.lib.Revision()
	f.write("a", "same", past.Add(time.Minute))
	f.scan(ScanResult{Unchanged: 1, Hashed: 1, Bytes: 4})
	wantList(t, "changes after touch", f.changes(rev))
	f.scan(ScanResult{Unchanged: 1})
	f.checkManifests()
}

func TestChangeAndRevert(t *testing.T) {
	f := newFixture(t)
	f.write("a", "one", past)
	f.scan(ScanResult{Added: 1, Hashed: 1, Bytes: 3})
	rev := f.lib.Revision()
	f.write("a", "two", past.Add(time.Minute))
	f.scan(ScanResult{Changed: 1, Hashed: 1, Bytes: 3})
	f.write("a", "one", past.Add(2*time.Minute))
	f.scan(ScanResult{Changed: 1, Hashed: 1, Bytes: 3})
	// The caller at rev already holds "one" at a: nothing to do.
	wantList(t, "changes across change and revert", f.changes(rev))
}

func TestMoveKeepsIDAndOrdersRemoveFirst(t *testing.T) {
	f := newFixture(t)
	f.write("z-old", "moving", past)
	f.scan(ScanResult{Added: 1, Hashed: 1, Bytes: 6})
	rev := f.lib.Revision()
	if err := os.Rename(f.path("z-old"), f.path("a-new")); err != nil {
		t.Fatal(err)
	}
	f.scan(ScanResult{Added: 1, Removed: 1, Hashed: 1, Bytes: 6})
	// The add is logged first (the walk comes before removals), but a
	// receiver keyed by content ID must see the remove first.
	wantList(t, "changes after move", f.changes(rev), "remove z-old", "add a-new")
}

func TestRevisionTooOld(t *testing.T) {
	f := newFixture(t)
	f.open(Config{ChangeLogLimit: 3})
	if _, _, err := f.lib.Changes(0); !errors.Is(err, ErrRevisionTooOld) {
		t.Fatalf("Changes(0) on a new library: %v", err)
	}
	start := f.lib.Revision()
	wantList(t, "changes of empty library", f.changes(start))
	for i := range 5 {
		f.write(fmt.Sprintf("f%d", i), fmt.Sprint(i), past)
	}
	f.scan(ScanResult{Added: 5, Hashed: 5, Bytes: 5})
	head := f.lib.Revision()
	if head != start+5 {
		t.Fatalf("revision %d, want %d", head, start+5)
	}
	for _, since := range []int64{0, start, head - 4, head + 1} {
		if _, _, err := f.lib.Changes(since); !errors.Is(err, ErrRevisionTooOld) {
			t.Fatalf("Changes(%d): err %v, want ErrRevisionTooOld", since, err)
		}
	}
	wantList(t, "last three", f.changes(head-3), "add f2", "add f3", "add f4")
	// The fallback: a snapshot and its revision, then increments from it.
	entries, rev, err := f.lib.Snapshot()
	if err != nil || len(entries) != 5 || rev != head {
		t.Fatalf("Snapshot = %d entries, rev %d (head %d), %v", len(entries), rev, head, err)
	}
	os.Remove(f.path("f0"))
	f.scan(ScanResult{Removed: 1, Unchanged: 4})
	wantList(t, "after snapshot", f.changes(rev), "remove f0")
}

func TestSameContentTwoPaths(t *testing.T) {
	f := newFixture(t)
	f.write("one/song.ogg", "la la la", past)
	f.write("two/copy.ogg", "la la la", past)
	f.scan(ScanResult{Added: 2, Hashed: 2, Bytes: 16})
	entries, err := f.lib.Entries()
	if err != nil || len(entries) != 2 {
		t.Fatalf("Entries = %v, %v", entries, err)
	}
	if entries[0].ID != entries[1].ID || entries[0].Name != "song.ogg" || entries[1].Name != "copy.ogg" {
		t.Fatalf("entries = %+v", entries)
	}
	id := entries[0].ID
	_, path, err := f.lib.Manifest(id)
	if err != nil || path != f.path("one/song.ogg") {
		t.Fatalf("Manifest = %s, %v", path, err)
	}
	// With the first copy gone (and not yet rescanned), the second serves.
	os.Remove(f.path("one/song.ogg"))
	_, path, err = f.lib.Manifest(id)
	if err != nil || path != f.path("two/copy.ogg") {
		t.Fatalf("Manifest after removing first copy = %s, %v", path, err)
	}
	f.scan(ScanResult{Removed: 1, Unchanged: 1})
	f.checkManifests()
}

func TestManifestStaleAndNotFound(t *testing.T) {
	f := newFixture(t)
	f.write("a", "original", past)
	f.scan(ScanResult{Added: 1, Hashed: 1, Bytes: 8})
	entries, _ := f.lib.Entries()
	id := entries[0].ID
	f.write("a", "replaced", past.Add(time.Second))
	_, _, err := f.lib.Manifest(id)
	if !errors.Is(err, ErrStale) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("Manifest of edited file: %v, want ErrStale and ErrNotFound", err)
	}
	if _, _, err := f.lib.Manifest(content.ID{1}); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrStale) {
		t.Fatalf("Manifest of unknown ID: %v", err)
	}
	f.scan(ScanResult{Changed: 1, Hashed: 1, Bytes: 8})
	if _, _, err := f.lib.Manifest(id); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrStale) {
		t.Fatalf("Manifest of old ID after rescan: %v", err)
	}
	f.checkManifests()
}

func TestUnreadableFileDoesNotAbort(t *testing.T) {
	f := newFixture(t)
	f.write("a", "a", past)
	f.write("b", "b", past)
	f.write("c", "c", past)
	denied := f.path("b")
	// The tests may run as root, which chmod cannot lock out, so the seam
	// fails the open the way a permission error would.
	f.lib.openFile = func(path string) (*os.File, error) {
		if path == denied {
			return nil, &os.PathError{Op: "open", Path: path, Err: os.ErrPermission}
		}
		return os.Open(path)
	}
	f.scan(ScanResult{Added: 2, Skipped: 1, Hashed: 2, Bytes: 2})
	warned := f.logs.FilterMessage("cannot read file; not sharing it").FilterField(zap.String("path", denied))
	if warned.Len() != 1 {
		t.Fatalf("want one warning about %s, logs: %v", denied, f.logs.All())
	}
	// Once readable again it is picked up.
	f.lib.openFile = os.Open
	f.scan(ScanResult{Added: 1, Unchanged: 2, Hashed: 1, Bytes: 1})
	// And a file that becomes unreadable is no longer shared.
	f.write("a", "A", past.Add(time.Hour))
	f.lib.openFile = func(string) (*os.File, error) { return nil, os.ErrPermission }
	f.scan(ScanResult{Removed: 1, Unchanged: 2, Skipped: 1})
}

func TestChangedWhileHashing(t *testing.T) {
	f := newFixture(t)
	f.write("a", "first", past)
	f.scan(ScanResult{Added: 1, Hashed: 1, Bytes: 5})
	f.write("a", "second", past.Add(time.Hour))
	// Replace the file by rename just after it is opened, as an editor
	// saving atomically would: the open file is intact but stale.
	f.lib.openFile = func(path string) (*os.File, error) {
		file, err := os.Open(path)
		tmp := path + ".tmp"
		writeFile(t, tmp, "third!!", past.Add(2*time.Hour))
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		return file, err
	}
	rev := f.lib.Revision()
	f.scan(ScanResult{Skipped: 1, Hashed: 1, Bytes: 6})
	wantList(t, "changes after skipped file", f.changes(rev))
	f.lib.openFile = os.Open
	f.scan(ScanResult{Changed: 1, Hashed: 1, Bytes: 7})
	f.checkManifests()
}

func TestCancel(t *testing.T) {
	f := newFixture(t)
	for i := range 4 {
		f.write(fmt.Sprintf("f%d", i), fmt.Sprint(i), past)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.lib.Scan(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Scan with cancelled context: %v", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	opened := 0
	f.lib.openFile = func(path string) (*os.File, error) {
		opened++
		if opened == 2 {
			cancel()
		}
		return os.Open(path)
	}
	res, err := f.lib.Scan(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Scan cancelled midway: %v", err)
	}
	if res.Added != 1 || res.Removed != 0 {
		t.Fatalf("cancelled scan result %+v, want 1 added", res)
	}
	f.lib.openFile = os.Open
	f.scan(ScanResult{Added: 3, Unchanged: 1, Hashed: 3, Bytes: 3})
}

func TestCloseStopsScan(t *testing.T) {
	f := newFixture(t)
	f.write("a", "a", past)
	f.write("b", "b", past)
	f.lib.openFile = func(path string) (*os.File, error) {
		// Close blocks until the scan ends, so it must not run here.
		go f.lib.Close()
		// Close cancels running scans before it waits for them.
		<-f.lib.ctx.Done()
		return os.Open(path)
	}
	if _, err := f.lib.Scan(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Scan during Close: %v", err)
	}
	if err := f.lib.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := f.lib.Scan(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Scan after Close: %v", err)
	}
	if _, err := f.lib.Entries(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Entries after Close: %v", err)
	}
	if _, _, err := f.lib.Manifest(content.ID{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Manifest after Close: %v", err)
	}
}

func TestRootsChange(t *testing.T) {
	f := newFixture(t)
	other := t.TempDir()
	writeFile(t, filepath.Join(other, "x"), "x", past)
	f.write("a", "a", past)
	f.open(Config{Dirs: []string{f.share, other}})
	f.scan(ScanResult{Added: 2, Hashed: 2, Bytes: 2})
	// A root dropped from the config takes its files with it.
	f.open(Config{Dirs: []string{f.share}})
	f.scan(ScanResult{Removed: 1, Unchanged: 1})
	// A root given twice, or nested in another, shares each file once.
	f.open(Config{Dirs: []string{f.share, f.share, filepath.Join(f.share, ".")}})
	f.scan(ScanResult{Unchanged: 1})
	// A missing root shares nothing, and says so.
	f.open(Config{Dirs: []string{filepath.Join(other, "missing")}})
	f.scan(ScanResult{Removed: 1})
	if f.logs.FilterMessage("shared directory unavailable; its files are not shared").Len() != 1 {
		t.Fatalf("no warning about the missing root: %v", f.logs.All())
	}
}

func TestSymlinkedRootAndOwnDatabase(t *testing.T) {
	f := newFixture(t)
	f.write("a", "a", past)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(f.share, link); err != nil {
		t.Fatal(err)
	}
	// The database lives inside the shared directory, here reached through
	// the link, and must not share itself.
	f.open(Config{Dirs: []string{link}, DBPath: filepath.Join(link, "canopy.db")})
	f.scan(ScanResult{Added: 1, Hashed: 1, Bytes: 1})
	f.checkManifests()
}

func TestRacyFileIsRechecked(t *testing.T) {
	f := newFixture(t)
	f.write("a", "fresh", time.Now())
	f.scan(ScanResult{Added: 1, Hashed: 1, Bytes: 5})
	rev := f.lib.Revision()
	// Written just now, so hashed again; same content is no change.
	f.scan(ScanResult{Unchanged: 1, Hashed: 1, Bytes: 5})
	wantList(t, "changes after recheck", f.changes(rev))
	// Once its mtime is old enough the hash stands.
	f.write("a", "fresh", past)
	f.scan(ScanResult{Unchanged: 1, Hashed: 1, Bytes: 5})
	f.scan(ScanResult{Unchanged: 1})
}

func TestPieceSizeChangeRehashes(t *testing.T) {
	f := newFixture(t)
	f.write("a", strings.Repeat("x", 40<<10), past)
	f.scan(ScanResult{Added: 1, Hashed: 1, Bytes: 40 << 10})
	f.open(Config{PieceSize: content.MinPieceSize})
	f.scan(ScanResult{Changed: 1, Hashed: 1, Bytes: 40 << 10})
	entries, _ := f.lib.Entries()
	m, _, err := f.lib.Manifest(entries[0].ID)
	if err != nil || m.PieceSize != content.MinPieceSize || m.PieceCount() != 3 {
		t.Fatalf("manifest piece size %d, count %d, err %v", m.PieceSize, m.PieceCount(), err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, cfg := range []Config{
		{},
		{DBPath: filepath.Join(dir, "a?b")},
		{DBPath: filepath.Join(dir, "db"), PieceSize: 1000},
		{DBPath: filepath.Join(dir, "db"), ChangeLogLimit: -1},
	} {
		if _, err := Open(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("Open(%+v): %v, want ErrConfig", cfg, err)
		}
	}
	path := filepath.Join(dir, "new.db")
	lib, err := Open(Config{DBPath: path})
	if err != nil {
		t.Fatal(err)
	}
	var mode string
	if err := lib.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal mode %q, %v; want wal", mode, err)
	}
	lib.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(Config{DBPath: path}); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of newer schema: %v", err)
	}
}

// TestConcurrentUse runs scans against readers; it proves its point under
// -race.
func TestConcurrentUse(t *testing.T) {
	f := newFixture(t)
	for i := range 20 {
		f.write(fmt.Sprintf("d%d/f%d", i%3, i), strings.Repeat(fmt.Sprint(i), 1000), past)
	}
	f.scan(ScanResult{Added: 20, Hashed: 20, Bytes: 20*1000 + 10*1000})
	entries, _ := f.lib.Entries()
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	for range 3 {
		wg.Go(func() {
			for ctx.Err() == nil {
				for _, e := range entries {
					if _, _, err := f.lib.Manifest(e.ID); err != nil && !errors.Is(err, ErrNotFound) {
						t.Errorf("Manifest: %v", err)
					}
				}
				if _, _, err := f.lib.Changes(f.lib.Revision()); err != nil {
					t.Errorf("Changes: %v", err)
				}
				if _, err := f.lib.Count(); err != nil {
					t.Errorf("Count: %v", err)
				}
			}
		})
	}
	for i := range 5 {
		f.write(fmt.Sprintf("d0/f%d", i), fmt.Sprint("edit", i), past.Add(time.Duration(i+1)*time.Hour))
		if _, err := f.lib.Scan(context.Background()); err != nil {
			t.Error(err)
		}
	}
	// Two scans at once are serialized, not interleaved.
	var scans sync.WaitGroup
	for range 2 {
		scans.Go(func() {
			if _, err := f.lib.Scan(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	scans.Wait()
	cancel()
	wg.Wait()
	f.checkManifests()
}
