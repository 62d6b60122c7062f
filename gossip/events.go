package gossip

import (
	"sync"
	"sync/atomic"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// EventKind says what happened to a member.
type EventKind uint8

const (
	// EventJoin reports a member that joined, or came back after it was
	// declared dead or left.
	EventJoin EventKind = iota + 1
	// EventLeave reports a member that left gracefully or was declared dead
	// by failure detection; memberlist v0.7.0 does not tell the two apart.
	EventLeave
	// EventUpdate reports a member whose metadata changed.
	EventUpdate
)

// String returns "join", "leave" or "update".
func (k EventKind) String() string {
	switch k {
	case EventJoin:
		return "join"
	case EventLeave:
		return "leave"
	case EventUpdate:
		return "update"
	default:
		return "unknown"
	}
}

// Event is a change in the ring's membership.
type Event struct {
	// Kind is what happened.
	Kind EventKind
	// Member is the member it happened to, with its metadata as of the event.
	Member Member
}

// eventQueue carries events from memberlist to the Events callback.
//
// memberlist calls its event delegate while it holds its node lock, so the
// delegate must neither block nor call back into memberlist. The queue
// decouples the two: the delegate only enqueues, without blocking, and one
// goroutine owned by the queue runs the callback.
type eventQueue struct {
	log     *zap.Logger
	deliver func(Event)
	dropped atomic.Uint64
	done    chan struct{} // closed when the dispatch goroutine returns

	// mu guards ch against a send after close: memberlist goroutines can
	// still report events while the ring shuts down.
	mu     sync.RWMutex
	closed bool
	ch     chan Event
}

func newEventQueue(size int, deliver func(Event), log *zap.Logger) *eventQueue {
	q := &eventQueue{
		log:     log,
		deliver: deliver,
		done:    make(chan struct{}),
		ch:      make(chan Event, size),
	}
	go q.run()
	return q
}

func (q *eventQueue) run() {
	defer close(q.done)
	for ev := range q.ch {
		q.deliver(ev)
	}
}

// push enqueues ev, or drops and counts it if the queue is full or closed.
// It never blocks.
func (q *eventQueue) push(ev Event) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return
	}
	select {
	case q.ch <- ev:
	default:
		// Dropping the newest event keeps the callback's view in order; a
		// consumer that sees DroppedEvents grow resynchronises with Members.
		n := q.dropped.Add(1)
		q.log.Warn("event queue full, dropping event",
			zap.Stringer("kind", ev.Kind), zap.String("member", ev.Member.Name), zap.Uint64("dropped", n))
	}
}

// close stops accepting events and waits until the callback has been given
// every event already queued.
func (q *eventQueue) close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	q.mu.Unlock()
	<-q.done
}

// memberDelegate implements memberlist.EventDelegate. memberlist calls it
// with its node lock held, in the order the changes happened, so it keeps the
// member table exactly in step with memberlist; the table reports the changes
// the ring lists to the queue, without blocking.
type memberDelegate struct {
	self  string
	table *memberTable
	log   *zap.Logger
}

// NotifyJoin implements memberlist.EventDelegate.
func (d *memberDelegate) NotifyJoin(n *memberlist.Node) { d.notify(EventJoin, n) }

// NotifyLeave implements memberlist.EventDelegate.
func (d *memberDelegate) NotifyLeave(n *memberlist.Node) { d.notify(EventLeave, n) }

// NotifyUpdate implements memberlist.EventDelegate.
func (d *memberDelegate) NotifyUpdate(n *memberlist.Node) { d.notify(EventUpdate, n) }

func (d *memberDelegate) notify(kind EventKind, n *memberlist.Node) {
	if kind == EventLeave {
		d.table.remove(n.Name)
		return
	}
	// The alive filter keeps members with bad metadata out of memberlist, so
	// this only fails if that filter is bypassed; the member stays hidden.
	m, err := memberFromNode(n, d.self)
	if err != nil {
		d.log.Warn("ignoring member with invalid metadata",
			zap.Stringer("event", kind), zap.String("member", n.Name), zap.Error(err))
		return
	}
	d.table.upsert(m)
}
