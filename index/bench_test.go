package index

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/identity"
)

// The benchmark corpus: 1,000 owners sharing 100 files each, drawn from a
// catalog whose popularity and vocabulary both follow Zipf-like laws, as the
// files of a file-sharing network do (a few hits shared by many, a long tail
// shared by one).
const (
	benchOwners   = 1000
	benchPerOwner = 100
	benchCatalog  = 40_000
	benchVocab    = 5000
	benchQueries  = 1000
)

type benchCorpus struct {
	idx     *Index
	folded  []string // the baseline's data: every entry's name, folded
	queries []string
	bytes   float64 // heap bytes per entry held by the index
}

var (
	corpusOnce sync.Once
	corpus     benchCorpus
)

// benchWords makes a deterministic vocabulary of pronounceable words.
func benchWords(r *rand.Rand) []string {
	cons := []string{"b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "ch", "st", "tr"}
	vows := []string{"a", "e", "i", "o", "u", "ai", "ou"}
	seen := map[string]bool{}
	var out []string
	for len(out) < benchVocab {
		var b strings.Builder
		for range 1 + r.IntN(3) {
			b.WriteString(cons[r.IntN(len(cons))])
			b.WriteString(vows[r.IntN(len(vows))])
		}
		if r.IntN(3) == 0 {
			b.WriteString(cons[r.IntN(len(cons))])
		}
		if w := b.String(); !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

func loadCorpus(b *testing.B) *benchCorpus {
	corpusOnce.Do(func() {
		r := rand.New(rand.NewPCG(42, 7))
		words := benchWords(r)
		wordZipf := rand.NewZipf(r, 1.07, 2, benchVocab-1)
		exts := []string{"mp3", "mp3", "mp3", "flac", "ogg", "mkv", "avi", "mp4", "pdf", "epub", "jpg", "zip"}

		type item struct {
			id    ContentID
			words []string
			name  string
			size  int64
		}
		catalog := make([]item, benchCatalog)
		for i := range catalog {
			it := &catalog[i]
			it.id = ContentID{byte(i), byte(i >> 8), byte(i >> 16), 0xc0}
			for range 2 + r.IntN(5) {
				it.words = append(it.words, words[wordZipf.Uint64()])
			}
			artist := strings.Join(it.words[:1+r.IntN(len(it.words)-1)], " ")
			title := strings.Join(it.words[len(strings.Fields(artist)):], " ")
			if title == "" {
				title = words[wordZipf.Uint64()]
			}
			it.name = fmt.Sprintf("%s - %s.%s", strings.ToTitle(artist[:1])+artist[1:], title, exts[r.IntN(len(exts))])
			if r.IntN(3) == 0 {
				it.name = fmt.Sprintf("%02d %s", 1+r.IntN(20), it.name)
			}
			it.size = 1<<20 + r.Int64N(50<<20)
		}
		popZipf := rand.NewZipf(r, 1.02, 4, benchCatalog-1)

		type upload struct {
			who   identity.NodeID
			files []File
		}
		uploads := make([]upload, benchOwners)
		for o := range uploads {
			who := identity.NodeID{byte(o), byte(o >> 8), 0x0e}
			have := map[int]bool{}
			var fs []File
			for len(fs) < benchPerOwner {
				i := int(popZipf.Uint64())
				if have[i] {
					continue
				}
				have[i] = true
				name := catalog[i].name
				if r.IntN(10) == 0 {
					// Some leaves rename: same words, another spelling.
					name = strings.ReplaceAll(strings.ToLower(name), " ", "_")
				}
				fs = append(fs, File{ID: catalog[i].id, Name: name, Size: catalog[i].size})
			}
			uploads[o] = upload{who, fs}
		}

		// The index's memory, names included: they are cloned as a decoder
		// would have allocated them.
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		// Room for the owners other benchmarks add and remove.
		x := New(Limits{MaxOwners: benchOwners + 16})
		for _, u := range uploads {
			fs := make([]File, len(u.files))
			for i, f := range u.files {
				f.Name = strings.Clone(f.Name)
				fs[i] = f
			}
			if err := x.Add(u.who, fs...); err != nil {
				panic(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		corpus.idx = x
		corpus.bytes = float64(after.HeapAlloc-before.HeapAlloc) / float64(benchOwners*benchPerOwner)

		for _, u := range uploads {
			for _, f := range u.files {
				corpus.folded = append(corpus.folded, strings.Join(Tokenize(f.Name), " "))
			}
		}

		// Queries are what users look for: words of popular files, one or
		// two of them, and sometimes a prefix being typed.
		for range benchQueries {
			it := catalog[popZipf.Uint64()]
			w := it.words
			var q string
			switch k := r.IntN(10); {
			case k < 3:
				q = w[r.IntN(len(w))]
			case k < 8:
				q = w[0] + " " + w[len(w)-1]
			default:
				last := w[len(w)-1]
				q = w[0] + " " + last[:min(len(last), 3+r.IntN(3))]
			}
			corpus.queries = append(corpus.queries, q)
		}
	})
	return &corpus
}

// BenchmarkSearch is one search on the index of 100,000 files from 1,000
// owners. Compare with BenchmarkSearchScan, or read the ratio from
// BenchmarkSearchVsScan.
func BenchmarkSearch(b *testing.B) {
	c := loadCorpus(b)
	i := 0
	for b.Loop() {
		c.idx.Search(Query{Words: c.queries[i%len(c.queries)]})
		i++
	}
	b.ReportMetric(c.bytes, "heapB/file")
}

// scanSearch is the baseline: the obvious search without an index, a pass
// over every folded name checking each query word with strings.Contains. It
// only finds the matching entries; it neither groups nor ranks them, so it
// does less than Search does.
func scanSearch(folded []string, q string) []int {
	words := Tokenize(q)
	if len(words) == 0 {
		return nil
	}
	var out []int
next:
	for i, name := range folded {
		for _, w := range words {
			if !strings.Contains(name, w) {
				continue next
			}
		}
		out = append(out, i)
	}
	return out
}

// BenchmarkSearchScan is the baseline of BenchmarkSearch on the same corpus
// and queries.
func BenchmarkSearchScan(b *testing.B) {
	c := loadCorpus(b)
	i := 0
	for b.Loop() {
		scanSearch(c.folded, c.queries[i%len(c.queries)])
		i++
	}
}

// BenchmarkSearchVsScan runs every query both ways in the same iteration and
// reports the time of each and their ratio, so the speed-up is measured on
// the same machine, at the same moment, for the same queries.
func BenchmarkSearchVsScan(b *testing.B) {
	c := loadCorpus(b)
	var indexed, scanned time.Duration
	i := 0
	for b.Loop() {
		q := c.queries[i%len(c.queries)]
		t0 := time.Now()
		c.idx.Search(Query{Words: q})
		t1 := time.Now()
		scanSearch(c.folded, q)
		scanned += time.Since(t1)
		indexed += t1.Sub(t0)
		i++
	}
	b.ReportMetric(float64(indexed.Nanoseconds())/float64(b.N), "index-ns/search")
	b.ReportMetric(float64(scanned.Nanoseconds())/float64(b.N), "scan-ns/search")
	b.ReportMetric(float64(scanned)/float64(max(indexed, 1)), "speedup")
}

// BenchmarkReplace is a leaf re-uploading its 100 files into the full index,
// with one file changed: the cost of an index refresh.
func BenchmarkReplace(b *testing.B) {
	c := loadCorpus(b)
	x := New(Limits{})
	who := identity.NodeID{0xff}
	fs := make([]File, benchPerOwner)
	for i := range fs {
		fs[i] = File{ID: ContentID{byte(i), 0xbe}, Name: c.folded[i], Size: int64(i)}
	}
	if err := x.Replace(who, fs); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		fs[i%len(fs)].Name = fmt.Sprintf("renamed %d", i)
		if err := x.Replace(who, fs); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
