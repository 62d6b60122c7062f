// Package des is the discrete-event engine under Canopy's simulator: a
// virtual clock in microseconds, a queue of pending events and one seeded
// random source. A model schedules events with At and After and executes them
// with Run, which calls one Handler per event in time order.
//
// # Determinism
//
// Events run in order of time; events at the same time run in the order they
// were scheduled (FIFO). With every random choice drawn from Sim.Rand, a run
// is a pure function of the seed and the model: the same scenario and seed
// produce byte-identical outputs, and a different seed a different run.
//
// # Representation
//
// An event is four numbers — time, kind, node, argument — and no pointers;
// the model keeps its per-node state in its own flat slices indexed by
// Event.Node. A pending event costs 16 bytes in the queue (time and kind
// packed into one 64-bit word), so the heap grows linearly with the
// population and the garbage collector has nothing in the queue to scan.
//
// # Queue
//
// The queue is a radix heap keyed on time (see queue.go): scheduling is one
// append, and removing the next event is O(1) amortised. It is exact — no
// time quantisation or width tuning as in calendar and ladder queues — and
// gives FIFO ties without a sequence number. It was chosen by measurement,
// queue alone on the PeerSim-style workload of BenchmarkPeerSim (each node a
// timer per cycle plus one message with a delay of 10–60 % of a cycle), in
// millions of events per second on the 2-core development VM:
//
//	nodes                          10^4   10^5   10^6   10^7
//	4-ary implicit heap, 24 B       5.4    3.3    1.5    1.1
//	radix heap, slice per bucket   11.5   11.0   10.5    7.9
//	radix heap, shared blocks      10.2    9.7    8.9    8.9
//
// The heap takes a cache miss per level once it outgrows the cache, and
// needs a sequence number (so 24-byte entries) for FIFO ties; the radix heap
// moves events by sequential appends. A slice per bucket is 10–15 % faster
// at small sizes but holds about 40 bytes per pending event (each slice
// keeps its largest capacity); buckets made of 4 KiB blocks from a shared
// free list hold about 16, and are the faster at 10^7 where memory traffic
// dominates. BenchmarkPeerSim measures the engine against container/heap in
// the same run.
//
// # Horizon
//
// Times run from 0 to MaxTime (2^56−1 µs, about 2,283 years); scheduling
// before Now or beyond MaxTime panics, as it is a bug in the model.
package des
