package des

import (
	"fmt"
	"math"
	"runtime"
	"testing"
	"time"
)

// The PeerSim engine benchmark: N nodes, each with a timer every cycle
// (1 s of virtual time) that sends one message to a uniformly random node
// with a delay uniform in [0.1, 0.6] cycle. The message handler does
// nothing, so the benchmark measures the engine: about 2 events per node per
// cycle and about 1.35 N events pending at any time.
const (
	kindTimer uint8 = iota
	kindMessage
)

const (
	cycle    = Second
	minDelay = cycle / 10
	maxDelay = cycle * 6 / 10
)

// scheduler is what the workload needs from an engine, so that the same
// code drives Sim and the container/heap baseline.
type scheduler interface {
	At(t Time, kind uint8, node, arg uint32)
	After(d Time, kind uint8, node, arg uint32)
}

// peersimStart spreads the N initial timers uniformly over the first cycle.
func peersimStart(s scheduler, rng interface{ Int64N(int64) int64 }, n int) {
	for i := range n {
		s.At(Time(rng.Int64N(int64(cycle))), kindTimer, uint32(i), 0)
	}
}

// peersimHandler is the workload's handler for Sim.
func peersimHandler(n uint32) Handler {
	return func(s *Sim, ev Event) {
		if ev.Kind != kindTimer {
			return
		}
		s.After(cycle, kindTimer, ev.Node, 0)
		r := s.Rand()
		s.After(minDelay+Time(r.Int64N(int64(maxDelay-minDelay)+1)), kindMessage, r.Uint32N(n), ev.Node)
	}
}

// peersimRefHandler is the same handler for the baseline engine, drawing the
// same random numbers in the same order.
func peersimRefHandler(n uint32) func(*refSim, Event) {
	return func(s *refSim, ev Event) {
		if ev.Kind != kindTimer {
			return
		}
		s.After(cycle, kindTimer, ev.Node, 0)
		r := s.rng
		s.After(minDelay+Time(r.Int64N(int64(maxDelay-minDelay)+1)), kindMessage, r.Uint32N(n), ev.Node)
	}
}

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkPeerSim runs the PeerSim workload on Sim and, in the same
// iteration, on container/heap (refSim). The first cycle, while the initial
// timers fire, is a warm-up; the measured cycles follow, enough for about
// 2×10^7 events. Metrics: events/s (Sim), baseline-events/s (container/heap),
// ratio (Sim ÷ baseline), and bytes/pending (Sim's live heap per pending
// event at the end of the warm-up, the queue's own footprint since the
// workload keeps no per-node state).
//
// Run it with -benchtime 1x: one iteration is already 4×10^7 events per
// engine, and takes about two minutes, most of it the baseline at N=1e7,
// which peaks at 1.5 GB of memory. With -short only N=1e4 and 1e5 run.
func BenchmarkPeerSim(b *testing.B) {
	sizes := []int{1e4, 1e5, 1e6, 1e7}
	if testing.Short() {
		sizes = sizes[:2]
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("N=1e%d", int(math.Log10(float64(n)))), func(b *testing.B) {
			cycles := max(1, 20_000_000/(2*n))
			until := Time(1+cycles) * cycle
			var simEvents, refEvents uint64
			var simTime, refTime time.Duration
			var bytesPerPending float64
			for range b.N {
				base := heapInUse()
				s := New(1)
				peersimStart(s, s.Rand(), n)
				s.Run(cycle, peersimHandler(uint32(n)))
				bytesPerPending = float64(heapInUse()-base) / float64(s.Pending())
				start := time.Now()
				simEvents += s.Run(until, peersimHandler(uint32(n)))
				simTime += time.Since(start)
				s = nil

				r := newRefSim(1)
				peersimStart(r, r.rng, n)
				r.Run(cycle, peersimRefHandler(uint32(n)))
				runtime.GC()
				start = time.Now()
				refEvents += r.Run(until, peersimRefHandler(uint32(n)))
				refTime += time.Since(start)
				r = nil
				runtime.GC()
			}
			simRate := float64(simEvents) / simTime.Seconds()
			refRate := float64(refEvents) / refTime.Seconds()
			b.ReportMetric(simRate, "events/s")
			b.ReportMetric(refRate, "baseline-events/s")
			b.ReportMetric(simRate/refRate, "ratio")
			b.ReportMetric(bytesPerPending, "bytes/pending")
			b.ReportMetric(0, "ns/op") // one op is a whole run; events/s is the figure
		})
	}
}
