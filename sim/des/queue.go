package des

import "math/bits"

// The event queue is a radix heap (Ahuja, Mehlhorn, Orlin and Tarjan, 1990)
// over the event's time. A radix heap needs monotone priorities — nothing may
// be inserted below the last key removed — which a discrete-event simulator
// guarantees: an event is never scheduled before Now, and Now is never
// behind the last event removed.
//
// Bucket b holds the events whose time differs from last (the time of the
// last event removed) first in bit b−1, counting from 0; bucket 0 holds the
// events at exactly last. An event's bucket therefore depends only on its
// time and last, so all events with equal times share a bucket. Removing the
// minimum takes it from bucket 0; when bucket 0 is empty, the lowest
// non-empty bucket b is redistributed around its minimum, which becomes the
// new last, and every one of its events lands in a bucket below b. An event
// moves down at most 56 times and in practice about log2 of the spread of
// pending times (~20 for events a second apart at µs resolution), each move a
// sequential append, so removal is O(1) amortised and cache-friendly where a
// binary or 4-ary heap takes log n cache misses per operation at 10^7 events.
//
// FIFO among equal times needs no sequence number: appends, redistribution
// and bucket 0 (read from its head) all preserve order, and equal times never
// sit in different buckets, so events at one instant leave in the order they
// were scheduled.
//
// Each bucket's minimum time is kept as events arrive, so the queue knows the
// next event's time without redistributing. That matters at Run's boundary:
// redistributing would raise last above Now, and a later At between Now and
// last would break the monotone invariant.

const (
	kindBits = 8  // Event.Kind is a uint8
	timeBits = 56 // 64 − kindBits; see MaxTime
	buckets  = timeBits + 1
)

// entry is one pending event in 16 bytes and no pointers, so that 10^7 of
// them cost 160 MB and nothing for the garbage collector to scan.
type entry struct {
	key  uint64 // time<<kindBits | kind
	node uint32
	arg  uint32
}

func (e entry) time() uint64 { return e.key >> kindBits }

// Buckets store their events in fixed-size blocks drawn from a shared free
// list rather than in slices of their own. Slices would each keep the
// capacity of their largest moment (and up to twice that after append's
// doubling); over the ~20 busy buckets that came to about 40 bytes per
// pending event, where shared blocks keep the queue close to 16.
const blockLen = 256 // entries per block: 4 KiB

type block [blockLen]entry

// bucket is a FIFO of events in blocks: every block but the last is full,
// and tail is the last block's filled part, so that appending is a slice
// append until the block fills. Entries before head (counted from the first
// block) have been removed; only bucket 0 is read from the head, a
// redistributed bucket is emptied whole.
type bucket struct {
	blocks []*block
	tail   []entry
	head   int
}

// radixQueue is the pending-event set; see the comment at the top of the file.
type radixQueue struct {
	last     uint64 // time of the last event removed; no pending event is earlier
	nonEmpty uint64 // bit b set when bucket b holds events
	n        int    // pending events
	free     []*block
	min      [buckets]uint64 // earliest time in each non-empty bucket
	bucket   [buckets]bucket
}

// grow starts a new block at the end of bk.
func (q *radixQueue) grow(bk *bucket) {
	var blk *block
	if n := len(q.free); n > 0 {
		blk = q.free[n-1]
		q.free = q.free[:n-1]
	} else {
		blk = new(block)
	}
	bk.blocks = append(bk.blocks, blk)
	bk.tail = blk[:0]
}

// push adds an event at time t (last <= t <= MaxTime, checked by the caller).
func (q *radixQueue) push(t uint64, kind uint8, node, arg uint32) {
	b := bits.Len64(t ^ q.last)
	bk := &q.bucket[b]
	if len(bk.tail) == cap(bk.tail) {
		q.grow(bk)
	}
	bk.tail = append(bk.tail, entry{t<<kindBits | uint64(kind), node, arg})
	if q.nonEmpty&(1<<b) == 0 || t < q.min[b] {
		q.min[b] = t
		q.nonEmpty |= 1 << b
	}
	q.n++
}

// peek returns the time of the earliest pending event; ok is false when none
// is pending.
func (q *radixQueue) peek() (t uint64, ok bool) {
	if q.nonEmpty == 0 {
		return 0, false
	}
	return q.min[bits.TrailingZeros64(q.nonEmpty)], true
}

// pop removes and returns the earliest pending event (the first scheduled
// among equals). The queue must not be empty.
func (q *radixQueue) pop() entry {
	if q.nonEmpty&1 == 0 {
		q.redistribute(bits.TrailingZeros64(q.nonEmpty))
	}
	bk := &q.bucket[0]
	i := bk.head
	e := bk.blocks[i/blockLen][i%blockLen]
	i++
	bk.head = i
	switch {
	case i == (len(bk.blocks)-1)*blockLen+len(bk.tail):
		q.release(bk)
		q.nonEmpty &^= 1
	case i%blockLen == 0:
		// Hand a drained block back now: a burst of events at one instant
		// should not hold its memory until the last of them has run.
		q.free = append(q.free, bk.blocks[i/blockLen-1])
		bk.blocks[i/blockLen-1] = nil
	}
	q.n--
	return e
}

// release returns an emptied bucket's remaining blocks to the free list.
func (q *radixQueue) release(bk *bucket) {
	for j, blk := range bk.blocks {
		if blk != nil {
			q.free = append(q.free, blk)
			bk.blocks[j] = nil
		}
	}
	bk.blocks = bk.blocks[:0]
	bk.tail = nil
	bk.head = 0
}

// redistribute empties bucket b (> 0) into the buckets below it around its
// minimum, which becomes last. Every event in b shares last's bits above
// b−1, and the new last shares them too, so each lands strictly below b.
// Each source block goes back to the free list as soon as it is read, so the
// move needs no more than a few blocks beyond the events themselves.
func (q *radixQueue) redistribute(b int) {
	last := q.min[b]
	q.last = last
	nonEmpty := q.nonEmpty &^ (1 << b)
	src := &q.bucket[b]
	lastBlock := len(src.blocks) - 1
	for j, blk := range src.blocks {
		es := blk[:]
		if j == lastBlock {
			es = src.tail
		}
		for _, e := range es {
			t := e.time()
			nb := bits.Len64(t ^ last)
			bk := &q.bucket[nb]
			if len(bk.tail) == cap(bk.tail) {
				q.grow(bk)
			}
			bk.tail = append(bk.tail, e)
			if nonEmpty&(1<<nb) == 0 || t < q.min[nb] {
				q.min[nb] = t
				nonEmpty |= 1 << nb
			}
		}
		q.free = append(q.free, blk)
		src.blocks[j] = nil
	}
	q.nonEmpty = nonEmpty
	src.blocks = src.blocks[:0]
	src.tail = nil
}
