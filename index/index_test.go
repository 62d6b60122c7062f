package index

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/canopy-p2p/canopy/identity"
)

func node(n byte) identity.NodeID { return identity.NodeID{n} }
func cid(n byte) ContentID        { return ContentID{n} }

// names returns the names of hits, in order.
func names(hits []Hit) []string {
	var out []string
	for _, h := range hits {
		out = append(out, h.Name)
	}
	return out
}

// checkInvariants verifies the internal structure of x against itself,
// with no change under way.
func checkInvariants(t *testing.T, x *Index) {
	t.Helper()
	x.mu.RLock()
	defer x.mu.RUnlock()
	live := 0
	perOwner := map[uint32]int{}
	entryBytes := map[uint32]int64{}
	var bad string
	x.entries.each(func(e uint32, en *entry) {
		if en.name == "" || bad != "" {
			return // a free slot: names are never empty
		}
		live++
		perOwner[en.owner]++
		entryBytes[en.owner] += entryCost(en.name, len(en.terms))
		if x.owners[en.owner] == nil || x.dying[en.owner] {
			bad = fmt.Sprintf("entry %d: free or dying owner slot %d", e, en.owner)
			return
		}
		want := Tokenize(en.name)
		if len(want) != len(en.terms) {
			bad = fmt.Sprintf("entry %d %q: %d terms, want %d", e, en.name, len(en.terms), len(want))
			return
		}
		for i, r := range en.terms {
			tm := x.terms.at(r.term)
			if tm.text != want[i] {
				bad = fmt.Sprintf("entry %d: term %d is %q, want %q", e, i, tm.text, want[i])
				return
			}
			if int(r.pos) >= len(tm.post) || tm.post[r.pos] != e {
				bad = fmt.Sprintf("entry %d: term %q: position %d is wrong", e, tm.text, r.pos)
				return
			}
		}
	})
	if bad != "" {
		t.Fatal(bad)
	}
	if live != x.files || x.entries.len() != live {
		t.Fatalf("live entries %d, files %d, entries %d", live, x.files, x.entries.len())
	}
	postings := 0
	wordBytes := map[uint32]int64{}
	for w, id := range x.termIDs {
		tm := x.terms.at(id)
		if tm.text != w || len(tm.post) == 0 {
			t.Fatalf("term %q: text %q, %d postings", w, tm.text, len(tm.post))
		}
		postings += len(tm.post)
		if k, ok := x.sorted.Get(termKey{text: w}); !ok || k.id != id {
			t.Fatalf("term %q missing from the ordered set", w)
		}
		if !slices.ContainsFunc(tm.post, func(e uint32) bool { return x.entries.at(e).owner == tm.owner }) {
			t.Fatalf("term %q is charged to owner slot %d, which holds no entry with it", w, tm.owner)
		}
		wordBytes[tm.owner] += wordCost(w)
	}
	refs := 0
	x.entries.each(func(_ uint32, en *entry) { refs += len(en.terms) })
	if postings != refs || x.sorted.Len() != len(x.termIDs) || x.terms.len() != len(x.termIDs) {
		t.Fatalf("%d postings, %d term refs, %d ordered terms, %d terms, %d term slots", postings, refs, x.sorted.Len(), len(x.termIDs), x.terms.len())
	}
	refsOf := map[uint32]int{}
	x.entries.each(func(_ uint32, en *entry) {
		if en.name != "" {
			refsOf[en.content]++
		}
	})
	if len(refsOf) != len(x.contentSlots) || x.contents.len() != len(refsOf) {
		t.Fatalf("%d contents referred to, %d slots mapped, %d live", len(refsOf), len(x.contentSlots), x.contents.len())
	}
	for id, c := range x.contentSlots {
		if x.contents.at(c).id != id || x.contents.at(c).refs != refsOf[c] {
			t.Fatalf("content %d: refs %d, want %d", c, x.contents.at(c).refs, refsOf[c])
		}
	}
	var total int64
	joined := map[uint64]bool{}
	for slot, o := range x.owners {
		if o == nil {
			continue
		}
		// Owners' numbers break the ties of votes: live owners must not
		// share one.
		if j := x.joined[slot]; j == 0 || j > x.ownerSeq || joined[j] {
			t.Fatalf("owner slot %d: joined %d (last %d) is zero, unissued or shared", slot, j, x.ownerSeq)
		}
		joined[x.joined[slot]] = true
		if x.dying[slot] || x.byOwner[o.id] != uint32(slot) {
			t.Fatalf("owner slot %d: dying %v or not mapped", slot, x.dying[slot])
		}
		if o.entryBytes != entryBytes[uint32(slot)] || o.wordBytes != wordBytes[uint32(slot)] || o.reservedBytes != 0 || o.reservedFiles != 0 {
			t.Fatalf("owner %s: charged %d+%d (reserved %d, %d files), want %d+%d", o.id.Short(), o.entryBytes, o.wordBytes,
				o.reservedBytes, o.reservedFiles, entryBytes[uint32(slot)], wordBytes[uint32(slot)])
		}
		total += o.entryBytes + o.wordBytes
	}
	if total != x.bytes || x.reservedBytes != 0 || x.reservedFiles != 0 {
		t.Fatalf("index charged %d (reserved %d, %d files), owners %d", x.bytes, x.reservedBytes, x.reservedFiles, total)
	}
	for who, slot := range x.byOwner {
		o := x.owners[slot]
		if o == nil || o.id != who || o.n != perOwner[slot] || o.n == 0 {
			t.Fatalf("owner %s: bad slot or count", who.Short())
		}
		chained := 0
		for id, head := range o.files {
			for e := head; e != none; e = x.entries.at(e).next {
				en := x.entries.at(e)
				if en.owner != slot || en.content != id {
					t.Fatalf("owner %s: chain of content %d reaches entry %d of another", who.Short(), id, e)
				}
				if shared := e != head || en.next != none; en.shared != shared {
					t.Fatalf("owner %s: entry %d: shared = %v, want %v", who.Short(), e, en.shared, shared)
				}
				chained++
			}
		}
		if chained != o.n {
			t.Fatalf("owner %s: %d chained entries, %d counted", who.Short(), chained, o.n)
		}
	}
}

func TestSearchANDSemantics(t *testing.T) {
	x := New(Limits{})
	if err := x.Add(node(1),
		File{ID: cid(1), Name: "Miles Davis - So What.mp3", Size: 10},
		File{ID: cid(2), Name: "Miles Davis - Blue in Green.flac", Size: 20},
		File{ID: cid(3), Name: "John Coltrane - Blue Train.mp3", Size: 30},
	); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		q    string
		want []string
	}{
		{"miles", []string{"Miles Davis - Blue in Green.flac", "Miles Davis - So What.mp3"}},
		{"BLUE", []string{"John Coltrane - Blue Train.mp3", "Miles Davis - Blue in Green.flac"}},
		{"blue miles", []string{"Miles Davis - Blue in Green.flac"}},
		{"blue mp3", []string{"John Coltrane - Blue Train.mp3"}},
		{"blue nothing", nil},
		{"", nil},
		{" -- ", nil},
		// The last word matches as a prefix from three runes on...
		{"davis bl", nil},
		{"davis blu", []string{"Miles Davis - Blue in Green.flac"}},
		{"coltr", []string{"John Coltrane - Blue Train.mp3"}},
		// ...but only the last one.
		{"coltr blue", nil},
		// An exact short last word still matches exactly.
		{"so", []string{"Miles Davis - So What.mp3"}},
		{"in", []string{"Miles Davis - Blue in Green.flac"}},
	}
	for _, tt := range tests {
		if got := names(x.Search(Query{Words: tt.q})); !slices.Equal(got, tt.want) {
			t.Errorf("Search(%q) = %q, want %q", tt.q, got, tt.want)
		}
	}
}

func TestSearchUnicode(t *testing.T) {
	x := New(Limits{})
	if err := x.Add(node(1),
		File{ID: cid(1), Name: "Café del Mar.mp3"},
		File{ID: cid(2), Name: "Die Straße.ogg"},
		File{ID: cid(3), Name: "ΣΊΣΥΦΟΣ.pdf"},
		File{ID: cid(4), Name: "東京都庁.jpg"},
		File{ID: cid(5), Name: "京東.jpg"},
	); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		q    string
		want []string
	}{
		{"CAFE", []string{"Café del Mar.mp3"}},
		{"strasse", []string{"Die Straße.ogg"}},
		{"σίσυφος", []string{"ΣΊΣΥΦΟΣ.pdf"}},
		{"東京", []string{"東京都庁.jpg"}},
		{"京都", []string{"東京都庁.jpg"}},
		// A one-rune query finds the bigrams starting with it.
		{"京", []string{"京東.jpg", "東京都庁.jpg"}},
		{"東京庁", nil},
	}
	for _, tt := range tests {
		if got := names(x.Search(Query{Words: tt.q})); !slices.Equal(got, tt.want) {
			t.Errorf("Search(%q) = %q, want %q", tt.q, got, tt.want)
		}
	}
}

func TestSearchGroupsByContent(t *testing.T) {
	x := New(Limits{})
	pop, rare := cid(1), cid(2)
	add := func(who byte, files ...File) {
		t.Helper()
		if err := x.Add(node(who), files...); err != nil {
			t.Fatal(err)
		}
	}
	add(1, File{ID: pop, Name: "track one.mp3", Size: 100})
	add(2, File{ID: pop, Name: "Track One.mp3", Size: 100})
	add(3, File{ID: pop, Name: "Track One.mp3", Size: 999}) // a liar about size
	add(4, File{ID: pop, Name: "Track One.mp3", Size: 100},
		File{ID: pop, Name: "Track_One (copy).mp3", Size: 100}) // one owner, two names
	add(5, File{ID: rare, Name: "track one live.mp3", Size: 50})

	hits := x.Search(Query{Words: "track one"})
	if len(hits) != 2 {
		t.Fatalf("got %d hits, want 2: %+v", len(hits), hits)
	}
	h := hits[0]
	if h.ID != pop || h.OwnerCount != 4 || len(h.Owners) != 4 || h.Name != "Track One.mp3" || h.Size != 100 {
		t.Errorf("popular hit = %+v", h)
	}
	got := slices.Clone(h.Owners)
	slices.SortFunc(got, func(a, b identity.NodeID) int { return bytes.Compare(a[:], b[:]) })
	if want := []identity.NodeID{node(1), node(2), node(3), node(4)}; !slices.Equal(got, want) {
		t.Errorf("owners = %v", got)
	}
	if hits[1].ID != rare || hits[1].OwnerCount != 1 {
		t.Errorf("rare hit = %+v", hits[1])
	}

	// Only matching names vote and count: "copy" is in one name only.
	hits = x.Search(Query{Words: "track copy"})
	if len(hits) != 1 || hits[0].OwnerCount != 1 || hits[0].Name != "Track_One (copy).mp3" {
		t.Errorf("copy hits = %+v", hits)
	}

	// Limit bounds the hits.
	if hits := x.Search(Query{Words: "track", Limit: 1}); len(hits) != 1 || hits[0].ID != pop {
		t.Errorf("limited hits = %+v", hits)
	}
}

func TestSearchOwnerListBound(t *testing.T) {
	x := New(Limits{})
	for i := range 100 {
		if err := x.Add(identity.NodeID{byte(i), 1}, File{ID: cid(1), Name: "shared thing"}); err != nil {
			t.Fatal(err)
		}
	}
	hits := x.Search(Query{Words: "thing"})
	if len(hits) != 1 || hits[0].OwnerCount != 100 || len(hits[0].Owners) != MaxHitOwners {
		t.Fatalf("hits = %d, count %d, listed %d", len(hits), hits[0].OwnerCount, len(hits[0].Owners))
	}
}

func TestRemoveAndDropOwner(t *testing.T) {
	x := New(Limits{})
	a, b := node(1), node(2)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(x.Add(a,
		File{ID: cid(1), Name: "red apple"},
		File{ID: cid(1), Name: "apple red copy"},
		File{ID: cid(2), Name: "green apple"},
	))
	must(x.Add(b, File{ID: cid(3), Name: "green pear"}))
	if s := x.Stats(); s != (Stats{Owners: 2, Files: 4, Tokens: 5}) {
		t.Fatalf("stats = %+v", s)
	}

	x.Remove(a, cid(1), "red apple")
	if n := x.OwnerFiles(a); n != 3-1 {
		t.Fatalf("after removing one name: %d files", n)
	}
	if got := names(x.Search(Query{Words: "red"})); !slices.Equal(got, []string{"apple red copy"}) {
		t.Fatalf("red = %q", got)
	}
	x.Remove(a, cid(9), "")       // unknown content
	x.Remove(node(9), cid(1), "") // unknown owner
	must(x.Add(a, File{ID: cid(1), Name: "red apple"}))
	x.Remove(a, cid(1), "") // every name of the content
	if n := x.OwnerFiles(a); n != 1 {
		t.Fatalf("after removing all names: %d files", n)
	}
	checkInvariants(t, x)

	if n := x.DropOwner(a); n != 1 {
		t.Fatalf("DropOwner = %d", n)
	}
	if n := x.DropOwner(a); n != 0 {
		t.Fatalf("second DropOwner = %d", n)
	}
	if got := names(x.Search(Query{Words: "apple"})); got != nil {
		t.Fatalf("apple after drop = %q", got)
	}
	if s := x.Stats(); s != (Stats{Owners: 1, Files: 1, Tokens: 2}) {
		t.Fatalf("stats = %+v", s)
	}
	x.Remove(b, cid(3), "green pear")
	if s := x.Stats(); s != (Stats{}) {
		t.Fatalf("stats after removing the last file = %+v", s)
	}
	checkInvariants(t, x)
}

func TestAddReplacesSameFile(t *testing.T) {
	x := New(Limits{MaxFilesPerOwner: 2})
	a := node(1)
	if err := x.Add(a, File{ID: cid(1), Name: "one", Size: 1}, File{ID: cid(1), Name: "one", Size: 2}); err != nil {
		t.Fatal(err)
	}
	// Re-adding a shared file does not count against the limit.
	if err := x.Add(a, File{ID: cid(1), Name: "one", Size: 3}, File{ID: cid(2), Name: "two"}); err != nil {
		t.Fatal(err)
	}
	if hits := x.Search(Query{Words: "one"}); len(hits) != 1 || hits[0].Size != 3 {
		t.Fatalf("hits = %+v", hits)
	}
	if n := x.OwnerFiles(a); n != 2 {
		t.Fatalf("%d files", n)
	}
}

func TestLimitsAndAtomicity(t *testing.T) {
	x := New(Limits{MaxOwners: 2, MaxFilesPerOwner: 3, MaxFiles: 5, MaxNameBytes: 10})
	a, b, c := node(1), node(2), node(3)
	f := func(n byte) File { return File{ID: cid(n), Name: fmt.Sprintf("file %d", n), Size: int64(n)} }
	if err := x.Add(a, f(1), f(2)); err != nil {
		t.Fatal(err)
	}
	before := x.Stats()

	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"empty name", func() error { return x.Add(a, f(3), File{ID: cid(4)}) }, ErrBadFile},
		{"long name", func() error { return x.Add(a, File{ID: cid(4), Name: "eleven byte"}) }, ErrBadFile},
		{"invalid utf-8", func() error { return x.Add(a, File{ID: cid(4), Name: "a\xff"}) }, ErrBadFile},
		{"negative size", func() error { return x.Add(a, File{ID: cid(4), Name: "x", Size: -1}) }, ErrBadFile},
		{"owner full", func() error { return x.Add(a, f(3), f(4)) }, ErrOwnerFull},
		{"replace owner full", func() error { return x.Replace(a, []File{f(3), f(4), f(5), f(6)}) }, ErrOwnerFull},
		{"replace bad file", func() error { return x.Replace(a, []File{f(3), {ID: cid(9)}}) }, ErrBadFile},
		{"index full", func() error { return x.Add(b, f(3), f(4), f(5), f(6)) }, ErrOwnerFull},
	}
	for _, tt := range tests {
		if err := tt.op(); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
		if s := x.Stats(); s != before {
			t.Errorf("%s: stats %+v, want unchanged %+v", tt.name, s, before)
		}
	}

	if err := x.Add(b, f(3), f(4), f(5)); err != nil {
		t.Fatal(err)
	}
	if err := x.Add(b, f(6)); !errors.Is(err, ErrOwnerFull) {
		t.Errorf("b over its limit: %v", err)
	}
	if err := x.Add(a, f(6)); !errors.Is(err, ErrIndexFull) {
		t.Errorf("index over its limit: %v", err)
	}
	if err := x.Replace(a, []File{f(6), f(7), f(8)}); !errors.Is(err, ErrIndexFull) {
		t.Errorf("replace over the index limit: %v", err)
	}
	if err := x.Add(c, f(9)); !errors.Is(err, ErrTooManyOwners) {
		t.Errorf("third owner: %v", err)
	}
	if err := x.Replace(c, []File{f(9)}); !errors.Is(err, ErrTooManyOwners) {
		t.Errorf("third owner by replace: %v", err)
	}
	// Replacing within the limits works, and replacing with nothing drops.
	if err := x.Replace(a, []File{f(1), f(7)}); err != nil {
		t.Fatal(err)
	}
	if got := names(x.Search(Query{Words: "file"})); !slices.Equal(got, []string{"file 1", "file 3", "file 4", "file 5", "file 7"}) {
		t.Errorf("after replace: %q", got)
	}
	if err := x.Replace(b, nil); err != nil {
		t.Fatal(err)
	}
	if err := x.Add(c, f(9)); err != nil {
		t.Errorf("owner slot not freed by empty replace: %v", err)
	}
	checkInvariants(t, x)
}

// model is the obvious implementation of the index, for comparison.
type model struct {
	files map[identity.NodeID]map[fileKey]int64
	// joined numbers the owners in the order they came to have files; an
	// owner left with none is forgotten and numbered anew when it returns.
	joined map[identity.NodeID]uint64
	seq    uint64
}

func newModel() *model {
	return &model{files: map[identity.NodeID]map[fileKey]int64{}, joined: map[identity.NodeID]uint64{}}
}

func (m *model) count() int {
	n := 0
	for _, fs := range m.files {
		n += len(fs)
	}
	return n
}

// set makes fs the whole of who's files.
func (m *model) set(who identity.NodeID, fs map[fileKey]int64) {
	if len(fs) == 0 {
		delete(m.files, who)
		delete(m.joined, who)
		return
	}
	if _, ok := m.files[who]; !ok {
		m.seq++
		m.joined[who] = m.seq
	}
	m.files[who] = fs
}

func (m *model) add(l Limits, who identity.NodeID, files []File, replace bool) error {
	for _, f := range files {
		if f.Name == "" || len(f.Name) > l.MaxNameBytes || f.Size < 0 {
			return ErrBadFile
		}
	}
	fs, known := m.files[who]
	if !known && len(files) > 0 && len(m.files) >= l.MaxOwners {
		return ErrTooManyOwners
	}
	next := map[fileKey]int64{}
	if !replace {
		for k, v := range fs {
			next[k] = v
		}
	}
	for _, f := range files {
		next[fileKey{f.ID, f.Name}] = f.Size
	}
	if len(next) > l.MaxFilesPerOwner {
		return ErrOwnerFull
	}
	if m.count()-len(fs)+len(next) > l.MaxFiles {
		return ErrIndexFull
	}
	m.set(who, next)
	return nil
}

// remove is Index.Remove.
func (m *model) remove(who identity.NodeID, id ContentID, name string) {
	next := map[fileKey]int64{}
	for k, v := range m.files[who] {
		if k.id != id || name != "" && k.name != name {
			next[k] = v
		}
	}
	m.set(who, next)
}

func (m *model) search(words string, limit int) []Hit {
	q := Tokenize(words)
	if len(q) == 0 {
		return nil
	}
	last := q[len(q)-1]
	matches := func(name string) bool {
		toks := Tokenize(name)
		for i, w := range q {
			if i == len(q)-1 && isPrefixWord(w) {
				if !slices.ContainsFunc(toks, func(t string) bool { return strings.HasPrefix(t, last) }) {
					return false
				}
			} else if !slices.Contains(toks, w) {
				return false
			}
		}
		return true
	}
	// Each owner's vote for a content ID: its matching entry whose name
	// sorts first.
	type choice struct {
		name string
		size int64
	}
	votes := map[ContentID]map[identity.NodeID]choice{}
	for who, fs := range m.files {
		for k, size := range fs {
			if !matches(k.name) {
				continue
			}
			if votes[k.id] == nil {
				votes[k.id] = map[identity.NodeID]choice{}
			}
			if c, ok := votes[k.id][who]; !ok || k.name < c.name {
				votes[k.id][who] = choice{k.name, size}
			}
		}
	}
	var hits []Hit
	for id, byOwner := range votes {
		names, sizes := map[string]modelTally{}, map[int64]modelTally{}
		h := Hit{ID: id, OwnerCount: len(byOwner)}
		for who, c := range byOwner {
			modelVote(names, c.name, m.joined[who])
			modelVote(sizes, c.size, m.joined[who])
			h.Owners = append(h.Owners, who)
		}
		h.Name, h.Size = modelWinner(names), modelWinner(sizes)
		hits = append(hits, h)
	}
	slices.SortFunc(hits, func(a, b Hit) int {
		if a.OwnerCount != b.OwnerCount {
			return cmp.Compare(b.OwnerCount, a.OwnerCount)
		}
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	return hits[:min(limit, len(hits))]
}

// modelTally counts the voters for one name or size and the number of the
// one that joined first.
type modelTally struct {
	votes  int
	oldest uint64
}

func modelVote[K cmp.Ordered](ts map[K]modelTally, k K, joined uint64) {
	t, ok := ts[k]
	if !ok || joined < t.oldest {
		t.oldest = joined
	}
	t.votes++
	ts[k] = t
}

// modelWinner returns the key with the most voters, then the one with the
// voter that joined first, then the least key.
func modelWinner[K cmp.Ordered](ts map[K]modelTally) K {
	var best K
	var bt modelTally
	for k, t := range ts {
		if bt.votes == 0 || t.votes > bt.votes ||
			t.votes == bt.votes && (t.oldest < bt.oldest || t.oldest == bt.oldest && k < best) {
			best, bt = k, t
		}
	}
	return best
}

// TestAgainstModel runs random operations on an index and on the model and
// compares their searches, errors and counts after every step. Owners share
// one content under several names and lie about sizes often, so that the
// name and size votes are exercised, ties and owners' ages included.
func TestAgainstModel(t *testing.T) {
	vocab := []string{"alpha", "alphabet", "Alps", "beta", "gamma", "café", "CAFE", "straße", "東京都", "京都", "mp3", "01", "x", "ab"}
	seps := []string{" ", "_", " - ", ".", ""}
	queries := []string{"alpha", "alp", "ALPHA beta", "cafe", "strasse mp3", "東京", "京", "x", "ab", "gam", "01 alpha", "nothing", "beta alph"}
	lim := Limits{MaxOwners: 4, MaxFilesPerOwner: 8, MaxFiles: 20, MaxNameBytes: 40}
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 1))
		x, m := New(lim), newModel()
		randFiles := func(max int) []File {
			fs := make([]File, r.IntN(max+1))
			for i := range fs {
				var name strings.Builder
				for j := range 1 + r.IntN(3) {
					if j > 0 {
						name.WriteString(seps[r.IntN(len(seps))])
					}
					name.WriteString(vocab[r.IntN(len(vocab))])
				}
				fs[i] = File{ID: cid(byte(r.IntN(6))), Name: name.String(), Size: int64(r.IntN(3))}
			}
			return fs
		}
		for step := range 300 {
			who := node(byte(r.IntN(6)))
			var err, want error
			switch op := r.IntN(10); {
			case op < 5:
				fs := randFiles(3)
				err, want = x.Add(who, fs...), m.add(lim, who, fs, false)
			case op < 7:
				fs := randFiles(6)
				err, want = x.Replace(who, fs), m.add(lim, who, fs, true)
			case op < 9:
				id := cid(byte(r.IntN(6)))
				var name string
				if fs := m.files[who]; len(fs) > 0 && r.IntN(2) == 0 {
					for k := range fs {
						id, name = k.id, k.name
						break
					}
				}
				x.Remove(who, id, name)
				m.remove(who, id, name)
			default:
				if got, want := x.DropOwner(who), len(m.files[who]); got != want {
					t.Fatalf("seed %d step %d: DropOwner = %d, want %d", seed, step, got, want)
				}
				m.set(who, nil)
			}
			if !errors.Is(err, want) || (err == nil) != (want == nil) {
				t.Fatalf("seed %d step %d: err = %v, want %v", seed, step, err, want)
			}
			if s := x.Stats(); s.Owners != len(m.files) || s.Files != m.count() {
				t.Fatalf("seed %d step %d: stats %+v, model %d owners %d files", seed, step, s, len(m.files), m.count())
			}
			checkInvariants(t, x)
			for _, q := range queries {
				got, want := x.Search(Query{Words: q}), m.search(q, DefaultResultLimit)
				if !sameHits(got, want) {
					t.Fatalf("seed %d step %d: Search(%q)\n got %+v\nwant %+v", seed, step, q, got, want)
				}
			}
		}
	}
}

// sameHits compares hits, with owners compared as sets.
func sameHits(a, b []Hit) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.ID != y.ID || x.Name != y.Name || x.Size != y.Size || x.OwnerCount != y.OwnerCount || len(x.Owners) != len(y.Owners) {
			return false
		}
		for _, o := range x.Owners {
			if !slices.Contains(y.Owners, o) {
				return false
			}
		}
	}
	return true
}

func TestMaxScanBoundsWork(t *testing.T) {
	x := New(Limits{MaxScan: 10})
	for i := range 50 {
		if err := x.Add(node(1), File{ID: cid(byte(i)), Name: fmt.Sprintf("common %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if hits := x.Search(Query{Words: "common"}); len(hits) != 10 {
		t.Fatalf("%d hits from a scan of 10", len(hits))
	}
	if hits := x.Search(Query{Words: "comm"}); len(hits) != 10 {
		t.Fatalf("%d prefix hits from a scan of 10", len(hits))
	}
}

func TestConcurrentUse(t *testing.T) {
	x := New(Limits{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 2))
			for i := range 300 {
				who := node(byte(r.IntN(8)))
				f := File{ID: cid(byte(r.IntN(16))), Name: fmt.Sprintf("song %d take %d.mp3", r.IntN(16), i%3), Size: 1}
				switch r.IntN(4) {
				case 0:
					x.DropOwner(who)
				case 1:
					_ = x.Replace(who, []File{f})
				default:
					_ = x.Add(who, f)
				}
			}
		})
	}
	for w := range 4 {
		wg.Go(func() {
			for i := range 500 {
				for _, h := range x.Search(Query{Words: []string{"song", "take mp3", "son", "1"}[(i+w)%4]}) {
					if h.OwnerCount < len(h.Owners) || h.Name == "" {
						t.Errorf("bad hit %+v", h)
						return
					}
				}
				x.Stats()
			}
		})
	}
	wg.Wait()
	checkInvariants(t, x)
}
