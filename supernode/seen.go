package supernode

import (
	"sync"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/wire"
)

// route says where a query came from, so that its hits can be sent back the way
// it came (Gnutella's reverse-path routing) and copies of it can be recognised.
type route struct {
	leaf identity.NodeID // set when a local leaf asked
	peer identity.NodeID // set when a ring peer forwarded it
}

// seenTable remembers recent query IDs and their reverse routes. Entries expire
// after ttl and the table never holds more than max entries (the oldest go
// first), so a flood of queries costs bounded memory.
type seenTable struct {
	ttl time.Duration
	max int

	mu    sync.Mutex // guards the fields below
	m     map[wire.MsgID]seenEntry
	order []seenKey // insertion order; a ring buffer would save copies, a slice is clearer
}

type seenEntry struct {
	r     route
	added time.Time
}

type seenKey struct {
	id    wire.MsgID
	added time.Time
}

func newSeenTable(ttl time.Duration, max int) *seenTable {
	return &seenTable{ttl: ttl, max: max, m: make(map[wire.MsgID]seenEntry)}
}

// add records id with its route and reports whether it is new. A duplicate
// keeps the first route: hits go back the way the query first arrived.
func (t *seenTable) add(id wire.MsgID, r route, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expire(now)
	if e, ok := t.m[id]; ok && now.Sub(e.added) < t.ttl {
		return false
	}
	t.m[id] = seenEntry{r: r, added: now}
	t.order = append(t.order, seenKey{id, now})
	for len(t.m) > t.max && len(t.order) > 0 {
		t.drop(t.order[0])
		t.order = t.order[1:]
	}
	return true
}

// lookup returns the route recorded for id.
func (t *seenTable) lookup(id wire.MsgID, now time.Time) (route, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[id]
	if !ok || now.Sub(e.added) >= t.ttl {
		return route{}, false
	}
	return e.r, true
}

func (t *seenTable) expire(now time.Time) {
	n := 0
	for n < len(t.order) && now.Sub(t.order[n].added) >= t.ttl {
		t.drop(t.order[n])
		n++
	}
	if n > 0 {
		t.order = append(t.order[:0], t.order[n:]...)
	}
}

// drop removes k's entry unless the ID was re-added later.
func (t *seenTable) drop(k seenKey) {
	if e, ok := t.m[k.id]; ok && e.added.Equal(k.added) {
		delete(t.m, k.id)
	}
}

func (t *seenTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}
