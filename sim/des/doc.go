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
// The queue is a radix heap keyed on time: scheduling is one append, and
// removing the next event is O(1) amortised (see queue.go). It is exact —
// no time quantisation as in calendar queues — and needs no tuning to the
// event distribution. It was chosen by measurement on the PeerSim-style
// workload of BenchmarkPeerSim (each node a timer per cycle plus one message
// with a delay of 10–60 % of a cycle): against a 4-ary implicit heap of
// 24-byte entries (time, sequence number, kind, node, argument) it was
// faster at every size, and by more as the population grew, because a
// heap's sift-down takes a cache miss per level once the queue outgrows the
// cache while the radix heap touches memory sequentially. The benchmark
// also runs the same workload on container/heap in the same process and
// reports the ratio. BENCHMARKS.md has the figures.
//
// # Horizon
//
// Times run from 0 to MaxTime (2^56−1 µs, about 2,283 years); scheduling
// before Now or beyond MaxTime panics, as it is a bug in the model.
package des
