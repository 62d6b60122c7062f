package des

import (
	"container/heap"
	"math/rand/v2"
)

// refSim is the textbook engine: the same clock, random source and
// semantics as Sim over container/heap, with an explicit sequence number
// for FIFO ties. Tests use it as the oracle for Sim's event order, and
// BenchmarkPeerSim as the baseline Sim must beat.
type refSim struct {
	q    refHeap
	now  Time
	seq  uint64
	rng  *rand.Rand
	exec uint64
}

func newRefSim(seed uint64) *refSim {
	return &refSim{rng: rand.New(rand.NewPCG(seed, splitmix64(seed)))}
}

// refEvent has no pointers, so the heap's backing array is not scanned by
// the garbage collector; heap.Push and heap.Pop still box it in an
// interface, which is part of what the textbook heap costs.
type refEvent struct {
	at   Time
	seq  uint64
	node uint32
	arg  uint32
	kind uint8
}

type refHeap []refEvent

func (h refHeap) Len() int { return len(h) }
func (h refHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h refHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *refHeap) Push(x any)   { *h = append(*h, x.(refEvent)) }
func (h *refHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func (s *refSim) At(t Time, kind uint8, node, arg uint32) {
	if t < s.now {
		panic("refSim: event in the past")
	}
	heap.Push(&s.q, refEvent{at: t, seq: s.seq, node: node, arg: arg, kind: kind})
	s.seq++
}

func (s *refSim) After(d Time, kind uint8, node, arg uint32) { s.At(s.now+d, kind, node, arg) }

func (s *refSim) Run(until Time, h func(*refSim, Event)) uint64 {
	var n uint64
	for len(s.q) > 0 && s.q[0].at <= until {
		e := heap.Pop(&s.q).(refEvent)
		s.now = e.at
		n++
		s.exec++
		h(s, Event{At: e.at, Node: e.node, Arg: e.arg, Kind: e.kind})
	}
	if until > s.now {
		s.now = until
	}
	return n
}
