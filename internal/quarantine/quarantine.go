// Package quarantine moves a damaged state file out of the way, so that a
// node can start afresh with state it can recompute (its library database,
// its host cache, its role history) while the damaged copy stays beside the
// new one for inspection. A file that cannot be recomputed (the node's key)
// is never quarantined: it is refused.
//
// A file path quarantined at time t becomes path.corrupt-<t in UTC>, and each
// companion path+suffix that exists (an SQLite database's -wal and -shm)
// becomes path.corrupt-<t>+suffix, so that the set still opens as one
// database. Only the newest few sets are kept.
package quarantine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// DefaultKeep is how many quarantined copies of one file Move keeps. Three
// are enough to compare recurring damage (a failing disk shows as one copy
// after another) and to keep the first copy of a burst; a library database
// can be hundreds of MiB, so a disk that corrupts it at every start must not
// fill the data directory with copies.
const DefaultKeep = 3

// Marker separates a file's name from the time it was quarantined: a
// quarantined copy of path begins with path+Marker.
const Marker = ".corrupt-"

// stampLayout is the time in a quarantined file's name: UTC with
// nanoseconds, fixed width, so that names sort in time order and two copies
// made in the same second get different names.
const stampLayout = "20060102T150405.000000000Z"

// maxAttempts bounds the search for a free name when one exists already
// (a clock that stands still, or one set back).
const maxAttempts = 1000

// Move renames path, and every companion path+suffix that exists, to
// path.corrupt-<now in UTC> (companions keep their suffix after the stamp),
// then removes the oldest quarantined sets of path beyond keep (keep < 1
// means DefaultKeep). It returns the quarantined path of the main file.
//
// Companions are moved first and the main file last: a crash in between
// leaves the damaged main file where it was, to be found and moved at the
// next start, and never leaves an old write-ahead log beside a new database,
// which SQLite would replay into it.
//
// An error with an empty path means path was not moved (it may be missing,
// or the directory read-only); an error with a path means it was moved but
// removing older copies failed, which the caller may report and go on.
func Move(path string, now time.Time, keep int, companions ...string) (string, error) {
	if keep < 1 {
		keep = DefaultKeep
	}
	if _, err := os.Lstat(path); err != nil {
		return "", fmt.Errorf("quarantine: %w", err)
	}
	dest, err := freeName(path, now, companions)
	if err != nil {
		return "", err
	}
	for _, s := range companions {
		if err := os.Rename(path+s, dest+s); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("quarantine: %w", err)
		}
	}
	if err := os.Rename(path, dest); err != nil {
		return "", fmt.Errorf("quarantine: %w", err)
	}
	return dest, prune(path, keep, companions)
}

// freeName returns path's quarantine name at now, or a nanosecond later while
// that name (or a companion's) is taken.
func freeName(path string, now time.Time, companions []string) (string, error) {
	t := now.UTC()
	for range maxAttempts {
		dest := path + Marker + t.Format(stampLayout)
		if !taken(dest, companions) {
			return dest, nil
		}
		t = t.Add(time.Nanosecond)
	}
	return "", fmt.Errorf("quarantine: no free name for %s near %s", filepath.Base(path), now.UTC().Format(stampLayout))
}

func taken(dest string, companions []string) bool {
	for _, s := range append([]string{""}, companions...) {
		if _, err := os.Lstat(dest + s); !errors.Is(err, os.ErrNotExist) {
			return true
		}
	}
	return false
}

// List returns the quarantined copies of path (main files only, not
// companions), oldest first.
func List(path string) ([]string, error) {
	sets, err := sets(path, nil)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(sets))
	for _, s := range sets {
		if s.main {
			out = append(out, s.base)
		}
	}
	return out, nil
}

// set is one quarantined copy: its main file's path and the names found.
type set struct {
	stamp string
	base  string   // path.corrupt-<stamp>
	names []string // the files of the set that exist, full paths
	main  bool     // the main file exists (a crash may have left companions only)
}

// sets finds the quarantined sets of path in its directory, oldest first. A
// name counts only if its stamp parses and what follows it is a companion
// suffix, so that prune never removes a file it did not make.
func sets(path string, companions []string) ([]*set, error) {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("quarantine: %w", err)
	}
	prefix := name + Marker
	byStamp := make(map[string]*set)
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || len(rest) < len(stampLayout) {
			continue
		}
		stamp, suffix := rest[:len(stampLayout)], rest[len(stampLayout):]
		if _, err := time.Parse(stampLayout, stamp); err != nil {
			continue
		}
		if suffix != "" && !slices.Contains(companions, suffix) {
			continue
		}
		s := byStamp[stamp]
		if s == nil {
			s = &set{stamp: stamp, base: filepath.Join(dir, prefix+stamp)}
			byStamp[stamp] = s
		}
		s.names = append(s.names, filepath.Join(dir, e.Name()))
		s.main = s.main || suffix == ""
	}
	out := make([]*set, 0, len(byStamp))
	for _, s := range byStamp {
		out = append(out, s)
	}
	// The layout is fixed width, so names sort as times do.
	slices.SortFunc(out, func(a, b *set) int { return strings.Compare(a.stamp, b.stamp) })
	return out, nil
}

// prune removes the oldest quarantined sets of path beyond keep.
func prune(path string, keep int, companions []string) error {
	all, err := sets(path, companions)
	if err != nil {
		return err
	}
	var errs []error
	for len(all) > keep {
		for _, n := range all[0].names {
			if err := os.Remove(n); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		all = all[1:]
	}
	if len(errs) > 0 {
		return fmt.Errorf("quarantine: remove older copies: %w", errors.Join(errs...))
	}
	return nil
}
