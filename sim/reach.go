package sim

// reachSet is the set of supernodes one query reached, with the hop count to
// each: a small open-addressing hash table, cleared per query by a generation
// number. A query reaches at most a few hundred supernodes, so the table
// stays in L1 cache, where an array indexed by node would miss it on every
// look-up in a million-node run.
type reachSet struct {
	gen   uint32
	mask  uint32
	slots []reachSlot
	n     int
}

type reachSlot struct {
	gen   uint32
	node  uint32
	depth uint8
}

// reset empties the set.
func (r *reachSet) reset() {
	r.gen++
	r.n = 0
	if r.gen == 0 || r.slots == nil { // first use, or the generation wrapped
		r.slots = make([]reachSlot, max(len(r.slots), 256))
		r.mask = uint32(len(r.slots) - 1)
		r.gen = 1
	}
}

func hashNode(n uint32) uint32 { return n * 0x9E3779B1 }

// add records node at depth unless it is there already; it reports whether
// it was new.
func (r *reachSet) add(node uint32, depth uint8) bool {
	if 2*(r.n+1) > len(r.slots) {
		r.grow()
	}
	for i := hashNode(node) & r.mask; ; i = (i + 1) & r.mask {
		s := &r.slots[i]
		if s.gen != r.gen {
			*s = reachSlot{gen: r.gen, node: node, depth: depth}
			r.n++
			return true
		}
		if s.node == node {
			return false
		}
	}
}

// depth returns the hops to node, or 0 when the query did not reach it.
func (r *reachSet) depth(node uint32) uint8 {
	for i := hashNode(node) & r.mask; ; i = (i + 1) & r.mask {
		s := &r.slots[i]
		if s.gen != r.gen {
			return 0
		}
		if s.node == node {
			return s.depth
		}
	}
}

func (r *reachSet) grow() {
	old := r.slots
	gen := r.gen
	r.slots = make([]reachSlot, 2*len(old))
	r.mask = uint32(len(r.slots) - 1)
	r.n = 0
	for _, s := range old {
		if s.gen == gen {
			r.add(s.node, s.depth)
		}
	}
}
