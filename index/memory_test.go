package index

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/canopy-p2p/canopy/identity"
)

// ordinaryFiles makes n ordinary files for owner o: names of about 40 bytes,
// 3 to 6 words from a Zipf vocabulary (two to four words of a title or an
// artist, a track number, an extension), each with a content ID of its own.
func ordinaryFiles(r *rand.Rand, words []string, z *rand.Zipf, o, n int) []File {
	exts := []string{"mp3", "flac", "mkv", "pdf", "jpg", "epub"}
	fs := make([]File, n)
	for i := range fs {
		var b strings.Builder
		fmt.Fprintf(&b, "%02d ", r.IntN(100))
		for j := range 1 + r.IntN(4) {
			if j > 0 {
				b.WriteString(" ")
			}
			w := words[z.Uint64()]
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
		fmt.Fprintf(&b, " - %s (%d).%s", words[z.Uint64()], 1960+r.IntN(60), exts[r.IntN(len(exts))])
		var id ContentID
		id[0], id[1], id[2], id[3], id[4], id[5] = byte(o), byte(o>>8), byte(i), byte(i>>8), byte(i>>16), 0x5e
		fs[i] = File{ID: id, Name: b.String(), Size: int64(1 + r.IntN(1<<30))}
	}
	return fs
}

// hostileFiles makes n files whose names are nameBytes long and made only of
// words nobody else has: the most memory a name of that length can cost.
func hostileFiles(r *rand.Rand, o, n, nameBytes int) []File {
	fs := make([]File, n)
	for i := range fs {
		var b strings.Builder
		for b.Len() < nameBytes {
			fmt.Fprintf(&b, "%x ", r.Uint32()|1<<28)
		}
		var id ContentID
		id[0], id[1], id[2], id[3], id[4] = byte(o), byte(o>>8), byte(i), byte(i>>8), 0x7a
		fs[i] = File{ID: id, Name: strings.TrimSpace(b.String()[:nameBytes]), Size: 1}
	}
	return fs
}

// heapInuse returns the heap in use after a full collection.
func heapInuse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// ordinaryUploads makes owners uploads of per ordinary files each.
func ordinaryUploads(seed uint64, owners, per int) ([][]File, float64) {
	r := rand.New(rand.NewPCG(seed, 2))
	words := benchWords(r)
	z := rand.NewZipf(r, 1.07, 2, uint64(len(words)-1))
	uploads := make([][]File, owners)
	nameBytes := 0
	for o := range uploads {
		uploads[o] = ordinaryFiles(r, words, z, o, per)
		for _, f := range uploads[o] {
			nameBytes += len(f.Name)
		}
	}
	return uploads, float64(nameBytes) / float64(owners*per)
}

func ownerID(o int, tag byte) identity.NodeID { return identity.NodeID{byte(o), byte(o >> 8), tag} }

// addAll adds uploads in batches of 1000 files, as leaves upload them.
func addAll(tb testing.TB, x *Index, uploads [][]File, tag byte) {
	tb.Helper()
	for o, fs := range uploads {
		for i := 0; i < len(fs); i += 1000 {
			// The names are cloned as a decoder would have allocated
			// them, so that the index is measured with what it keeps.
			batch := slices.Clone(fs[i:min(i+1000, len(fs))])
			for j := range batch {
				batch[j].Name = strings.Clone(batch[j].Name)
			}
			if err := x.Add(ownerID(o, tag), batch...); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// TestMemoryPerEntry measures the heap an index of 100,000 ordinary files
// (100 owners of 1,000) grows by, and checks that the accounting covers it.
func TestMemoryPerEntry(t *testing.T) {
	uploads, meanName := ordinaryUploads(1, 100, 1000)
	before := heapInuse()
	x := New(Limits{})
	addAll(t, x, uploads, 1)
	grown := heapInuse() - before
	n := int64(x.Stats().Files)
	t.Logf("%d ordinary files, names of %.1f bytes: %d heap bytes per file, %d accounted", n, meanName, grown/n, x.Bytes()/n)
	if grown > x.Bytes() {
		t.Errorf("heap grew by %d bytes, more than the %d the index accounts", grown, x.Bytes())
	}
	// The uploads were in the heap before; they must still be after.
	runtime.KeepAlive(uploads)
	runtime.KeepAlive(x)
}

// TestMillionFiles checks that 10^6 ordinary files fit well under 1 GiB
// (half of it). It indexes 2·10^5 (200 owners of 1,000) and extrapolates
// linearly, which overstates the cost of the larger index, whose vocabulary
// and popular names are shared; 10^6 take about 10 s without the race
// detector and much longer with it (under it, 10^5 are indexed).
// BenchmarkMillionFiles indexes the whole million.
func TestMillionFiles(t *testing.T) {
	owners := 200
	if raceEnabled {
		owners = 100 // 10 s under the race detector
	}
	grown, n := indexOrdinary(t, owners)
	perMillion := grown * 1_000_000 / n
	t.Logf("%d files: heap grew by %d MiB, %d bytes per file; 10^6 files, extrapolated: %d MiB", n, grown>>20, grown/n, perMillion>>20)
	if perMillion > 1<<29 {
		t.Errorf("10^6 files would take %d MiB, more than half of 1 GiB", perMillion>>20)
	}
}

// BenchmarkMillionFiles indexes 10^6 ordinary files (1,000 owners of 1,000)
// and reports the heap they take.
func BenchmarkMillionFiles(b *testing.B) {
	for b.Loop() {
		grown, n := indexOrdinary(b, 1000)
		b.ReportMetric(float64(grown)/(1<<20), "heapMiB")
		b.ReportMetric(float64(grown)/float64(n), "heapB/file")
	}
}

// indexOrdinary indexes owners uploads of 1,000 ordinary files and returns
// how much the heap grew and the files indexed.
func indexOrdinary(tb testing.TB, owners int) (int64, int64) {
	uploads, _ := ordinaryUploads(3, owners, 1000)
	before := heapInuse()
	x := New(Limits{})
	addAll(tb, x, uploads, 3)
	grown := heapInuse() - before
	n := int64(x.Stats().Files)
	runtime.KeepAlive(uploads)
	runtime.KeepAlive(x)
	return grown, n
}

// TestAccountingBoundsHeap checks the cost model on the worst names: every
// word new, names at the length limit. The heap must stay within what the
// index accounts, so that Limits.MaxBytesPerOwner bounds real memory, and a
// hostile owner must be refused at its byte limit, with nothing added.
func TestAccountingBoundsHeap(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var uploads [][]File
	for o := range 4 {
		uploads = append(uploads, hostileFiles(r, o, 2000, DefaultMaxNameBytes))
	}
	before := heapInuse()
	x := New(Limits{})
	addAll(t, x, uploads, 2)
	grown := heapInuse() - before
	n := int64(x.Stats().Files)
	t.Logf("%d hostile files of %d bytes: %d heap bytes per file, %d accounted", n, DefaultMaxNameBytes, grown/n, x.Bytes()/n)
	if grown > x.Bytes() {
		t.Errorf("heap grew by %d bytes, more than the %d the index accounts", grown, x.Bytes())
	}

	// One owner at its byte limit: 2 MiB here, for speed.
	y := New(Limits{MaxBytesPerOwner: 2 << 20})
	who := ownerID(9, 2)
	added := 0
	var err error
	for err == nil {
		err = y.Add(who, hostileFiles(r, 9+added, 100, DefaultMaxNameBytes)...)
		if err == nil {
			added += 100
		}
	}
	if !errors.Is(err, ErrOwnerFull) || y.OwnerFiles(who) != added || y.OwnerBytes(who) > 2<<20 {
		t.Fatalf("after %d files: %v, owner holds %d files and %d bytes", added, err, y.OwnerFiles(who), y.OwnerBytes(who))
	}
	if c := y.Counters().Snapshot(); c.OwnerFull != 1 || c.OwnerBytes != 1 {
		t.Errorf("counters %+v, want one refusal for bytes", c)
	}
	checkInvariants(t, y)
	runtime.KeepAlive(uploads)
	runtime.KeepAlive(x)
}

// TestMemoryReturnedWhenOwnersLeave fills an index with ordinary owners,
// lets four hostile owners of 2,000 long made-up names each join and leave
// again, and checks that the heap comes back near where it was.
func TestMemoryReturnedWhenOwnersLeave(t *testing.T) {
	uploads, _ := ordinaryUploads(7, 20, 1000)
	r := rand.New(rand.NewPCG(8, 9))
	var hostile [][]File
	for o := range 4 {
		hostile = append(hostile, hostileFiles(r, o, 2000, DefaultMaxNameBytes))
	}
	start := heapInuse()
	x := New(Limits{})
	addAll(t, x, uploads, 1)
	// A search first, so that its pooled scratch is in the baseline.
	x.Search(Query{Words: "a"})
	base := heapInuse()
	addAll(t, x, hostile, 2)
	// Honest owners keep uploading while the hostile ones are there.
	more, _ := ordinaryUploads(10, 2, 200)
	addAll(t, x, more, 3)
	full := heapInuse()
	for o := range hostile {
		x.DropOwner(ownerID(o, 2))
	}
	after := heapInuse()
	t.Logf("index %d MiB; with hostile owners %d MiB; after they left %d MiB (%+d KiB from the baseline, %d rebuilds)",
		(base-start)>>20, (full-start)>>20, (after-start)>>20, (after-base)>>10, x.Counters().Snapshot().Rebuilt)
	// What stays: the honest files added meanwhile (1/50 of the baseline),
	// the content map's growth (it is rebuilt only below a quarter of its
	// peak) and the heap's fragmentation.
	if limit := base + (full-base)/10; after > limit {
		t.Errorf("heap after the hostile owners left: %d KiB above the baseline, more than a tenth of the %d KiB they took",
			(after-base)>>10, (full-base)>>10)
	}
	checkInvariants(t, x)
	runtime.KeepAlive(uploads)
	runtime.KeepAlive(hostile)
	runtime.KeepAlive(more)
	runtime.KeepAlive(x)
}
