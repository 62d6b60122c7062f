package des

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"testing"
	"time"
)

// entry is one pending event in 16 bytes and no pointers, so that 10^7 of
// them cost 160 MB and nothing for the garbage collector to scan.

// sliceQueue is the pending-event set; see the comment at the top of the file.
type sliceQueue struct {
	last     uint64          // time of the last event removed; no pending event is earlier
	nonEmpty uint64          // bit b set when bucket b holds events
	head     int             // next event to remove from bucket[0], which is read as a FIFO
	n        int             // pending events
	min      [buckets]uint64 // earliest time in each non-empty bucket
	bucket   [buckets][]entry
}

// push adds an event at time t (last <= t <= MaxTime, checked by the caller).
func (q *sliceQueue) push(t uint64, kind uint8, node, arg uint32) {
	b := bits.Len64(t ^ q.last)
	q.bucket[b] = append(q.bucket[b], entry{t<<kindBits | uint64(kind), node, arg})
	if q.nonEmpty&(1<<b) == 0 || t < q.min[b] {
		q.min[b] = t
		q.nonEmpty |= 1 << b
	}
	q.n++
}

// peek returns the time of the earliest pending event; ok is false when none
// is pending.
func (q *sliceQueue) peek() (t uint64, ok bool) {
	if q.nonEmpty == 0 {
		return 0, false
	}
	return q.min[bits.TrailingZeros64(q.nonEmpty)], true
}

// pop removes and returns the earliest pending event (the first scheduled
// among equals). The queue must not be empty.
func (q *sliceQueue) pop() entry {
	if q.nonEmpty&1 == 0 {
		q.redistribute(bits.TrailingZeros64(q.nonEmpty))
	}
	b0 := q.bucket[0]
	e := b0[q.head]
	q.head++
	if q.head == len(b0) {
		q.bucket[0] = b0[:0]
		q.head = 0
		q.nonEmpty &^= 1
	}
	q.n--
	return e
}

// redistribute empties bucket b (> 0) into the buckets below it around its
// minimum, which becomes last. Every event in b shares last's bits above
// b−1, and the new last shares them too, so each lands strictly below b.
func (q *sliceQueue) redistribute(b int) {
	last := q.min[b]
	q.last = last
	src := q.bucket[b]
	nonEmpty := q.nonEmpty &^ (1 << b)
	for _, e := range src {
		t := e.time()
		nb := bits.Len64(t ^ last)
		q.bucket[nb] = append(q.bucket[nb], e)
		if nonEmpty&(1<<nb) == 0 || t < q.min[nb] {
			q.min[nb] = t
			nonEmpty |= 1 << nb
		}
	}
	q.nonEmpty = nonEmpty
	q.bucket[b] = src[:0]
}

// fourAry is a 4-ary implicit heap of 24-byte entries with a sequence number.
type faEntry struct {
	at        uint64
	seq       uint64 // seq<<8 | kind
	node, arg uint32
}
type fourAry struct {
	h   []faEntry
	seq uint64
}

func (f *fourAry) less(a, b *faEntry) bool {
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}
func (f *fourAry) push(t uint64, kind uint8, node, arg uint32) {
	e := faEntry{t, f.seq<<8 | uint64(kind), node, arg}
	f.seq++
	h := append(f.h, e)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 4
		if !f.less(&e, &h[p]) {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = e
	f.h = h
}
func (f *fourAry) peek() (uint64, bool) {
	if len(f.h) == 0 {
		return 0, false
	}
	return f.h[0].at, true
}
func (f *fourAry) pop() faEntry {
	h := f.h
	top := h[0]
	n := len(h) - 1
	e := h[n]
	h = h[:n]
	i := 0
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		end := min(c+4, n)
		for k := c + 1; k < end; k++ {
			if f.less(&h[k], &h[m]) {
				m = k
			}
		}
		if !f.less(&h[m], &e) {
			break
		}
		h[i] = h[m]
		i = m
	}
	if n > 0 {
		h[i] = e
	}
	f.h = h
	return top
}

func runQradix(n int, cycles int) (uint64, time.Duration) {
	q := &radixQueue{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		q.push(uint64(rng.Int64N(int64(cycle))), kindTimer, uint32(i), 0)
	}
	run := func(until uint64) uint64 {
		var ev uint64
		for {
			t, ok := q.peek()
			if !ok || t > until {
				return ev
			}
			e := q.pop()
			ev++
			if uint8(e.key) == kindTimer {
				q.push(t+uint64(cycle), kindTimer, e.node, 0)
				q.push(t+uint64(minDelay)+uint64(rng.Int64N(int64(maxDelay-minDelay)+1)), kindMessage, rng.Uint32N(uint32(n)), e.node)
			}
		}
	}
	run(uint64(cycle))
	start := time.Now()
	ev := run(uint64(cycle) * uint64(1+cycles))
	return ev, time.Since(start)
}

func runQslices(n int, cycles int) (uint64, time.Duration) {
	q := &sliceQueue{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		q.push(uint64(rng.Int64N(int64(cycle))), kindTimer, uint32(i), 0)
	}
	run := func(until uint64) uint64 {
		var ev uint64
		for {
			t, ok := q.peek()
			if !ok || t > until {
				return ev
			}
			e := q.pop()
			ev++
			if uint8(e.key) == kindTimer {
				q.push(t+uint64(cycle), kindTimer, e.node, 0)
				q.push(t+uint64(minDelay)+uint64(rng.Int64N(int64(maxDelay-minDelay)+1)), kindMessage, rng.Uint32N(uint32(n)), e.node)
			}
		}
	}
	run(uint64(cycle))
	start := time.Now()
	ev := run(uint64(cycle) * uint64(1+cycles))
	return ev, time.Since(start)
}

func runQfourary(n int, cycles int) (uint64, time.Duration) {
	q := &fourAry{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		q.push(uint64(rng.Int64N(int64(cycle))), kindTimer, uint32(i), 0)
	}
	run := func(until uint64) uint64 {
		var ev uint64
		for {
			t, ok := q.peek()
			if !ok || t > until {
				return ev
			}
			e := q.pop()
			ev++
			if uint8(e.seq) == kindTimer {
				q.push(t+uint64(cycle), kindTimer, e.node, 0)
				q.push(t+uint64(minDelay)+uint64(rng.Int64N(int64(maxDelay-minDelay)+1)), kindMessage, rng.Uint32N(uint32(n)), e.node)
			}
		}
	}
	run(uint64(cycle))
	start := time.Now()
	ev := run(uint64(cycle) * uint64(1+cycles))
	return ev, time.Since(start)
}

func BenchmarkQueueAlt(b *testing.B) {
	for _, n := range []int{1e4, 1e5, 1e6, 1e7} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			cycles := max(1, 20_000_000/(2*n))
			rates := map[string]float64{}
			for range b.N {
				for _, r := range []struct {
					name string
					f    func(int, int) (uint64, time.Duration)
				}{{"radix-blocks", runQradix}, {"radix-slices", runQslices}, {"4ary-heap", runQfourary}} {
					ev, d := r.f(n, cycles)
					rates[r.name] += float64(ev) / d.Seconds() / float64(b.N)
				}
			}
			for k, v := range rates {
				b.ReportMetric(v/1e6, k+"-Mev/s")
			}
		})
	}
}
