package library

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/canopy-p2p/canopy/internal/quarantine"
	"github.com/canopy-p2p/canopy/internal/sqlitecheck"
)

// shareSome writes n files into the fixture's share and scans them in.
func (f *fixture) shareSome(n int) []Entry {
	f.t.Helper()
	for i := range n {
		f.write(fmt.Sprintf("dir%d/file%d.txt", i%3, i), strings.Repeat(fmt.Sprint(i), 500+i), past)
	}
	if _, err := f.lib.Scan(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	entries, err := f.lib.Entries()
	if err != nil || len(entries) != n {
		f.t.Fatalf("Entries = %d entries, %v; want %d", len(entries), err, n)
	}
	return entries
}

// closeLib closes the fixture's library so that its files can be damaged.
func (f *fixture) closeLib() {
	f.t.Helper()
	if err := f.lib.Close(); err != nil {
		f.t.Fatal(err)
	}
	f.lib = nil
}

// warnings returns the WARN lines logged since the fixture last opened.
func (f *fixture) warnings() []observer.LoggedEntry {
	return f.logs.FilterLevelExact(zapcore.WarnLevel).All()
}

// checkRecovered checks that the last open found the database damaged, moved
// it (holding moved) aside, started an empty one and said so in one line.
func (f *fixture) checkRecovered(moved []byte, why string) Recovery {
	f.t.Helper()
	r, ok := f.lib.Recovered()
	if !ok {
		f.t.Fatal("Recovered() reports nothing for a damaged database")
	}
	if !strings.HasPrefix(r.MovedTo, f.dbPath+quarantine.Marker) || !strings.Contains(r.Reason, why) || r.At.IsZero() {
		f.t.Fatalf("Recovery %+v, want a copy beside %s and a reason naming %q", r, f.dbPath, why)
	}
	got, err := os.ReadFile(r.MovedTo)
	if err != nil {
		f.t.Fatal(err)
	}
	if moved != nil && !bytes.Equal(got, moved) {
		f.t.Fatal("the copy moved aside is not the damaged file")
	}
	if entries, err := f.lib.Entries(); err != nil || len(entries) != 0 {
		f.t.Fatalf("the new database holds %d entries (%v), want none", len(entries), err)
	}
	w := f.warnings()
	if len(w) != 1 {
		f.t.Fatalf("%d WARN lines, want exactly one: %v", len(w), w)
	}
	fields := w[0].ContextMap()
	if fields["moved_to"] != r.MovedTo || fields["path"] != f.dbPath || fields["reason"] != r.Reason {
		f.t.Fatalf("the WARN line %q carries %v, want the path, where it went and why", w[0].Message, fields)
	}
	f.t.Logf("healed: %s", r.Reason)
	return r
}

// TestOpenHealsOverwrittenHeader is the case measured on main: the first
// 8 KiB of a real library database overwritten stopped the node ("file is
// not a database"). Open must move it aside with its -wal and -shm, start an
// empty database and log that once; the scan then brings back every file.
func TestOpenHealsOverwrittenHeader(t *testing.T) {
	f := newFixture(t)
	before := f.shareSome(40)
	oldRev := f.lib.Revision()
	f.closeLib()

	b, err := os.ReadFile(f.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) <= 8<<10 {
		t.Fatalf("the database is only %d bytes; the test needs more than 8 KiB", len(b))
	}
	rand.Read(b[:8<<10])
	if err := os.WriteFile(f.dbPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// Companions a crash could leave: they belong to the damaged file and
	// must go with it, never be replayed into the new database.
	for _, s := range []string{"-wal", "-shm"} {
		if err := os.WriteFile(f.dbPath+s, []byte("stale "+s), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	f.open(Config{})
	r := f.checkRecovered(b, "not a database")
	for _, s := range []string{"-wal", "-shm"} {
		got, err := os.ReadFile(r.MovedTo + s)
		if err != nil || string(got) != "stale "+s {
			t.Fatalf("%s was not moved beside the damaged database: %q, %v", s, got, err)
		}
	}

	if res, err := f.lib.Scan(context.Background()); err != nil || res.Added != 40 || res.Hashed != 40 {
		t.Fatalf("rescan = %+v, %v; want all 40 files added and hashed", res, err)
	}
	after, _ := f.lib.Entries()
	if !slices.EqualFunc(before, after, func(a, b Entry) bool { return a.ID == b.ID && a.Path == b.Path }) {
		t.Fatal("the rescan did not bring back the same files")
	}
	if f.lib.Revision() <= oldRev {
		t.Fatalf("the new database's revision %d is not above the old one's %d: an uploader could take it for an increment", f.lib.Revision(), oldRev)
	}
	f.checkManifests()

	// Healed means healed: the next open finds nothing to say.
	f.open(Config{})
	if _, ok := f.lib.Recovered(); ok || len(f.warnings()) != 0 {
		t.Fatalf("a sound database was reported damaged: %v", f.warnings())
	}
	if entries, _ := f.lib.Entries(); len(entries) != 40 {
		t.Fatalf("after reopening, %d entries", len(entries))
	}
}

func TestOpenHealsTruncated(t *testing.T) {
	f := newFixture(t)
	f.shareSome(40)
	f.closeLib()
	whole, err := os.ReadFile(f.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1, 50, 99, 4096, len(whole) / 2, len(whole) - 4096} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			if err := os.WriteFile(f.dbPath, whole[:size], 0o600); err != nil {
				t.Fatal(err)
			}
			f.t = t
			f.open(Config{})
			f.checkRecovered(whole[:size], "")
			f.closeLib()
		})
	}
	// Never more than quarantine.DefaultKeep copies, however often it breaks.
	if copies, err := quarantine.List(f.dbPath); err != nil || len(copies) != quarantine.DefaultKeep {
		t.Fatalf("%d copies kept (%v), want %d", len(copies), err, quarantine.DefaultKeep)
	}
}

// TestOpenEmptyFileIsNew: an empty file is how SQLite begins every database
// (a crash right after creating one leaves it), not damage.
func TestOpenEmptyFileIsNew(t *testing.T) {
	f := newFixture(t)
	f.closeLib()
	if err := os.WriteFile(f.dbPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f.open(Config{})
	if _, ok := f.lib.Recovered(); ok || len(f.warnings()) != 0 {
		t.Fatal("an empty file was reported damaged")
	}
}

// TestOpenHealsBrokenSchema: a database SQLite reads without complaint but
// that lacks what this version keeps in it.
func TestOpenHealsBrokenSchema(t *testing.T) {
	for _, c := range []struct {
		name, sql, why string
	}{
		{"table missing", `DROP TABLE changes`, "no such table: changes"},
		{"column missing", `ALTER TABLE files DROP COLUMN recheck`, "no such column: recheck"},
		{"state row missing", `DELETE FROM state WHERE key = 'log_floor'`, "1 of its 2 rows"},
		{"state not a number", `UPDATE state SET value = 'many' WHERE key = 'revision'`, "read state"},
		{"floor above revision", `UPDATE state SET value = value + 1000 WHERE key = 'log_floor'`, "floor"},
		{"version lost", `PRAGMA user_version = 0`, "schema version 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			f.shareSome(3)
			f.closeLib()
			db, err := sql.Open("sqlite", f.dbPath)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(c.sql); err != nil {
				t.Fatal(err)
			}
			db.Close()
			f.open(Config{})
			f.checkRecovered(nil, c.why)
		})
	}
}

// TestOpenLeavesAloneWhatItCannotJudge: a database of a newer program, or a
// path that cannot be opened, is an error and nothing is moved.
func TestOpenLeavesAloneWhatItCannotJudge(t *testing.T) {
	dir := t.TempDir()
	newer := filepath.Join(dir, "newer.db")
	lib, err := Open(Config{DBPath: newer})
	if err != nil {
		t.Fatal(err)
	}
	lib.Close()
	db, _ := sql.Open("sqlite", newer)
	if _, err := db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	notFile := filepath.Join(dir, "dir.db")
	if err := os.MkdirAll(filepath.Join(notFile, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{newer, notFile} {
		core, logs := observer.New(zapcore.WarnLevel)
		if lib, err := Open(Config{DBPath: path, Logger: zap.New(core)}); err == nil {
			lib.Close()
			t.Fatalf("%s opened", path)
		}
		if copies, _ := quarantine.List(path); len(copies) != 0 || logs.Len() != 0 {
			t.Fatalf("%s was moved aside: %v %v", path, copies, logs.All())
		}
	}
}

// TestQuarantinedCopyIsNotShared: a database inside a shared directory is
// never shared, nor are its quarantined copies.
func TestQuarantinedCopyIsNotShared(t *testing.T) {
	f := newFixture(t)
	f.closeLib()
	f.dbPath = filepath.Join(f.share, "library.db")
	f.open(Config{})
	f.write("a.txt", "alpha", past)
	f.scan(ScanResult{Added: 1, Hashed: 1, Bytes: 5})
	f.closeLib()
	if err := os.WriteFile(f.dbPath, []byte("this is not a database, it is a sentence"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.open(Config{})
	f.checkRecovered(nil, "not a database")
	f.scan(ScanResult{Added: 1, Hashed: 1, Bytes: 5})
}

// TestOpenSurvivesRandomDamage: whatever a damaged file holds, Open gives a
// library that lists and scans (healed, or as it was), never an error.
// Instrumented for fuzzing, the pure-Go SQLite runs about one Open a second,
// too slow for the fuzz budget CI gives every target, so the full Open is
// exercised here with seeded damage and the header check, which decides
// before SQLite reads anything, is fuzzed alone (FuzzCheckHeader).
func TestOpenSurvivesRandomDamage(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	lib, err := Open(Config{DBPath: good})
	if err != nil {
		t.Fatal(err)
	}
	lib.Close()
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	r := mathrand.New(mathrand.NewPCG(3, 4))
	cases := [][]byte{
		b, b[:100], []byte("SQLite format 3\x00"), {},
		// Found by fuzzing: a header with file format numbers SQLite refuses.
		[]byte("SQLite format 3\x00 \x000\x020@  000000000000000000000000"),
	}
	for range 40 {
		d := slices.Clone(b)
		switch r.IntN(3) {
		case 0: // a few bytes anywhere
			for range 1 + r.IntN(8) {
				d[r.IntN(len(d))] ^= byte(1 + r.IntN(255))
			}
		case 1: // a run of garbage
			at := r.IntN(len(d))
			for i := at; i < min(len(d), at+1+r.IntN(4096)); i++ {
				d[i] = byte(r.Uint32())
			}
		default: // cut short
			d = d[:r.IntN(len(d))]
		}
		cases = append(cases, d)
	}
	for i, data := range cases {
		path := filepath.Join(t.TempDir(), "library.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		lib, err := Open(Config{DBPath: path})
		if errors.Is(err, ErrSchemaTooNew) {
			continue
		}
		if err != nil {
			t.Fatalf("case %d (%d bytes): Open: %v", i, len(data), err)
		}
		if _, err := lib.Entries(); err != nil {
			t.Fatalf("case %d: Entries after Open: %v", i, err)
		}
		if _, err := lib.Scan(context.Background()); err != nil {
			t.Fatalf("case %d: Scan after Open: %v", i, err)
		}
		lib.Close()
	}
}

// FuzzCheckHeader: the header check never fails on a file for a reason
// other than damage, and what it lets through begins as an SQLite database
// does (or is empty).
func FuzzCheckHeader(f *testing.F) {
	f.Add([]byte("SQLite format 3\x00" + strings.Repeat("\x10\x00\x01\x01", 21)))
	f.Add([]byte("SQLite format 3\x00"))
	f.Add([]byte{})
	f.Add([]byte("SQLite format 3\x00 \x000\x020@  000000000000000000000000"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "library.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		err := checkHeader(path)
		var d *sqlitecheck.DamagedError
		if err != nil && !errors.As(err, &d) {
			t.Fatalf("checkHeader: %v, not a damage verdict", err)
		}
		if err == nil && len(data) > 0 {
			if len(data) < headerSize || string(data[:len(sqliteMagic)]) != sqliteMagic || data[18] < 1 || data[18] > 2 || data[19] < 1 || data[19] > 2 {
				t.Fatalf("checkHeader let through %d bytes beginning %q", len(data), data[:min(len(data), 20)])
			}
		}
	})
}

// TestOpenHealsDamagedPage: damage past the header, which only a check of
// every page finds (PRAGMA quick_check), before any scan trips over it.
func TestOpenHealsDamagedPage(t *testing.T) {
	f := newFixture(t)
	f.shareSome(40)
	f.closeLib()
	b, err := os.ReadFile(f.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096 // SQLite's default page size, which Open keeps
	last := len(b)/page - 1
	for i := range page {
		b[last*page+i] = byte(i*7 + 3)
	}
	if err := os.WriteFile(f.dbPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f.open(Config{})
	f.checkRecovered(b, "quick_check")
}
