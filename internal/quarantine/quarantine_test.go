package quarantine

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 4, 5, 6, 7, 8, time.FixedZone("CET", 3600))

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestMoveWithCompanions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "library.db")
	write(t, path, "main")
	write(t, path+"-wal", "wal")
	// No -shm: a missing companion is skipped.
	dest, err := Move(path, t0, 0, "-wal", "-shm")
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "library.db.corrupt-20250304T040607.000000008Z")
	if dest != want {
		t.Fatalf("moved to %s, want %s (UTC)", dest, want)
	}
	if read(t, dest) != "main" || read(t, dest+"-wal") != "wal" {
		t.Fatal("the quarantined files do not hold the originals")
	}
	if got := names(t, dir); !slices.Equal(got, []string{filepath.Base(want), filepath.Base(want) + "-wal"}) {
		t.Fatalf("directory holds %v", got)
	}
}

func TestMoveSameInstantGetsAnotherName(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts.json")
	var dests []string
	for i := range 3 {
		write(t, path, string(rune('a'+i)))
		dest, err := Move(path, t0, 5)
		if err != nil {
			t.Fatal(err)
		}
		dests = append(dests, dest)
	}
	if dests[0] == dests[1] || dests[1] == dests[2] {
		t.Fatalf("copies share a name: %v", dests)
	}
	got, err := List(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, dests) {
		t.Fatalf("List = %v, want %v in order", got, dests)
	}
	for i, d := range dests {
		if read(t, d) != string(rune('a'+i)) {
			t.Fatalf("%s lost its content", d)
		}
	}
}

func TestMoveKeepsTheNewest(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "library.db")
	// Files that only look like ours stay: another name, a stamp that does
	// not parse, a suffix that is no companion.
	strangers := []string{"library.db.corrupt-yesterday", "library.db.corrupt-20250304T040607.000000008Z.txt", "other.db.corrupt-20200101T000000.000000000Z"}
	for _, s := range strangers {
		write(t, filepath.Join(dir, s), "keep me")
	}
	var dests []string
	for i := range 5 {
		write(t, path, "db")
		write(t, path+"-wal", "wal")
		write(t, path+"-shm", "shm")
		dest, err := Move(path, t0.Add(time.Duration(i)*time.Hour), 2, "-wal", "-shm")
		if err != nil {
			t.Fatal(err)
		}
		dests = append(dests, dest)
	}
	got, err := List(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, dests[3:]) {
		t.Fatalf("kept %v, want the newest two %v", got, dests[3:])
	}
	for _, d := range dests[:3] {
		for _, s := range []string{"", "-wal", "-shm"} {
			if _, err := os.Stat(d + s); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s%s was not removed: %v", d, s, err)
			}
		}
	}
	for _, d := range dests[3:] {
		for _, s := range []string{"", "-wal", "-shm"} {
			if _, err := os.Stat(d + s); err != nil {
				t.Errorf("%s%s: %v", d, s, err)
			}
		}
	}
	for _, s := range strangers {
		if read(t, filepath.Join(dir, s)) != "keep me" {
			t.Errorf("%s was touched", s)
		}
	}
}

// TestMoveCompanionsLeftByACrash: a crash between moving the companions and
// the main file leaves a set without its main file; it is pruned like the
// others and does not count as a copy in List.
func TestMoveCompanionsLeftByACrash(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "library.db")
	orphan := path + Marker + t0.UTC().Format(stampLayout) + "-wal"
	write(t, orphan, "wal")
	write(t, path, "db")
	dest, err := Move(path, t0.Add(time.Hour), 1, "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := List(path); !slices.Equal(got, []string{dest}) {
		t.Fatalf("List = %v", got)
	}
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the older orphaned companion was kept: %v", err)
	}
}

func TestMoveMissingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "missing")
	write(t, path+"-wal", "wal")
	dest, err := Move(path, t0, 0, "-wal")
	if dest != "" || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Move of a missing file = %q, %v", dest, err)
	}
	// Nothing moved, not even the companion.
	if read(t, path+"-wal") != "wal" {
		t.Fatal("companion moved")
	}
}
