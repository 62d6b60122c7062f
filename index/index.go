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
	// DefaultMaxFiles is the most files the index holds in all. MaxOwners
	// times MaxFilesPerOwner would be 50 million entries, far more memory
	// than a home computer acting as supernode should give; this is the
	// real memory bound: about 2,000 files per leaf on average, a few
	// hundred megabytes (BenchmarkSearch reports the bytes per file).
	DefaultMaxFiles = 2_000_000
	// DefaultMaxNameBytes is the longest file name accepted, in bytes:
	// common file systems allow 255 bytes per path element (up to 1020 in
	// UTF-8), and leaves may send a relative path.
	DefaultMaxNameBytes = 1024
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
	return l
}

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

// entry is one file of one owner. Entries live in Index.entries and are
// referred to by their position, so that postings hold 4-byte references
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
}

// termKey is a word in the ordered set that prefix matching walks.
type termKey struct {
	text string
	id   uint32
}

func lessTermKey(a, b termKey) bool { return a.text < b.text }

// content is one distinct content ID and how many entries refer to it.
type content struct {
	id   ContentID
	refs int
}

// owner is one leaf's share of the index.
type owner struct {
	id identity.NodeID
	// files maps a content slot to the first of the owner's entries with it.
	files map[uint32]uint32
	// n is the number of the owner's entries.
	n int
}

// fileKey identifies an owner's entry.
type fileKey struct {
	id   ContentID
	name string
}

// Index is the inverted keyword index of a supernode. Its methods are safe for
// concurrent use. Searches take a read lock and run in parallel; changes take
// the write lock only after the names are validated and tokenized, because
// searches are far more frequent than index uploads and must not wait for
// the tokenizer.
type Index struct {
	lim Limits

	// scratch holds *scratch values reused by searches, so that a search
	// allocates little however many entries it examines.
	scratch sync.Pool

	// mu guards every field below it.
	mu sync.RWMutex

	entries     []entry
	freeEntries []uint32
	files       int

	terms     []term
	freeTerms []uint32
	termIDs   map[string]uint32
	sorted    *btree.BTreeG[termKey]

	contents     []content
	freeContents []uint32
	contentSlots map[ContentID]uint32

	// names interns entry names: the owners of a popular file mostly share
	// it under one name, which is then stored once, and a search comparing
	// the names of one content finds them equal by pointer.
	names map[string]*internedName

	owners     []*owner // by slot; nil for a free slot
	freeOwners []uint32
	byOwner    map[identity.NodeID]uint32
}

// New returns an empty index bounded by l; see Limits for its zero fields.
func New(l Limits) *Index {
	return &Index{
		lim:          l.withDefaults(),
		termIDs:      make(map[string]uint32),
		contentSlots: make(map[ContentID]uint32),
		names:        make(map[string]*internedName),
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
// the copies had been added one after the other.
func (x *Index) prepare(who identity.NodeID, files []File) ([]prepared, error) {
	out := make([]prepared, 0, len(files))
	var seen map[fileKey]int
	if len(files) > 1 {
		seen = make(map[fileKey]int, len(files))
	}
	for i, f := range files {
		switch {
		case f.Name == "":
			return nil, fmt.Errorf("%w: owner %s, file %d: empty name", ErrBadFile, who.Short(), i)
		case len(f.Name) > x.lim.MaxNameBytes:
			return nil, fmt.Errorf("%w: owner %s, file %d: name of %d bytes, limit %d",
				ErrBadFile, who.Short(), i, len(f.Name), x.lim.MaxNameBytes)
		case !utf8.ValidString(f.Name):
			// Names go back to searchers in hits; a name that is not text is
			// refused here rather than passed on.
			return nil, fmt.Errorf("%w: owner %s, file %d: name is not valid UTF-8", ErrBadFile, who.Short(), i)
		case f.Size < 0:
			return nil, fmt.Errorf("%w: owner %s, file %d %q: negative size %d", ErrBadFile, who.Short(), i, f.Name, f.Size)
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
	return out, nil
}

// Add adds files to owner's entries; a file whose ID and name the owner
// already shares has its size replaced. The call is all-or-nothing: if one
// file is bad (ErrBadFile) or the files that are new would take the owner past
// Limits.MaxFilesPerOwner (ErrOwnerFull) or the index past Limits.MaxFiles
// (ErrIndexFull), or owner is new and the index has Limits.MaxOwners owners
// (ErrTooManyOwners), nothing is added. Adding what fits instead would leave
// the leaf and the supernode disagreeing about which files are searchable,
// with no way for the leaf to tell.
func (x *Index) Add(who identity.NodeID, files ...File) error {
	if len(files) == 0 {
		return nil
	}
	batch, err := x.prepare(who, files)
	if err != nil {
		return err
	}

	x.mu.Lock()
	defer x.mu.Unlock()
	slot, known := x.byOwner[who]
	have, fresh := 0, len(batch)
	if known {
		o := x.owners[slot]
		have = o.n
		for _, p := range batch {
			if x.find(o, p.ID, p.Name) != none {
				fresh--
			}
		}
	} else if len(x.byOwner) >= x.lim.MaxOwners {
		return fmt.Errorf("owner %s: %d owners: %w", who.Short(), len(x.byOwner), ErrTooManyOwners)
	}
	if have+fresh > x.lim.MaxFilesPerOwner {
		return fmt.Errorf("owner %s: %d files and %d new, limit %d: %w",
			who.Short(), have, fresh, x.lim.MaxFilesPerOwner, ErrOwnerFull)
	}
	if x.files+fresh > x.lim.MaxFiles {
		return fmt.Errorf("owner %s: %d new files, index holds %d, limit %d: %w",
			who.Short(), fresh, x.files, x.lim.MaxFiles, ErrIndexFull)
	}
	if !known {
		slot = x.addOwner(who)
	}
	x.upsert(slot, batch)
	return nil
}

// Replace makes files the whole of owner's entries, as after a full index
// upload; an empty files drops the owner. It is all-or-nothing like Add: on
// error the owner's entries are as they were. Entries present before and
// after keep their place, so an upload that changes a few files costs little.
func (x *Index) Replace(who identity.NodeID, files []File) error {
	batch, err := x.prepare(who, files)
	if err != nil {
		return err
	}

	x.mu.Lock()
	defer x.mu.Unlock()
	slot, known := x.byOwner[who]
	if len(batch) == 0 {
		if known {
			x.dropOwner(slot)
		}
		return nil
	}
	have := 0
	if known {
		have = x.owners[slot].n
	} else if len(x.byOwner) >= x.lim.MaxOwners {
		return fmt.Errorf("owner %s: %d owners: %w", who.Short(), len(x.byOwner), ErrTooManyOwners)
	}
	if len(batch) > x.lim.MaxFilesPerOwner {
		return fmt.Errorf("owner %s: %d files, limit %d: %w", who.Short(), len(batch), x.lim.MaxFilesPerOwner, ErrOwnerFull)
	}
	if x.files-have+len(batch) > x.lim.MaxFiles {
		return fmt.Errorf("owner %s: %d files replacing %d, index holds %d, limit %d: %w",
			who.Short(), len(batch), have, x.files, x.lim.MaxFiles, ErrIndexFull)
	}
	if !known {
		slot = x.addOwner(who)
	} else {
		keep := make(map[fileKey]struct{}, len(batch))
		for _, p := range batch {
			keep[fileKey{p.ID, p.Name}] = struct{}{}
		}
		var drop []uint32
		for _, head := range x.owners[slot].files {
			for e := head; e != none; e = x.entries[e].next {
				en := &x.entries[e]
				if _, ok := keep[fileKey{x.contents[en.content].id, en.name}]; !ok {
					drop = append(drop, e)
				}
			}
		}
		for _, e := range drop {
			x.removeEntry(e)
		}
	}
	x.upsert(slot, batch)
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
	for e := head; e != none; {
		next := x.entries[e].next
		if name == "" || x.entries[e].name == name {
			x.removeEntry(e)
		}
		e = next
	}
	if o.n == 0 {
		x.freeOwner(slot)
	}
}

// DropOwner removes all of owner's entries, as when the leaf disconnects,
// and returns how many there were.
func (x *Index) DropOwner(who identity.NodeID) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	slot, ok := x.byOwner[who]
	if !ok {
		return 0
	}
	return x.dropOwner(slot)
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

// Stats returns what the index holds.
func (x *Index) Stats() Stats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return Stats{Owners: len(x.byOwner), Files: x.files, Tokens: len(x.termIDs)}
}

// The methods below expect x.mu to be held for writing.

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
	for e := head; e != none; e = x.entries[e].next {
		if x.entries[e].name == name {
			return e
		}
	}
	return none
}

// upsert adds the files of batch to the owner in slot, or updates the size
// of those it has. The caller has checked the limits.
func (x *Index) upsert(slot uint32, batch []prepared) {
	o := x.owners[slot]
	for _, p := range batch {
		if e := x.find(o, p.ID, p.Name); e != none {
			x.entries[e].size = p.Size
			continue
		}
		x.insertEntry(slot, o, &p)
	}
}

func (x *Index) insertEntry(slot uint32, o *owner, p *prepared) {
	var e uint32
	if n := len(x.freeEntries); n > 0 {
		e = x.freeEntries[n-1]
		x.freeEntries = x.freeEntries[:n-1]
	} else {
		e = uint32(len(x.entries))
		x.entries = append(x.entries, entry{})
	}
	c := x.contentSlot(p.ID)
	en := &x.entries[e]
	en.content, en.name, en.size, en.owner = c, x.intern(p.Name), p.Size, slot
	en.next, en.shared = none, false
	if head, ok := o.files[c]; ok {
		// A chain of two or more has all its entries marked; the head
		// may have been alone until now.
		en.next, en.shared = head, true
		x.entries[head].shared = true
	}
	o.files[c] = e
	// A freed entry keeps its terms slice so that reusing it allocates
	// nothing; termID does not touch x.entries, so en stays valid.
	refs := en.terms[:0]
	if cap(refs) < len(p.words) {
		refs = make([]termRef, 0, len(p.words))
	}
	for _, w := range p.words {
		t := x.termID(w)
		refs = append(refs, termRef{term: t, pos: uint32(len(x.terms[t].post))})
		x.terms[t].post = append(x.terms[t].post, e)
	}
	en.terms = refs
	o.n++
	x.files++
}

// internedName is one distinct entry name and how many entries use it.
type internedName struct {
	s    string
	refs int
}

// intern returns the stored copy of name, storing it if it is new.
func (x *Index) intern(name string) string {
	n, ok := x.names[name]
	if !ok {
		n = &internedName{s: name}
		x.names[name] = n
	}
	n.refs++
	return n.s
}

func (x *Index) unintern(name string) {
	if n := x.names[name]; n.refs > 1 {
		n.refs--
	} else {
		delete(x.names, name)
	}
}

// allocSlot stores v in a free slot of items (the most recently freed one,
// which is likelier to be in cache) or appends it, and returns the slot.
func allocSlot[T any](items *[]T, free *[]uint32, v T) uint32 {
	if n := len(*free); n > 0 {
		slot := (*free)[n-1]
		*free = (*free)[:n-1]
		(*items)[slot] = v
		return slot
	}
	*items = append(*items, v)
	return uint32(len(*items) - 1)
}

// contentSlot returns the slot of content ID id with one more reference,
// creating it if it is new.
func (x *Index) contentSlot(id ContentID) uint32 {
	c, ok := x.contentSlots[id]
	if !ok {
		c = allocSlot(&x.contents, &x.freeContents, content{id: id})
		x.contentSlots[id] = c
	}
	x.contents[c].refs++
	return c
}

// termID returns the ID of word w, creating the word if it is new.
func (x *Index) termID(w string) uint32 {
	if t, ok := x.termIDs[w]; ok {
		return t
	}
	// w is a substring of a folded name; a copy keeps the word from pinning
	// that name's memory for as long as the word lives.
	w = strings.Clone(w)
	t := allocSlot(&x.terms, &x.freeTerms, term{text: w})
	x.termIDs[w] = t
	x.sorted.ReplaceOrInsert(termKey{text: w, id: t})
	return t
}

// removeEntry unlinks entry e from its postings and its owner and frees it.
// The owner stays even with no entries left; callers free it.
func (x *Index) removeEntry(e uint32) {
	en := &x.entries[e]
	for _, r := range en.terms {
		tm := &x.terms[r.term]
		last := uint32(len(tm.post) - 1)
		if moved := tm.post[last]; r.pos != last {
			tm.post[r.pos] = moved
			for i := range x.entries[moved].terms {
				if x.entries[moved].terms[i].term == r.term {
					x.entries[moved].terms[i].pos = r.pos
					break
				}
			}
		}
		tm.post = tm.post[:last]
		switch {
		case last == 0:
			x.dropTerm(r.term)
		case cap(tm.post) > 64 && len(tm.post) < cap(tm.post)/4:
			// Give back the memory of a posting that shrank a lot, as
			// when a leaf with a large library disconnects.
			tm.post = append([]uint32(nil), tm.post...)
		}
	}

	o := x.owners[en.owner]
	head := o.files[en.content]
	if head == e {
		head = en.next
		if head == none {
			delete(o.files, en.content)
		} else {
			o.files[en.content] = head
		}
	} else {
		for p := head; p != none; p = x.entries[p].next {
			if x.entries[p].next == e {
				x.entries[p].next = en.next
				break
			}
		}
	}
	if head != none && x.entries[head].next == none {
		x.entries[head].shared = false
	}
	o.n--
	x.files--

	x.unintern(en.name)
	c := &x.contents[en.content]
	c.refs--
	if c.refs == 0 {
		delete(x.contentSlots, c.id)
		*c = content{}
		x.freeContents = append(x.freeContents, en.content)
	}

	*en = entry{terms: en.terms[:0], owner: none, next: none}
	x.freeEntries = append(x.freeEntries, e)
}

func (x *Index) dropTerm(t uint32) {
	w := x.terms[t].text
	delete(x.termIDs, w)
	x.sorted.Delete(termKey{text: w})
	x.terms[t] = term{}
	x.freeTerms = append(x.freeTerms, t)
}

func (x *Index) addOwner(who identity.NodeID) uint32 {
	slot := allocSlot(&x.owners, &x.freeOwners, &owner{id: who, files: make(map[uint32]uint32)})
	x.byOwner[who] = slot
	return slot
}

func (x *Index) dropOwner(slot uint32) int {
	o := x.owners[slot]
	n := o.n
	for _, head := range o.files {
		for e := head; e != none; {
			next := x.entries[e].next
			x.removeEntry(e)
			e = next
		}
	}
	x.freeOwner(slot)
	return n
}

func (x *Index) freeOwner(slot uint32) {
	delete(x.byOwner, x.owners[slot].id)
	x.owners[slot] = nil
	x.freeOwners = append(x.freeOwners, slot)
}
