package index

// Lookup returns the hit for one content ID, with the owners that share it
// under any name: a by-hash source look-up, for a downloader that knows the ID
// but not (or no longer) the sources. It costs one map probe per owner.
func (x *Index) Lookup(id ContentID) (Hit, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	c, ok := x.contentSlots[id]
	if !ok {
		return Hit{}, false
	}
	a := x.newAggregate()
	defer a.release()
	for slot, o := range x.owners {
		if o == nil || x.dying[slot] {
			continue
		}
		e, ok := o.files[c]
		for ok && e != none {
			a.add(e)
			e = x.entries.at(e).next
		}
	}
	hits := a.hits(1)
	if len(hits) == 0 {
		return Hit{}, false
	}
	return hits[0], true
}
