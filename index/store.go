package index

// chunkBits sets the size of a store's chunks: 1024 slots, 64 KiB of
// entries. Smaller chunks are given back sooner after a departure; larger
// ones cost fewer allocations while an index fills.
const (
	chunkBits = 10
	chunkSize = 1 << chunkBits
	chunkMask = chunkSize - 1
)

// store holds the items of one kind (entries, terms, contents) in fixed
// chunks addressed by a 4-byte slot, so that postings and chains hold small
// numbers rather than pointers the garbage collector must trace.
//
// A flat slice with a free list would never give memory back: once a large
// owner has left, its slots stay allocated for good. Here a chunk whose last
// item is freed is dropped, and allocation takes the lowest chunk with room,
// so that the live items gather in the low chunks and the chunks an owner
// filled alone are returned whole when it leaves.
type store[T any] struct {
	chunks [][]T // nil for a chunk given back
	// live counts the items in use in each chunk, top how many of its
	// slots were ever handed out (the rest have never been used), and
	// free the slots given back below top.
	live []int32
	top  []int32
	free [][]uint16
	// low is no higher than the lowest chunk that may have room.
	low int
	n   int
}

// at returns the item in slot i, which must be allocated.
func (s *store[T]) at(i uint32) *T { return &s.chunks[i>>chunkBits][i&chunkMask] }

// len returns the number of items in use.
func (s *store[T]) len() int { return s.n }

// slots returns one more than the highest slot that may be in use: the
// bound of a table indexed by slot.
func (s *store[T]) slots() int { return len(s.chunks) * chunkSize }

// alloc returns a free slot, holding the zero T.
func (s *store[T]) alloc() uint32 {
	for c := s.low; ; c++ {
		if c == len(s.chunks) {
			s.chunks = append(s.chunks, nil)
			s.live = append(s.live, 0)
			s.top = append(s.top, 0)
			s.free = append(s.free, nil)
		}
		var off int
		switch {
		case len(s.free[c]) > 0:
			n := len(s.free[c]) - 1
			off = int(s.free[c][n])
			s.free[c] = s.free[c][:n]
		case s.top[c] < chunkSize:
			if s.chunks[c] == nil {
				s.chunks[c] = make([]T, chunkSize)
			}
			off = int(s.top[c])
			s.top[c]++
		default:
			continue
		}
		s.low = c
		s.live[c]++
		s.n++
		return uint32(c<<chunkBits | off)
	}
}

// release frees slot i: its item is reset to the zero T, so that it holds
// on to nothing, and a chunk left empty is given back.
func (s *store[T]) release(i uint32) {
	c, off := int(i>>chunkBits), uint16(i&chunkMask)
	var zero T
	s.chunks[c][off] = zero
	s.live[c]--
	s.n--
	if s.live[c] == 0 {
		s.chunks[c], s.free[c], s.top[c] = nil, nil, 0
		// Trailing empty chunks go from the tables too.
		n := len(s.chunks)
		for n > 0 && s.chunks[n-1] == nil {
			n--
		}
		s.chunks, s.live, s.top, s.free = s.chunks[:n], s.live[:n], s.top[:n], s.free[:n]
		if cap(s.chunks) > 64 && n < cap(s.chunks)/4 {
			s.chunks = append([][]T(nil), s.chunks...)
			s.live = append([]int32(nil), s.live...)
			s.top = append([]int32(nil), s.top...)
			s.free = append([][]uint16(nil), s.free...)
		}
	} else {
		s.free[c] = append(s.free[c], off)
	}
	s.low = min(s.low, c, len(s.chunks))
}

// each calls f with every slot that was handed out and not given back with
// its chunk; f tells the live items from the freed ones by their content.
func (s *store[T]) each(f func(uint32, *T)) {
	for c, ch := range s.chunks {
		for off := range int(s.top[c]) {
			f(uint32(c<<chunkBits|off), &ch[off])
		}
	}
}
