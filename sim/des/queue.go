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

// radixQueue is the pending-event set; see the comment at the top of the
// file. Bucket b is a FIFO of events in blocks[b]: every block but the last
// is full, and tail[b] is the last block's filled part, so appending is a
// slice append until the block fills. The tails sit in an array of their own
// because they are all the hot loops touch.
type radixQueue struct {
	last     uint64          // time of the last event removed; no pending event is earlier
	nonEmpty uint64          // bit b set when bucket b holds events
	n        int             // pending events
	head     int             // events already removed from bucket 0, counted from its first block
	min      [buckets]uint64 // earliest time in each non-empty bucket
	tail     [buckets][]entry
	blocks   [buckets][]*block
	free     []*block
}

// grow starts a new block at the end of bucket b.
func (q *radixQueue) grow(b int) {
	var blk *block
	if n := len(q.free); n > 0 {
		blk = q.free[n-1]
		q.free = q.free[:n-1]
	} else {
		blk = new(block)
	}
	q.blocks[b] = append(q.blocks[b], blk)
	q.tail[b] = blk[:0]
}

// push adds an event at time t (last <= t <= MaxTime, checked by the caller).
func (q *radixQueue) push(t uint64, kind uint8, node, arg uint32) {
	b := bits.Len64(t ^ q.last)
	if len(q.tail[b]) == cap(q.tail[b]) {
		q.grow(b)
	}
	q.tail[b] = append(q.tail[b], entry{t<<kindBits | uint64(kind), node, arg})
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
	q.n--
	if q.nonEmpty&1 == 0 {
		b := bits.TrailingZeros64(q.nonEmpty)
		if len(q.tail[b]) == 1 && len(q.blocks[b]) == 1 {
			// The lowest bucket holds just this event, which is common
			// when pending times are spread thinly (at 10^5 nodes a second
			// apart, about one event per 10 µs): take it without moving it
			// through bucket 0. It becomes last; the buckets above b stay
			// valid, as after any redistribution of b.
			e := q.tail[b][0]
			q.tail[b] = q.tail[b][:0]
			q.last = q.min[b]
			q.nonEmpty &^= 1 << b
			return e
		}
		q.redistribute(b)
	}
	blocks := q.blocks[0]
	i := q.head
	e := blocks[i/blockLen][i%blockLen]
	i++
	q.head = i
	switch {
	case i == (len(blocks)-1)*blockLen+len(q.tail[0]):
		q.release0()
	case i%blockLen == 0:
		// Hand a drained block back now: a burst of events at one instant
		// should not hold its memory until the last of them has run.
		q.free = append(q.free, blocks[i/blockLen-1])
		blocks[i/blockLen-1] = nil
	}
	return e
}

// release0 empties bucket 0 once its last event is removed. The block that
// held the last event stays with the bucket: a low bucket fills and empties
// about once per event, and trading a block with the free list each time
// cost a third of the engine's speed. The other blocks were handed back as
// they drained.
func (q *radixQueue) release0() {
	if n := len(q.blocks[0]); n > 1 {
		q.blocks[0][0] = q.blocks[0][n-1]
		clear(q.blocks[0][1:])
		q.blocks[0] = q.blocks[0][:1]
	}
	q.tail[0] = q.tail[0][:0]
	q.head = 0
	q.nonEmpty &^= 1
}

// redistribute empties bucket b (> 0) into the buckets below it around its
// minimum, which becomes last. Every event in b shares last's bits above
// b−1, and the new last shares them too, so each lands strictly below b.
func (q *radixQueue) redistribute(b int) {
	last := q.min[b]
	q.last = last
	nonEmpty := q.nonEmpty &^ (1 << b)
	if blocks := q.blocks[b]; len(blocks) > 1 {
		// Each block but the last goes back to the free list as soon as it
		// is read, so the move needs few blocks beyond the events
		// themselves; the last stays with the bucket, as in release0.
		n := len(blocks)
		for j, blk := range blocks[:n-1] {
			nonEmpty = q.spread(blk[:], last, nonEmpty)
			q.free = append(q.free, blk)
			blocks[j] = nil
		}
		blocks[0] = blocks[n-1]
		blocks[n-1] = nil
		q.blocks[b] = blocks[:1]
	}
	q.nonEmpty = q.spread(q.tail[b], last, nonEmpty)
	q.tail[b] = q.tail[b][:0]
}

// spread appends events to their buckets relative to last and returns
// nonEmpty updated. Most calls move one to a few events (the queue's low
// buckets empty about once per event), so redistribute keeps its fixed cost
// small and leaves the loop here.
func (q *radixQueue) spread(es []entry, last, nonEmpty uint64) uint64 {
	for _, e := range es {
		t := e.time()
		b := bits.Len64(t ^ last)
		if len(q.tail[b]) == cap(q.tail[b]) {
			q.grow(b)
		}
		q.tail[b] = append(q.tail[b], e)
		if nonEmpty&(1<<b) == 0 || t < q.min[b] {
			q.min[b] = t
			nonEmpty |= 1 << b
		}
	}
	return nonEmpty
}
