package downloads

import (
	"sync"
	"time"
)

// Subscription receives job changes (Manager.Subscribe). Changes are never
// dropped and never block the manager: each job's latest snapshot waits in
// the subscription until taken, so a slow reader sees fewer intermediate
// states of a job, never a stale last one.
type Subscription struct {
	m     *Manager
	ready chan struct{} // a token when changes wait; closed when the subscription ends

	mu      sync.Mutex // guards the fields below
	pending map[int64]Job
	order   []int64
	ended   bool
}

// Subscribe starts a subscription. Its first Take returns every job as it is
// now; later ones what changed since. End it with Stop.
func (m *Manager) Subscribe() *Subscription {
	s := &Subscription{m: m, ready: make(chan struct{}, 1), pending: map[int64]Job{}}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, j := range m.sorted() {
		s.put(j.snapshot())
	}
	if m.closed {
		s.close()
		return s
	}
	m.subs[s] = struct{}{}
	return s
}

// Ready has a token when Take has something, and is closed when the
// subscription ended (Stop, or the manager closed).
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Take returns the changes waiting, each job once with its latest state,
// in the order they first changed; ok is false once the subscription has
// ended and nothing waits.
func (s *Subscription) Take() (jobs []Job, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.order {
		jobs = append(jobs, s.pending[id])
	}
	s.order = s.order[:0]
	clear(s.pending)
	return jobs, len(jobs) > 0 || !s.ended
}

// Stop ends the subscription.
func (s *Subscription) Stop() {
	s.m.mu.Lock()
	delete(s.m.subs, s)
	s.m.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked()
}

func (s *Subscription) put(j Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	if _, ok := s.pending[j.ID]; !ok {
		s.order = append(s.order, j.ID)
	}
	s.pending[j.ID] = j
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

func (s *Subscription) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked()
}

func (s *Subscription) endLocked() {
	if !s.ended {
		s.ended = true
		close(s.ready)
	}
}

// notify hands a job's snapshot to every subscription. m.mu held.
func (m *Manager) notify(j *job) {
	j.lastEvent = time.Now()
	snap := j.snapshot()
	for s := range m.subs {
		s.put(snap)
	}
}
