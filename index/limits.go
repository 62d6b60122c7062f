package index

import "sync/atomic"

// Defaults for the Limits fields left zero or negative. DefaultLimits
// returns Limits with all of them set.
const (
	// DefaultMaxOwners is the most owners the index holds: the design plans
	// 100 to 1,000 leaves per supernode.
	DefaultMaxOwners = 1000
	// DefaultMaxFilesPerOwner is the most files one owner may share: well
	// above a large personal music or book collection, while one leaf still
	// cannot take more than a small part of the index.
	DefaultMaxFilesPerOwner = 50_000
	// DefaultMaxFiles is the most files the index holds in all: about 2,000
	// files per leaf on average. Ordinary files reach DefaultMaxBytes first
	// (about 1.2 million of them); this bound matters for an index of very
	// short names.
	DefaultMaxFiles = 2_000_000
	// DefaultMaxBytesPerOwner is the most memory one owner's entries may
	// cost, as the index accounts it (see Index.Bytes): 64 MiB, room for
	// DefaultMaxFilesPerOwner files of 60-byte names with two words of
	// their own each (a photo collection: "IMG_20240101_120000.jpg"), about
	// 36 MiB, with margin. Before this bound four identities sharing 50,000
	// files of long made-up names made a supernode hold 2.1 GB.
	DefaultMaxBytesPerOwner = 64 << 20
	// DefaultMaxBytes is the most memory the whole index may cost, as
	// accounted: 512 MiB, about 1.2 million ordinary files (a 39-byte name
	// of 4 to 7 words: 360 bytes of heap, 431 accounted; see
	// TestMemoryPerEntry), and so about 430 MiB of heap. A home computer
	// acting as a supernode gives the index a quarter to an eighth of its
	// memory at most.
	DefaultMaxBytes = 512 << 20
	// DefaultMaxNameBytes is the longest file name accepted, in bytes: 255,
	// NAME_MAX of ext4, XFS, Btrfs and ZFS and the limit of most file
	// systems. A leaf shares base names, so an honest name is rarely longer;
	// one that is (a long non-ASCII name from NTFS or APFS, which count
	// characters rather than bytes) would be cut by the downloader's
	// sanitiser anyway (200 bytes). Before this bound a name of 1,024 bytes
	// could carry 64 new words and cost 13 KB.
	DefaultMaxNameBytes = 255
	// DefaultMaxScan is the most candidate entries one search examines: a
	// pass over a twentieth of a full index, which keeps a query of very
	// common words cheap.
	DefaultMaxScan = 100_000
)

// Limits bounds what the leaves of a supernode can make its index hold and
// what one search can cost. A field that is zero or negative takes the value
// DefaultLimits gives it.
type Limits struct {
	// MaxOwners is the most owners (leaves with at least one file) the index
	// holds. Zero or negative: DefaultMaxOwners.
	MaxOwners int

	// MaxFilesPerOwner is the most files one owner may share. Zero or
	// negative: DefaultMaxFilesPerOwner.
	MaxFilesPerOwner int

	// MaxFiles is the most files the index holds in all. Zero or negative:
	// DefaultMaxFiles.
	MaxFiles int

	// MaxBytesPerOwner is the most memory, as accounted (see Index.Bytes),
	// one owner's entries may cost. Zero or negative:
	// DefaultMaxBytesPerOwner.
	MaxBytesPerOwner int64

	// MaxBytes is the most memory, as accounted, the index may cost. Zero
	// or negative: DefaultMaxBytes.
	MaxBytes int64

	// MaxNameBytes is the longest file name accepted, in bytes. Zero or
	// negative: DefaultMaxNameBytes.
	MaxNameBytes int

	// MaxScan is the most candidate entries one search examines. A query made
	// only of very common words ("mp3") would otherwise cost a pass over most
	// of the index; past this bound the search ranks what it has seen. Zero
	// or negative: DefaultMaxScan.
	MaxScan int
}

// DefaultLimits returns Limits with every default set.
func DefaultLimits() Limits {
	return Limits{
		MaxOwners:        DefaultMaxOwners,
		MaxFilesPerOwner: DefaultMaxFilesPerOwner,
		MaxFiles:         DefaultMaxFiles,
		MaxBytesPerOwner: DefaultMaxBytesPerOwner,
		MaxBytes:         DefaultMaxBytes,
		MaxNameBytes:     DefaultMaxNameBytes,
		MaxScan:          DefaultMaxScan,
	}
}

// withDefaults replaces the unset fields of l with the defaults.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&l.MaxOwners, d.MaxOwners)
	set(&l.MaxFilesPerOwner, d.MaxFilesPerOwner)
	set(&l.MaxFiles, d.MaxFiles)
	set(&l.MaxNameBytes, d.MaxNameBytes)
	set(&l.MaxScan, d.MaxScan)
	if l.MaxBytesPerOwner <= 0 {
		l.MaxBytesPerOwner = d.MaxBytesPerOwner
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	return l
}

// The cost model behind Index.Bytes: what one entry and one distinct word
// cost in memory, as upper bounds measured with runtime.MemStats
// (TestAccountingBoundsHeap checks that the heap an index grows by stays
// within what it accounts, for ordinary and for hostile names). A word is
// charged to one owner that holds it, so that a leaf that brings thousands
// of words of its own pays for them and a common word costs its owners
// nothing more.
const (
	// entryOverhead is one entry: its slot (64 bytes), its content ID's
	// slot and map cell (about 100 bytes, most entries having a content of
	// their own), the owner's map cell (about 20), allocation rounding and
	// map growth.
	entryOverhead = 280
	// wordRefOverhead is one word of one entry: its place in the entry's
	// word list (8 bytes) and in the word's posting (4 bytes, up to twice
	// that while the posting grows).
	wordRefOverhead = 16
	// wordOverhead is one distinct word: its slot (48 bytes), its map cell
	// and its item in the ordered set (about 100 bytes with their growth),
	// its text's and its posting's first allocations.
	wordOverhead = 180
)

// entryCost is what an entry of that name and number of words is charged.
func entryCost(name string, words int) int64 {
	return entryOverhead + int64(len(name)) + int64(words)*wordRefOverhead
}

// wordCost is what a distinct word is charged.
func wordCost(w string) int64 { return wordOverhead + int64(len(w)) }

// Counters counts what the index refused, and the work it spread out so
// that searches were not held off. The fields are updated atomically and
// may be read at any time; Snapshot copies them.
type Counters struct {
	// BadFiles counts calls refused with ErrBadFile.
	BadFiles atomic.Uint64
	// OwnerFull counts calls refused with ErrOwnerFull, and OwnerBytes those
	// of them refused for the owner's bytes rather than its files.
	OwnerFull  atomic.Uint64
	OwnerBytes atomic.Uint64
	// IndexFull counts calls refused with ErrIndexFull, and IndexBytes those
	// of them refused for the index's bytes rather than its files.
	IndexFull  atomic.Uint64
	IndexBytes atomic.Uint64
	// TooManyOwners counts calls refused with ErrTooManyOwners.
	TooManyOwners atomic.Uint64
	// Steps counts the times a change let searches in before it went on.
	Steps atomic.Uint64
	// Rebuilt counts the maps and tables rebuilt smaller after they had
	// emptied to a quarter of their peak.
	Rebuilt atomic.Uint64
}

// CountersSnapshot is a copy of Counters at one moment.
type CountersSnapshot struct {
	BadFiles, OwnerFull, OwnerBytes, IndexFull, IndexBytes, TooManyOwners, Steps, Rebuilt uint64
}

// Snapshot returns the current values.
func (c *Counters) Snapshot() CountersSnapshot {
	return CountersSnapshot{
		BadFiles: c.BadFiles.Load(), OwnerFull: c.OwnerFull.Load(), OwnerBytes: c.OwnerBytes.Load(),
		IndexFull: c.IndexFull.Load(), IndexBytes: c.IndexBytes.Load(), TooManyOwners: c.TooManyOwners.Load(),
		Steps: c.Steps.Load(), Rebuilt: c.Rebuilt.Load(),
	}
}
