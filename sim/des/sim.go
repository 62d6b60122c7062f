package des

import (
	"fmt"
	"math/rand/v2"
)

// Event is what a Handler receives: the instant it was scheduled for and the
// three values given to At or After. The engine gives Kind, Node and Arg no
// meaning; by convention Kind says what happens, Node is the index of the
// node it happens to, and Arg carries one more value (a peer index, a query
// number, a slot in a model table).
type Event struct {
	At   Time
	Node uint32
	Arg  uint32
	Kind uint8
}

// Handler executes one event. It runs on the goroutine that called Run, one
// event at a time, with s.Now() == ev.At; it may schedule events (at Now or
// later), call Stop, and use s.Rand(), but must not call Run.
type Handler func(s *Sim, ev Event)

// Sim is a discrete-event engine: a virtual clock, a queue of pending events
// and the run's one random source. It is not safe for concurrent use; one
// goroutine owns a Sim and everything the handler touches.
//
// Determinism: events execute in order of time, and events at equal times in
// the order they were scheduled (FIFO). Together with the seeded random
// source that makes a run a pure function of the seed and the model, as long
// as the model draws randomness only from Rand and does not iterate Go maps
// in ways that affect what it schedules.
type Sim struct {
	q       radixQueue
	now     Time
	rng     *rand.Rand
	exec    uint64
	stop    bool
	running bool
}

// New returns a Sim at time 0 with no pending events and a random source
// seeded from seed.
func New(seed uint64) *Sim {
	return &Sim{rng: rand.New(rand.NewPCG(seed, splitmix64(seed)))}
}

// splitmix64 derives PCG's second seed word from the first, so that seeds
// that differ in one bit still start far apart in both words of PCG's state.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// Now returns the current virtual time: the time of the event being executed,
// or between runs, where the last Run left the clock.
func (s *Sim) Now() Time { return s.now }

// Rand returns the run's one random source (PCG from math/rand/v2). Every
// random choice of the model should come from here so that the seed
// determines the run.
func (s *Sim) Rand() *rand.Rand { return s.rng }

// At schedules an event of the given kind for node at time t. Scheduling
// before Now or after MaxTime is a bug in the model and panics. The cost is
// O(1): one append to a queue bucket, 16 bytes of memory per pending event
// in steady state.
func (s *Sim) At(t Time, kind uint8, node, arg uint32) {
	if t < s.now || t > MaxTime {
		s.badTime(t)
	}
	s.q.push(uint64(t), kind, node, arg)
}

// After schedules an event d after Now; it is At(Now()+d, …). A negative d,
// or one that reaches beyond MaxTime, panics. After(0, …) runs after every
// event already scheduled for Now, which is how a model says "at once".
func (s *Sim) After(d Time, kind uint8, node, arg uint32) {
	if d < 0 || d > MaxTime-s.now {
		s.badDelay(d)
	}
	s.q.push(uint64(s.now+d), kind, node, arg)
}

// badTime and badDelay keep the formatting of panic messages out of At and
// After, whose common path is two comparisons and an append.
func (s *Sim) badTime(t Time) {
	if t < s.now {
		panic(fmt.Sprintf("des: event scheduled at %d µs, before now (%d µs)", int64(t), int64(s.now)))
	}
	panic(fmt.Sprintf("des: event scheduled at %d µs, beyond the horizon MaxTime (%d µs ≈ %.0f years)",
		int64(t), int64(MaxTime), MaxTime.Hours()/24/365.25))
}

func (s *Sim) badDelay(d Time) {
	if d < 0 {
		panic(fmt.Sprintf("des: negative delay %d µs", int64(d)))
	}
	s.badTime(MaxTime + 1) // now+d would pass the horizon (or overflow).
}

// Run executes, in order, every pending event with At <= until, including
// events scheduled while it runs, and returns how many it executed. When no
// event at or before until remains it sets Now to until (if until is later
// than Now; the clock never goes back), so that a following Run or At
// continues from there. If a handler calls Stop, Run returns after that
// event with Now at the event's time and the rest of the queue intact; a
// later Run resumes from there.
func (s *Sim) Run(until Time, h Handler) uint64 {
	if s.running {
		panic("des: Run called from a handler")
	}
	s.running = true
	s.stop = false
	defer func() { s.running = false }()

	var n uint64
	for !s.stop {
		t, ok := s.q.peek()
		if !ok || Time(t) > until {
			if until > s.now {
				s.now = until
			}
			break
		}
		e := s.q.pop()
		s.now = Time(t)
		n++
		s.exec++
		h(s, Event{At: Time(t), Node: e.node, Arg: e.arg, Kind: uint8(e.key)})
	}
	return n
}

// Stop makes the Run in progress return after the current event. Outside a
// Run it has no effect: each Run starts unstopped.
func (s *Sim) Stop() { s.stop = true }

// Pending returns the number of scheduled events not yet executed.
func (s *Sim) Pending() int { return s.q.n }

// Executed returns the number of events executed since New, over all Runs.
// Inside a handler it counts the current event.
func (s *Sim) Executed() uint64 { return s.exec }
