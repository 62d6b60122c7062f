package index

import (
	"bytes"
	"cmp"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/canopy-p2p/canopy/identity"
)

// Bounds on what one search returns and costs.
const (
	// DefaultResultLimit is the number of hits returned when Query.Limit is
	// not set.
	DefaultResultLimit = 100

	// MaxResultLimit caps Query.Limit, so that a peer cannot ask a supernode
	// for a reply of unbounded size.
	MaxResultLimit = 1000

	// MaxHitOwners is the most owners listed in one hit. A downloader uses a
	// handful of sources at a time and finds more by content ID later, so a
	// longer list would only make replies larger; Hit.OwnerCount still counts
	// them all.
	MaxHitOwners = 32

	// MaxPrefixWords is the most distinct words the last query word expands
	// to when it is matched as a prefix and no rarer word drives the search.
	MaxPrefixWords = 512
)

// Query is a keyword search.
type Query struct {
	// Words is the text the user typed; it is split by Tokenize like a name.
	Words string
	// Limit is the most hits returned. Zero or negative means
	// DefaultResultLimit; more than MaxResultLimit means MaxResultLimit.
	Limit int
}

// Hit is one content ID whose names match a query, with its owners.
type Hit struct {
	// ID is the content ID.
	ID ContentID
	// Name is the name the most owners use, each owner voting once, for
	// the matching name of its own that sorts first. A tie goes to the
	// name one of whose voters has been in the index longest (an owner
	// that leaves and comes back starts again), then to the name that
	// sorts first. So a leaf sharing one content under many names has one
	// vote, and a leaf that just attached cannot win a tie against one
	// that was there before it by choosing a name that sorts first; and
	// the choice does not depend on the order in which entries are visited.
	Name string
	// Size is the size of the entry each owner voted for with its name,
	// chosen the same way. Owners of one content ID should agree; a leaf
	// that lies is outvoted.
	Size int64
	// Owners lists up to MaxHitOwners of the owners with a matching entry.
	Owners []identity.NodeID
	// Names holds, for each of Owners at the same index, the name that
	// owner itself shares the content under: its matching name that sorts
	// first. Name is a count of owners, which identities that cost nothing
	// can win; Names is what each owner says, which no number of other
	// owners changes, so that a downloader can show the name of the
	// source it would download from (docs/protocol.md, "Names in hits").
	Names []string
	// OwnerCount is the number of owners with a matching entry, which may be
	// more than len(Owners).
	OwnerCount int
}

// Search returns the content IDs whose names hold every word of q, best
// first: by number of owners, then by name, then by ID. The query is split
// by Tokenize; a query without words has no hits.
//
// Matching is on whole words, except for the last word of the query when it
// has at least MinPrefixRunes runes or is Han, kana or Hangul: it also matches
// the words that start with it. Users type the last word last and search
// while typing ("beeth" finds "beethoven"), but a short prefix matches too
// many words to be useful; a CJK rune carries as much as a short word and is
// the only way a one-rune query meets the bigrams of Tokenize. When the
// prefix is the rarest term and expands to more than MaxPrefixWords words,
// only the first MaxPrefixWords in byte order are searched.
//
// The cost is bounded by the rarest word: the search walks the postings of
// the rarest query word (or the words the prefix expands to, if they are
// rarer together) and checks each entry for the other words, examining at
// most Limits.MaxScan entries. A match of a word in several names of one
// owner counts that owner once.
func (x *Index) Search(q Query) []Hit {
	words := Tokenize(q.Words)
	if len(words) == 0 {
		return nil
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultResultLimit
	}
	limit = min(limit, MaxResultLimit)
	last := words[len(words)-1]
	prefix := isPrefixWord(last)
	exactWords := words
	if prefix {
		exactWords = words[:len(words)-1]
	}

	x.mu.RLock()
	defer x.mu.RUnlock()

	m := matcher{x: x, skip: -1}
	driverLen := math.MaxInt
	for _, w := range exactWords {
		t, ok := x.termIDs[w]
		if !ok {
			return nil
		}
		m.exact = append(m.exact, t)
		if n := len(x.terms.at(t).post); n < driverLen {
			m.skip, driverLen = len(m.exact)-1, n
		}
	}

	var expanded []uint32
	byPrefix := false
	if prefix {
		sum, capped := 0, false
		x.sorted.AscendGreaterOrEqual(termKey{text: last}, func(k termKey) bool {
			if !strings.HasPrefix(k.text, last) || sum >= driverLen {
				return false
			}
			if len(expanded) == MaxPrefixWords {
				capped = true
				return false
			}
			expanded = append(expanded, k.id)
			sum += len(x.terms.at(k.id).post)
			return true
		})
		if len(expanded) == 0 {
			return nil
		}
		// A capped expansion is incomplete: drive by it only when there is
		// no exact word to drive by.
		byPrefix = sum < driverLen && (!capped || len(m.exact) == 0)
		if !byPrefix {
			m.prefix = last
		}
	}

	a := x.newAggregate()
	defer a.release()
	budget := x.lim.MaxScan
	if byPrefix {
		m.skip = -1
		// An entry holding several of the expanded words is visited from
		// the first of them only; expanded is in byte order, so that is
		// the one of lowest rank.
		var ranks []termRank
		if len(expanded) > 1 {
			ranks = make([]termRank, len(expanded))
			for r, t := range expanded {
				ranks[r] = termRank{t, r}
			}
			slices.SortFunc(ranks, func(p, q termRank) int { return cmp.Compare(p.term, q.term) })
		}
	scan:
		for r, t := range expanded {
			for _, e := range x.terms.at(t).post {
				if budget == 0 {
					break scan
				}
				budget--
				if r > 0 && x.hasLowerRank(e, ranks, r) {
					continue
				}
				if m.matches(e) {
					a.add(e)
				}
			}
		}
	} else {
		for _, e := range x.terms.at(m.exact[m.skip]).post {
			if budget == 0 {
				break
			}
			budget--
			if m.matches(e) {
				a.add(e)
			}
		}
	}
	return a.hits(limit)
}

// termRank is a word of a prefix expansion and its rank in byte order.
type termRank struct {
	term uint32
	rank int
}

// hasLowerRank reports whether entry e holds a word of ranks ranked below r.
func (x *Index) hasLowerRank(e uint32, ranks []termRank, r int) bool {
	for _, ref := range x.entries.at(e).terms {
		i, ok := slices.BinarySearchFunc(ranks, ref.term, func(p termRank, t uint32) int { return cmp.Compare(p.term, t) })
		if ok && ranks[i].rank < r {
			return true
		}
	}
	return false
}

// isPrefixWord reports whether the last query word w also matches as a
// prefix; see Search.
func isPrefixWord(w string) bool {
	if r, _ := utf8.DecodeRuneInString(w); isCJK(r) {
		return true
	}
	return utf8.RuneCountInString(w) >= MinPrefixRunes
}

// matcher checks candidate entries against the words of a query.
type matcher struct {
	x *Index
	// exact are the words an entry must hold.
	exact []uint32
	// skip is the index in exact of the word whose posting is walked, which
	// every candidate holds; -1 when the walk is over a prefix expansion.
	skip int
	// prefix, when set, must start one of the entry's words.
	prefix string
}

// matches reports whether entry e holds the query's words. The entries of
// an owner being reclaimed never match.
func (m *matcher) matches(e uint32) bool {
	en := m.x.entries.at(e)
	if m.x.dying[en.owner] {
		return false
	}
	terms := en.terms
next:
	for i, t := range m.exact {
		if i == m.skip {
			continue
		}
		for _, r := range terms {
			if r.term == t {
				continue next
			}
		}
		return false
	}
	if m.prefix == "" {
		return true
	}
	for _, r := range terms {
		if strings.HasPrefix(m.x.terms.at(r.term).text, m.prefix) {
			return true
		}
	}
	return false
}

// group gathers the matching entries of one content ID.
type group struct {
	content uint32
	owners  int
	// name and size are the first voted for, with their tallies. Other
	// names and sizes are tallied in aggregate's maps, which most groups
	// never touch.
	name     string
	nameVote tally
	size     int64
	sizeVote tally
	// hit is the group's position in the result plus one, or zero.
	hit int
}

// tally counts the owners voting for one name or size, and keeps the
// earliest joined (Index.joined) of them for breaking ties.
type tally struct {
	votes  int
	oldest uint64
}

func (t *tally) add(joined uint64) {
	if t.votes == 0 || joined < t.oldest {
		t.oldest = joined
	}
	t.votes++
}

// beats reports whether t wins against u: more votes, or as many with an
// older voter. Owners' numbers are distinct, so a tie between two tallies
// with votes is left to the caller only when both are empty.
func (t tally) beats(u tally) bool {
	if t.votes != u.votes {
		return t.votes > u.votes
	}
	return t.oldest < u.oldest
}

type nameVote struct {
	g    int32
	name string
}

type sizeVote struct {
	g    int32
	size int64
}

type ownerVote struct {
	g     int32
	owner uint32
}

// scratch is the memory a search reuses.
type scratch struct {
	// groupOf maps a content slot to its group, or -1. It is indexed
	// directly, rather than hashed, because it is consulted for every
	// matching entry; it is reset after use by walking the groups.
	groupOf []int32
	groups  []group
	matches []uint32
}

// aggregate groups matching entries by content ID and ranks the groups.
type aggregate struct {
	x *Index
	*scratch
	names map[nameVote]tally
	sizes map[sizeVote]tally
	// owners holds, for each owner with several entries of a group's
	// content ID, the matching one it votes with: the one whose name sorts
	// first. Those votes are cast in hits, once every entry has been seen,
	// so that the choice does not depend on the order of visits.
	owners map[ownerVote]uint32
}

// newAggregate takes a scratch from the pool; x.mu must be held for reading.
func (x *Index) newAggregate() aggregate {
	s, _ := x.scratch.Get().(*scratch)
	if s == nil {
		s = new(scratch)
	}
	n := x.contents.slots()
	if cap(s.groupOf) > 2*n+chunkSize {
		// The index has shrunk: so does the table.
		s.groupOf = nil
	}
	for len(s.groupOf) < n {
		s.groupOf = append(s.groupOf, -1)
	}
	return aggregate{x: x, scratch: s}
}

// release resets the scratch and returns it to the pool.
func (a *aggregate) release() {
	for _, g := range a.groups {
		a.groupOf[g.content] = -1
	}
	if cap(a.matches) > 1<<16 {
		// Keep the pool from holding on to the memory of one huge search.
		a.matches, a.groups = nil, nil
	}
	a.groups, a.matches = a.groups[:0], a.matches[:0]
	a.x.scratch.Put(a.scratch)
}

func (a *aggregate) add(e uint32) {
	en := a.x.entries.at(e)
	g := a.groupOf[en.content]
	if g < 0 {
		g = int32(len(a.groups))
		a.groupOf[en.content] = g
		a.groups = append(a.groups, group{content: en.content, name: en.name, size: en.size})
	}
	a.matches = append(a.matches, e)

	if !en.shared {
		// The common case: the owner's only entry of this content, and so
		// its vote.
		a.groups[g].owners++
		a.vote(g, en)
		return
	}
	if a.owners == nil {
		a.owners = make(map[ownerVote]uint32)
	}
	k := ownerVote{g, en.owner}
	if prev, dup := a.owners[k]; !dup {
		a.groups[g].owners++
		a.owners[k] = e
	} else if en.name < a.x.entries.at(prev).name {
		a.owners[k] = e
	}
}

// vote counts entry en's name and size for group g, as one owner's vote.
func (a *aggregate) vote(g int32, en *entry) {
	joined := a.x.joined[en.owner]
	gr := &a.groups[g]
	switch {
	case gr.nameVote.votes == 0:
		gr.name = en.name
		gr.nameVote.add(joined)
	case en.name == gr.name:
		gr.nameVote.add(joined)
	default:
		if a.names == nil {
			a.names = make(map[nameVote]tally)
		}
		k := nameVote{g, en.name}
		t := a.names[k]
		t.add(joined)
		a.names[k] = t
	}
	switch {
	case gr.sizeVote.votes == 0:
		gr.size = en.size
		gr.sizeVote.add(joined)
	case en.size == gr.size:
		gr.sizeVote.add(joined)
	default:
		if a.sizes == nil {
			a.sizes = make(map[sizeVote]tally)
		}
		k := sizeVote{g, en.size}
		t := a.sizes[k]
		t.add(joined)
		a.sizes[k] = t
	}
}

// better reports whether group p ranks before group q.
func (a *aggregate) better(p, q *group) bool {
	if p.owners != q.owners {
		return p.owners > q.owners
	}
	if p.name != q.name {
		return p.name < q.name
	}
	pid, qid := &a.x.contents.at(p.content).id, &a.x.contents.at(q.content).id
	return bytes.Compare(pid[:], qid[:]) < 0
}

// hits picks the name and size of each group by vote, selects the best limit
// groups and returns them as hits with their owners.
func (a *aggregate) hits(limit int) []Hit {
	if len(a.groups) == 0 {
		return nil
	}
	// The votes of owners with several entries of one content ID first:
	// every group has at least one vote once they are cast.
	for k, e := range a.owners {
		a.vote(k.g, a.x.entries.at(e))
	}
	// Tallies with votes never tie (owners' numbers are distinct); the
	// name and size orders only keep the choice total.
	for k, t := range a.names {
		g := &a.groups[k.g]
		if t.beats(g.nameVote) || !g.nameVote.beats(t) && k.name < g.name {
			g.name, g.nameVote = k.name, t
		}
	}
	for k, t := range a.sizes {
		g := &a.groups[k.g]
		if t.beats(g.sizeVote) || !g.sizeVote.beats(t) && k.size < g.size {
			g.size, g.sizeVote = k.size, t
		}
	}

	// A heap of the best limit groups with the worst at its root: most
	// groups of a common word lose against the root at once, so the cost
	// is about one comparison per group rather than a sort of them all.
	worse := func(i, j int32) bool { return a.better(&a.groups[j], &a.groups[i]) }
	top := make([]int32, 0, min(limit, len(a.groups)))
	for g := range int32(len(a.groups)) {
		switch {
		case len(top) < cap(top):
			top = append(top, g)
			siftUp(top, len(top)-1, worse)
		case worse(top[0], g):
			top[0] = g
			siftDown(top, 0, worse)
		}
	}
	slices.SortFunc(top, func(i, j int32) int {
		if a.better(&a.groups[i], &a.groups[j]) {
			return -1
		}
		return 1
	})

	out := make([]Hit, len(top))
	for i, g := range top {
		gr := &a.groups[g]
		gr.hit = i + 1
		out[i] = Hit{ID: a.x.contents.at(gr.content).id, Name: gr.name, Size: gr.size, OwnerCount: gr.owners}
	}
	for _, e := range a.matches {
		en := a.x.entries.at(e)
		i := a.groups[a.groupOf[en.content]].hit - 1
		if i < 0 || len(out[i].Owners) == MaxHitOwners {
			continue
		}
		who := a.x.owners[en.owner].id
		switch k := slices.Index(out[i].Owners, who); {
		case k < 0:
			out[i].Owners = append(out[i].Owners, who)
			out[i].Names = append(out[i].Names, en.name)
		case en.name < out[i].Names[k]:
			// An owner sharing the content under several matching
			// names is listed with the one that sorts first, as it
			// votes, whatever the order of visits.
			out[i].Names[k] = en.name
		}
	}
	return out
}

// siftUp and siftDown maintain h as a binary heap whose root is the element
// that less puts first.
func siftUp(h []int32, i int, less func(a, b int32) bool) {
	for i > 0 {
		p := (i - 1) / 2
		if !less(h[i], h[p]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func siftDown(h []int32, i int, less func(a, b int32) bool) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && less(h[r], h[l]) {
			m = r
		}
		if !less(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
