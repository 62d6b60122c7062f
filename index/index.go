package index

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/google/btree"

	"github.com/canopy-p2p/canopy/identity"
)

// ContentID names a file by its content: the Merkle root the content package
// computes. It is an alias of the plain array so that a content.ID converts to
// it directly, without this package depending on content.
type ContentID = [32]byte

// File is one shared file as a leaf describes it in its index upload. The
// same content may be shared under several names, so an owner's entries are
// keyed by ID and Name together.
type File struct {
	// ID is the file's content ID.
	ID ContentID
	// Name is the file's name as the leaf shares it: valid UTF-8, not empty,
	// at most Limits.MaxNameBytes bytes.
	Name string
	// Size is the file's length in bytes; it must not be negative.
	Size int64
}

// Stats counts what an index holds.
// Stats counts what an index holds.
type Stats struct {
	// Owners is the number of owners with at least one file.
	Owners int
	// Files is the number of entries: one per owner, content ID and name.
	Files int
	// Tokens is the number of distinct words over all names.
	Tokens int
}

// none marks the end of an entry chain and a free entry's owner.
const none = ^uint32(0)

// stepWork bounds the work one change does while it holds the write lock:
// about 256 word insertions or removals, around a hundred microseconds,
// after which it lets waiting searches in. Removing an owner of 50,000
// files of long names was 15 seconds of one lock hold, and a search waited
// for all of it; in steps, a search waits for one step at most. Steps of
// 1,024 words (a few hundred microseconds) doubled an honest search's p99
// lock wait while another leaf's index updates flowed at its full rate
// (BenchmarkFloodIsolation/index: 0.7-0.9 ms against 0.3 ms with 256).
const stepWork = 256

// inPlaceMax is the largest owner Replace edits in place, keeping the
// entries present before and after; a larger owner is swapped for a new one
// and the old entries reclaimed in steps, so that the cost under one lock
// hold stays bounded by about stepWork words of 256 entries.
const inPlaceMax = 256

// entry is one file of one owner. Entries live in Index.entries and are
// referred to by their slot, so that postings hold 4-byte references
// rather than pointers the garbage collector must trace.
type entry struct {
	name string
	size int64
	// content is the slot of the content ID in Index.contents, and owner the
	// owner's slot in Index.owners (none for a free entry): 4 bytes each
	// where the IDs are 32, which keeps entries small and searches in cache.
	content uint32
	owner   uint32
	// next links the owner's entries of the same content ID (one content
	// shared under several names), ending with none.
	next uint32
	// shared is set when the owner has other entries of the same content
	// ID, so that a search counts the owner once without a look-up for the
	// common case of one name per content.
	shared bool
	// terms are the entry's words with the entry's position in each word's
	// posting, so that removal takes constant time per word.
	terms []termRef
}

// termRef is one word of an entry and where the entry sits in its posting.
type termRef struct {
	term uint32
	pos  uint32
}

// term is one distinct word. Its text is stored once, shared by the map key
// and the ordered set used for prefix matches.
type term struct {
	text string
	// post lists the entries whose names hold the word, in no order; removal
	// moves the last element into the gap.
	post []uint32
	// owner is the owner the word's cost is charged to: one that holds an
	// entry with the word. When that owner's last such entry goes, the
	// charge moves to the owner of another entry that holds it.
	owner uint32
}

// termKey is a word in the ordered set that prefix matching walks.
type termKey struct {
	text string
	id   uint32
}

func lessTermKey(a, b termKey) bool { return a.text < b.text }

// content is one distinct content ID and how many entries refer to it.
type content struct {
	id ContentID
	// name is the name of the content's first entry. Owners of a popular
	// file mostly share it under one name, and an entry with this name
	// stores this copy, so that the name is held once; the owners of
	// different contents seldom share names, so a map interning every name
	// would cost more (a map cell and a record per name) than it saves.
	name string
	refs int
}

// owner is one leaf's share of the index.
type owner struct {
	id identity.NodeID
	// files maps a content slot to the first of the owner's entries with
	// it; nil once the owner is being reclaimed.
	files     map[uint32]uint32
	filesPeak int
	// n is the number of the owner's entries.
	n int
	// entryBytes and wordBytes are what the owner is charged for its
	// entries and for the words charged to it.
	entryBytes, wordBytes int64
	// reservedFiles and reservedBytes are held by changes under way, which
	// checked the limits before applying themselves in steps.
	reservedFiles int
	reservedBytes int64
}

func (o *owner) bytes() int64 { return o.entryBytes + o.wordBytes + o.reservedBytes }

// fileKey identifies an owner's entry.
type fileKey struct {
	id   ContentID
	name string
}

// Index is the inverted keyword index of a supernode. Its methods are safe for
// concurrent use. Searches take a read lock and run in parallel; changes take
// the write lock only after the names are validated and tokenized, because
// searches are far more frequent than index uploads and must not wait for
// the tokenizer, and large changes release it every stepWork words.
//
// An owner that leaves or is replaced is first detached (searches no longer
// see it, in one short step) and then reclaimed in steps, by the call that
// removed it: the cost falls on the leaf that caused it, and every map and
// table that has emptied to a quarter of its peak is rebuilt so that the
// memory goes back to the runtime.
type Index struct {
	lim Limits

	// scratch holds *scratch values reused by searches, so that a search
	// allocates little however many entries it examines.
	scratch sync.Pool

	count Counters

	// stepHook, when set (by tests), is called between two steps of a
	// change, with mu not held.
	stepHook func()

	// mu guards every field below it.
	mu sync.RWMutex

	entries store[entry]
	files   int

	terms    store[term]
	termIDs  map[string]uint32
	termPeak int
	sorted   *btree.BTreeG[termKey]

	contents     store[content]
	contentSlots map[ContentID]uint32
	contentPeak  int

	owners []*owner // by slot; nil for a free slot
	// dying marks, by slot, the owners detached and being reclaimed:
	// searches skip their entries.
	dying []bool
	// joined holds, by slot, the owner's place in the order in which owners
	// joined the index (see ownerSeq). The name and size votes of a search
	// break ties by it, older first, so it sits next to dying, which every
	// search reads too, rather than behind the owner's pointer.
	joined     []uint64
	freeOwners []uint32
	// ownerSeq counts the owners that have joined the index: an owner takes
	// the next number when it is added, keeps it while it has files (a
	// Replace that swaps it for a new slot carries it over) and takes a new
	// one if it is dropped and comes back. A uint64 does not wrap.
	ownerSeq uint64
	byOwner  map[identity.NodeID]uint32

	// bytes is what the index accounts for its entries and words (see
	// Bytes); reservedFiles and reservedBytes are held by changes under
	// way.
	bytes         int64
	reservedFiles int
	reservedBytes int64
}

// New returns an empty index bounded by l; see Limits for its zero fields.
func New(l Limits) *Index {
	return &Index{
		lim:          l.withDefaults(),
		termIDs:      make(map[string]uint32),
		contentSlots: make(map[ContentID]uint32),
		sorted:       btree.NewG(32, lessTermKey),
		byOwner:      make(map[identity.NodeID]uint32),
	}
}

// prepared is a validated file with its words.
type prepared struct {
	File
	words []string
}

// prepare validates and tokenizes files outside the lock. A file repeated in
// files (same ID and name) keeps its first position and its last size, as if
// the copies had been added one after the other. It also returns the
// distinct words of the batch.
func (x *Index) prepare(who identity.NodeID, files []File) ([]prepared, []string, error) {
	out := make([]prepared, 0, len(files))
	var seen map[fileKey]int
	if len(files) > 1 {
		seen = make(map[fileKey]int, len(files))
	}
	for i, f := range files {
		var err error
		switch {
		case f.Name == "":
			err = fmt.Errorf("%w: owner %s, file %d: empty name", ErrBadFile, who.Short(), i)
		case len(f.Name) > x.lim.MaxNameBytes:
			err = fmt.Errorf("%w: owner %s, file %d: name of %d bytes, limit %d",
				ErrBadFile, who.Short(), i, len(f.Name), x.lim.MaxNameBytes)
		case !utf8.ValidString(f.Name):
			// Names go back to searchers in hits; a name that is not text is
			// refused here rather than passed on.
			err = fmt.Errorf("%w: owner %s, file %d: name is not valid UTF-8", ErrBadFile, who.Short(), i)
		case f.Size < 0:
			err = fmt.Errorf("%w: owner %s, file %d %q: negative size %d", ErrBadFile, who.Short(), i, f.Name, f.Size)
		}
		if err != nil {
			x.count.BadFiles.Add(1)
			return nil, nil, err
		}
		if seen != nil {
			k := fileKey{f.ID, f.Name}
			if j, ok := seen[k]; ok {
				out[j].Size = f.Size
				continue
			}
			seen[k] = len(out)
		}
		out = append(out, prepared{File: f, words: Tokenize(f.Name)})
	}
	distinct := make(map[string]struct{})
	var words []string
	for _, p := range out {
		for _, w := range p.words {
			if _, dup := distinct[w]; !dup {
				distinct[w] = struct{}{}
				words = append(words, w)
			}
		}
	}
	return out, words, nil
}

// newWordsCost is what the words of a change that the index does not hold,
// or that are charged to the owner in slot old (none: no such owner), will
// cost the owner making it.
func (x *Index) newWordsCost(words []string, old uint32) int64 {
	var c int64
	for _, w := range words {
		if t, ok := x.termIDs[w]; !ok || old != none && x.terms.at(t).owner == old {
			c += wordCost(w)
		}
	}
	return c
}

// check reports whether a change fits the limits: the owner ending with
// files entries and ownerBytes accounted, the index with its files and
// bytes grown by dFiles and dBytes.
func (x *Index) check(who identity.NodeID, files int, ownerBytes int64, dFiles int, dBytes int64) error {
	switch {
	case files > x.lim.MaxFilesPerOwner:
		x.count.OwnerFull.Add(1)
		return fmt.Errorf("owner %s: %d files, limit %d: %w", who.Short(), files, x.lim.MaxFilesPerOwner, ErrOwnerFull)
	case ownerBytes > x.lim.MaxBytesPerOwner:
		x.count.OwnerFull.Add(1)
		x.count.OwnerBytes.Add(1)
		return fmt.Errorf("owner %s: %d bytes, limit %d: %w", who.Short(), ownerBytes, x.lim.MaxBytesPerOwner, ErrOwnerFull)
	case x.files+x.reservedFiles+dFiles > x.lim.MaxFiles:
		x.count.IndexFull.Add(1)
		return fmt.Errorf("owner %s: %+d files, index holds %d, limit %d: %w",
			who.Short(), dFiles, x.files+x.reservedFiles, x.lim.MaxFiles, ErrIndexFull)
	case x.bytes+x.reservedBytes+dBytes > x.lim.MaxBytes:
		x.count.IndexFull.Add(1)
		x.count.IndexBytes.Add(1)
		return fmt.Errorf("owner %s: %+d bytes, index holds %d, limit %d: %w",
			who.Short(), dBytes, x.bytes+x.reservedBytes, x.lim.MaxBytes, ErrIndexFull)
	}
	return nil
}

func (x *Index) tooManyOwners(who identity.NodeID) error {
	x.count.TooManyOwners.Add(1)
	return fmt.Errorf("owner %s: %d owners: %w", who.Short(), len(x.byOwner), ErrTooManyOwners)
}

// Add adds files to owner's entries; a file whose ID and name the owner
// already shares has its size replaced. The call is all-or-nothing: if one
// file is bad (ErrBadFile), or the files that are new would take the owner
// past Limits.MaxFilesPerOwner or Limits.MaxBytesPerOwner (ErrOwnerFull) or
// the index past Limits.MaxFiles or Limits.MaxBytes (ErrIndexFull), or owner
// is new and the index has Limits.MaxOwners owners (ErrTooManyOwners),
// nothing is added. Adding what fits instead would leave the leaf and the
// supernode disagreeing about which files are searchable, with no way for
// the leaf to tell. A large batch is applied in steps: searches made while
// Add runs may see part of it.
func (x *Index) Add(who identity.NodeID, files ...File) error {
	if len(files) == 0 {
		return nil
	}
	batch, words, err := x.prepare(who, files)
	if err != nil {
		return err
	}

	x.mu.Lock()
	defer x.mu.Unlock()
	slot, known := x.byOwner[who]
	var o *owner
	fresh := batch
	if known {
		o = x.owners[slot]
		fresh = nil
		for _, p := range batch {
			if x.find(o, p.ID, p.Name) == none {
				fresh = append(fresh, p)
			}
		}
	} else if len(x.byOwner) >= x.lim.MaxOwners {
		return x.tooManyOwners(who)
	}
	cost := x.newWordsCost(words, none)
	for _, p := range fresh {
		cost += entryCost(p.Name, len(p.words))
	}
	have, haveBytes := 0, int64(0)
	if known {
		have, haveBytes = o.n+o.reservedFiles, o.bytes()
	}
	if err := x.check(who, have+len(fresh), haveBytes+cost, len(fresh), cost); err != nil {
		return err
	}
	if !known {
		slot = x.addOwner(who, 0)
		o = x.owners[slot]
	}
	x.reserve(o, len(fresh), cost)
	x.apply(slot, o, batch)
	x.reserve(o, -len(fresh), -cost)
	return nil
}

// reserve holds (or with negative figures gives back) room for a change.
func (x *Index) reserve(o *owner, files int, bytes int64) {
	o.reservedFiles += files
	o.reservedBytes += bytes
	x.reservedFiles += files
	x.reservedBytes += bytes
}

// Replace makes files the whole of owner's entries, as after a full index
// upload; an empty files drops the owner. It is all-or-nothing like Add: on
// error the owner's entries are as they were. For a small owner, entries
// present before and after keep their place, so an upload that changes a
// few files costs little; a large owner's old entries are detached at once
// and reclaimed in steps, and searches made meanwhile see the new files as
// they are added.
func (x *Index) Replace(who identity.NodeID, files []File) error {
	batch, words, err := x.prepare(who, files)
	if err != nil {
		return err
	}

	x.mu.Lock()
	defer x.mu.Unlock()
	slot, known := x.byOwner[who]
	if len(batch) == 0 {
		if known {
			x.reclaim(slot, x.detach(slot))
		}
		return nil
	}
	if !known && len(x.byOwner) >= x.lim.MaxOwners {
		return x.tooManyOwners(who)
	}
	if known && x.owners[slot].n <= inPlaceMax {
		return x.replaceInPlace(who, slot, batch, words)
	}

	// The words charged to the old entries' owner are charged to the new
	// one, at worst, once the old entries have gone.
	oldSlot := none
	if known {
		oldSlot = slot
	}
	cost := x.newWordsCost(words, oldSlot)
	for _, p := range batch {
		cost += entryCost(p.Name, len(p.words))
	}
	have, freed := 0, int64(0)
	if known {
		// The old entries go; the words charged to the owner may stay,
		// charged to another.
		o := x.owners[slot]
		have, freed = o.n, o.entryBytes
	}
	if err := x.check(who, len(batch), cost, len(batch)-have, cost-freed); err != nil {
		return err
	}
	var old *owner
	var joined uint64 // zero: a new owner, with a new number
	if known {
		// The owner stays in the index, under a new slot: it keeps its
		// age, or a large upload would make a leaf as young as a sybil
		// that just attached.
		joined = x.joined[slot]
		old = x.detach(slot)
	}
	slot = x.addOwner(who, joined)
	o := x.owners[slot]
	x.reserve(o, len(batch), cost)
	if known {
		x.reclaim(oldSlot, old)
	}
	x.apply(slot, o, batch)
	x.reserve(o, -len(batch), -cost)
	return nil
}

// replaceInPlace is Replace for a small known owner: the entries not in
// batch are removed at once (at most inPlaceMax of them), the others kept.
func (x *Index) replaceInPlace(who identity.NodeID, slot uint32, batch []prepared, words []string) error {
	o := x.owners[slot]
	keep := make(map[fileKey]struct{}, len(batch))
	for _, p := range batch {
		keep[fileKey{p.ID, p.Name}] = struct{}{}
	}
	var drop []uint32
	var dropped int64
	for _, head := range o.files {
		for e := head; e != none; e = x.entries.at(e).next {
			en := x.entries.at(e)
			if _, ok := keep[fileKey{x.contents.at(en.content).id, en.name}]; !ok {
				drop = append(drop, e)
				dropped += entryCost(en.name, len(en.terms))
			}
		}
	}
	cost := x.newWordsCost(words, none)
	fresh := 0
	for _, p := range batch {
		if x.find(o, p.ID, p.Name) == none {
			cost += entryCost(p.Name, len(p.words))
			fresh++
		}
	}
	after := o.n + o.reservedFiles - len(drop) + fresh
	if err := x.check(who, after, o.bytes()-dropped+cost, fresh-len(drop), cost-dropped); err != nil {
		return err
	}
	for _, e := range drop {
		x.removeEntry(e)
	}
	x.reserve(o, fresh, cost)
	x.apply(slot, o, batch)
	x.reserve(o, -fresh, -cost)
	x.shrink()
	return nil
}

// Remove removes owner's entry for the content id shared under name, or all
// of owner's entries for id when name is empty. Removing what is not there
// does nothing.
func (x *Index) Remove(who identity.NodeID, id ContentID, name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	slot, ok := x.byOwner[who]
	if !ok {
		return
	}
	o := x.owners[slot]
	c, ok := x.contentSlots[id]
	if !ok {
		return
	}
	head, ok := o.files[c]
	if !ok {
		return
	}
	work := 0
	for e := head; e != none; {
		en := x.entries.at(e)
		next := en.next
		if name == "" || en.name == name {
			if work >= stepWork {
				// Many names of one content: let searches in, then walk
				// the chain again from its head, which another call for
				// this owner may have changed meanwhile.
				if !x.pause(slot, o) {
					return
				}
				work = 0
				if next, ok = o.files[c]; !ok {
					break
				}
				e = next
				continue
			}
			work += 1 + len(en.terms)
			x.removeEntry(e)
		}
		e = next
	}
	if o.n == 0 && o.reservedFiles == 0 {
		delete(x.byOwner, o.id)
		x.freeOwner(slot)
	} else if o.filesPeak >= shrinkMin && len(o.files) < o.filesPeak/4 {
		o.files = rebuilt(o.files)
		o.filesPeak = len(o.files)
		x.count.Rebuilt.Add(1)
	}
	x.shrink()
}

// DropOwner removes all of owner's entries, as when the leaf disconnects,
// and returns how many there were. Searches stop seeing them at once; the
// memory is reclaimed in steps before DropOwner returns.
func (x *Index) DropOwner(who identity.NodeID) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	slot, ok := x.byOwner[who]
	if !ok {
		return 0
	}
	o := x.detach(slot)
	n := o.n
	x.reclaim(slot, o)
	return n
}

// OwnerFiles returns the number of owner's entries.
func (x *Index) OwnerFiles(who identity.NodeID) int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if slot, ok := x.byOwner[who]; ok {
		return x.owners[slot].n
	}
	return 0
}

// OwnerBytes returns what owner's entries and the words charged to it are
// accounted (see Bytes).
func (x *Index) OwnerBytes(who identity.NodeID) int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if slot, ok := x.byOwner[who]; ok {
		o := x.owners[slot]
		return o.entryBytes + o.wordBytes
	}
	return 0
}

// Bytes returns the memory the index accounts for what it holds: for every
// entry a fixed cost, its name's length and a cost per word, and for every
// distinct word a fixed cost and its length. These are upper bounds of the
// heap measured for ordinary and for hostile names, and they are what
// Limits.MaxBytes and Limits.MaxBytesPerOwner bound.
func (x *Index) Bytes() int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.bytes
}

// Stats returns what the index holds.
func (x *Index) Stats() Stats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return Stats{Owners: len(x.byOwner), Files: x.files, Tokens: len(x.termIDs)}
}

// Counters returns the index's counters of refusals and steps.
func (x *Index) Counters() *Counters { return &x.count }

// The methods below expect x.mu to be held for writing.

// pause lets waiting searches in between two steps of a change to the
// owner in slot. It reports whether the owner is still o and not detached:
// a change that finds it gone stops, as if it had been made before the
// removal.
func (x *Index) pause(slot uint32, o *owner) bool {
	x.yield()
	return x.owners[slot] == o && !x.dying[slot]
}

// yield ends one step of a change: it gives memory back (shrink) and lets
// waiting searches in before the next step takes the lock again.
func (x *Index) yield() {
	x.count.Steps.Add(1)
	x.shrink()
	x.mu.Unlock()
	if x.stepHook != nil {
		x.stepHook()
	}
	x.mu.Lock()
}

// find returns o's entry for (id, name), or none.
func (x *Index) find(o *owner, id ContentID, name string) uint32 {
	c, ok := x.contentSlots[id]
	if !ok {
		return none
	}
	head, ok := o.files[c]
	if !ok {
		return none
	}
	for e := head; e != none; e = x.entries.at(e).next {
		if x.entries.at(e).name == name {
			return e
		}
	}
	return none
}

// apply adds the files of batch to the owner in slot, or updates the size
// of those it has, in steps of stepWork words. The caller has checked the
// limits.
func (x *Index) apply(slot uint32, o *owner, batch []prepared) {
	if x.owners[slot] != o || x.dying[slot] {
		// Removed while the caller let searches in (Replace reclaiming
		// the old entries first).
		return
	}
	work := 0
	for i := range batch {
		p := &batch[i]
		if work >= stepWork {
			if !x.pause(slot, o) {
				return
			}
			work = 0
		}
		work++
		if e := x.find(o, p.ID, p.Name); e != none {
			x.entries.at(e).size = p.Size
			continue
		}
		work += len(p.words)
		x.insertEntry(slot, o, p)
	}
}

func (x *Index) insertEntry(slot uint32, o *owner, p *prepared) {
	e := x.entries.alloc()
	c := x.contentSlot(p.ID, p.Name)
	refs := make([]termRef, 0, len(p.words))
	for _, w := range p.words {
		t := x.termID(w, slot)
		tm := x.terms.at(t)
		refs = append(refs, termRef{term: t, pos: uint32(len(tm.post))})
		tm.post = append(tm.post, e)
	}
	en := x.entries.at(e)
	name := p.Name
	if cn := x.contents.at(c).name; cn == name {
		name = cn
	}
	en.content, en.name, en.size, en.owner = c, name, p.Size, slot
	en.next, en.shared, en.terms = none, false, refs
	if head, ok := o.files[c]; ok {
		// A chain of two or more has all its entries marked; the head
		// may have been alone until now.
		en.next, en.shared = head, true
		x.entries.at(head).shared = true
	}
	o.files[c] = e
	o.filesPeak = max(o.filesPeak, len(o.files))
	o.n++
	x.files++
	cost := entryCost(p.Name, len(p.words))
	o.entryBytes += cost
	x.bytes += cost
}

// contentSlot returns the slot of content ID id with one more reference,
// creating it, named name, if it is new.
func (x *Index) contentSlot(id ContentID, name string) uint32 {
	c, ok := x.contentSlots[id]
	if !ok {
		c = x.contents.alloc()
		*x.contents.at(c) = content{id: id, name: name}
		x.contentSlots[id] = c
		x.contentPeak = max(x.contentPeak, len(x.contentSlots))
	}
	x.contents.at(c).refs++
	return c
}

// termID returns the ID of word w, creating the word, charged to the owner
// in slot, if it is new.
func (x *Index) termID(w string, slot uint32) uint32 {
	if t, ok := x.termIDs[w]; ok {
		return t
	}
	// w is a substring of a folded name; a copy keeps the word from pinning
	// that name's memory for as long as the word lives.
	w = strings.Clone(w)
	t := x.terms.alloc()
	*x.terms.at(t) = term{text: w, owner: slot}
	x.termIDs[w] = t
	x.termPeak = max(x.termPeak, len(x.termIDs))
	x.sorted.ReplaceOrInsert(termKey{text: w, id: t})
	c := wordCost(w)
	x.owners[slot].wordBytes += c
	x.bytes += c
	return t
}

// removeEntry unlinks entry e from its postings and its owner and frees it.
// The owner stays even with no entries left; callers free it. An owner
// being reclaimed has no files map: its chains are walked by reclaim.
func (x *Index) removeEntry(e uint32) {
	en := x.entries.at(e)
	for _, r := range en.terms {
		tm := x.terms.at(r.term)
		last := uint32(len(tm.post) - 1)
		if moved := tm.post[last]; r.pos != last {
			tm.post[r.pos] = moved
			mt := x.entries.at(moved).terms
			for i := range mt {
				if mt[i].term == r.term {
					mt[i].pos = r.pos
					break
				}
			}
		}
		tm.post = tm.post[:last]
		switch {
		case last == 0:
			c := wordCost(tm.text)
			x.owners[tm.owner].wordBytes -= c
			x.bytes -= c
			x.dropTerm(r.term)
			continue
		case cap(tm.post) > 64 && len(tm.post) < cap(tm.post)/4:
			// Give back the memory of a posting that shrank a lot, as
			// when a leaf with a large library disconnects.
			tm.post = append([]uint32(nil), tm.post...)
		}
		if tm.owner == en.owner {
			// The charge moves to an owner that still holds the word
			// (perhaps this one, through another of its entries).
			if to := x.entries.at(tm.post[0]).owner; to != tm.owner {
				c := wordCost(tm.text)
				x.owners[tm.owner].wordBytes -= c
				x.owners[to].wordBytes += c
				tm.owner = to
			}
		}
	}

	o := x.owners[en.owner]
	if o.files != nil {
		head := o.files[en.content]
		if head == e {
			head = en.next
			if head == none {
				delete(o.files, en.content)
			} else {
				o.files[en.content] = head
			}
		} else {
			for p := head; p != none; p = x.entries.at(p).next {
				if pe := x.entries.at(p); pe.next == e {
					pe.next = en.next
					break
				}
			}
		}
		if head != none && x.entries.at(head).next == none {
			x.entries.at(head).shared = false
		}
	}
	o.n--
	x.files--
	cost := entryCost(en.name, len(en.terms))
	o.entryBytes -= cost
	x.bytes -= cost

	c := x.contents.at(en.content)
	c.refs--
	if c.refs == 0 {
		delete(x.contentSlots, c.id)
		x.contents.release(en.content)
	}
	x.entries.release(e)
}

func (x *Index) dropTerm(t uint32) {
	w := x.terms.at(t).text
	delete(x.termIDs, w)
	x.sorted.Delete(termKey{text: w})
	x.terms.release(t)
}

// addOwner adds an owner with no files and returns its slot. joined is its
// number in the order of joining (see ownerSeq); zero gives it the next one.
func (x *Index) addOwner(who identity.NodeID, joined uint64) uint32 {
	if joined == 0 {
		x.ownerSeq++
		joined = x.ownerSeq
	}
	o := &owner{id: who, files: make(map[uint32]uint32)}
	var slot uint32
	if n := len(x.freeOwners); n > 0 {
		slot = x.freeOwners[n-1]
		x.freeOwners = x.freeOwners[:n-1]
		x.owners[slot], x.dying[slot], x.joined[slot] = o, false, joined
	} else {
		slot = uint32(len(x.owners))
		x.owners = append(x.owners, o)
		x.dying = append(x.dying, false)
		x.joined = append(x.joined, joined)
	}
	x.byOwner[who] = slot
	return slot
}

// detach hides the owner in slot from searches and from every call naming
// it, so that a new owner with its ID may be added at once, and returns it
// for reclaim.
func (x *Index) detach(slot uint32) *owner {
	o := x.owners[slot]
	x.dying[slot] = true
	delete(x.byOwner, o.id)
	return o
}

// reclaim removes the entries of the detached owner o in slot in steps of
// stepWork words, letting searches in between, and frees the slot.
func (x *Index) reclaim(slot uint32, o *owner) {
	files := o.files
	o.files = nil
	// Once detached, the owner's map is reached by nothing else, so it is
	// read here without the lock; its entries are removed under it.
	x.mu.Unlock()
	heads := make([]uint32, 0, 256)
	flush := func() {
		x.mu.Lock()
		work := 0
		for _, e := range heads {
			for e != none {
				if work >= stepWork {
					x.yield()
					work = 0
				}
				en := x.entries.at(e)
				next := en.next
				work += 1 + len(en.terms)
				x.removeEntry(e)
				e = next
			}
		}
		x.mu.Unlock()
		heads = heads[:0]
	}
	for _, head := range files {
		heads = append(heads, head)
		if len(heads) == cap(heads) {
			flush()
			x.count.Steps.Add(1)
			if x.stepHook != nil {
				x.stepHook()
			}
		}
	}
	flush()
	x.mu.Lock()
	x.freeOwner(slot)
	x.shrink()
}

func (x *Index) freeOwner(slot uint32) {
	x.owners[slot], x.dying[slot] = nil, false
	x.freeOwners = append(x.freeOwners, slot)
}

// shrinkMin is the smallest peak of a map that is rebuilt when it empties:
// below it the map's memory is not worth a rebuild.
const shrinkMin = 1024

// rebuilt returns a copy of m sized for what it holds: Go maps never give
// back the memory of deleted cells.
func rebuilt[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// shrink rebuilds the maps that have emptied to a quarter of their peak.
// The rebuild costs one pass over what is left, a third of what was
// removed since the peak, so it adds a constant share to removals.
func (x *Index) shrink() {
	if x.termPeak >= shrinkMin && len(x.termIDs) < x.termPeak/4 {
		x.termIDs, x.termPeak = rebuilt(x.termIDs), len(x.termIDs)
		x.count.Rebuilt.Add(1)
	}
	if x.contentPeak >= shrinkMin && len(x.contentSlots) < x.contentPeak/4 {
		x.contentSlots, x.contentPeak = rebuilt(x.contentSlots), len(x.contentSlots)
		x.count.Rebuilt.Add(1)
	}
	if n := len(x.owners); n > 64 && len(x.freeOwners) > 3*n/4 && x.owners[n-1] == nil {
		// Owner slots are few (one per leaf) but a churn of leaves leaves
		// free ones at the end, which can go.
		for n > 0 && x.owners[n-1] == nil {
			n--
		}
		keep := x.freeOwners[:0]
		for _, s := range x.freeOwners {
			if int(s) < n {
				keep = append(keep, s)
			}
		}
		x.owners = append([]*owner(nil), x.owners[:n]...)
		x.dying = append([]bool(nil), x.dying[:n]...)
		x.joined = append([]uint64(nil), x.joined[:n]...)
		x.freeOwners = append([]uint32(nil), keep...)
	}
}
