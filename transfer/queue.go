package transfer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/canopy-p2p/canopy/identity"
)

// The upload queue. An offer that finds every upload slot taken is not
// simply refused: it takes a place in a queue, and the Close that answers it
// says which ("queued 3"). The downloader asks again every QueueReask with a
// new offer; a request not asked for within queueTTL × QueueReask has been
// given up and leaves the queue. When slots free, the first requests in the
// queue are admitted: an offer is admitted when fewer requests are ahead of
// it than slots are free, so that a newcomer cannot overtake those waiting.
// A request leaves the queue when its session takes a slot.
//
// The downloader asks, the uploader never calls back: a slot that frees
// waits up to one QueueReask for its next user. That keeps the uploader
// stateless towards peers that went away and costs the queued downloader
// one signalled offer per QueueReask.

// Defaults of the upload queue.
const (
	// DefaultMaxQueue bounds the requests waiting for an upload slot, from
	// all peers: each is about a hundred bytes, and each asks again every
	// QueueReask, so 200 cost a sharer at most about 13 offers a second.
	DefaultMaxQueue = 200
	// DefaultQueueReask is how often a queued download asks again. A slot
	// that frees waits half of it on average; uploads of real files last
	// minutes, so 15 s leaves a slot idle a few percent of the time.
	DefaultQueueReask = 15 * time.Second
	// queueTTL is how many QueueReask intervals a queued request may go
	// without asking before it leaves the queue: two asks may be lost on
	// the way.
	queueTTL = 3
)

// queuedPrefix starts the reason of a Close that queued the offer; the
// position (1 first) follows.
const queuedPrefix = "queued "

// ErrQueued reports a source that queued the request: every upload slot is
// taken and others were waiting first. The download asks it again every
// QueueReask (see QueuedError).
var ErrQueued = errors.New("transfer: queued by source")

// QueuedError is the error of a source that queued the request.
type QueuedError struct {
	// Position is the request's place in the source's queue, 1 first.
	Position int
}

func (e *QueuedError) Error() string {
	return fmt.Sprintf("%v: position %d", ErrQueued, e.Position)
}

func (e *QueuedError) Unwrap() error { return ErrQueued }

// parseQueued reads a Close reason that says the offer was queued.
func parseQueued(reason string) (int, bool) {
	rest, ok := strings.CutPrefix(reason, queuedPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}

// uploadQueue is the queue of requests waiting for an upload slot, in the
// order they will be admitted: by priority (Config.UploadPriority, highest
// first), then by arrival. Guarded by Engine.mu.
type uploadQueue struct {
	entries    []queuedRequest
	max        int
	maxPerPeer int
	ttl        time.Duration
}

// queuedRequest is one request in the queue.
type queuedRequest struct {
	peer    identity.NodeID
	content [32]byte
	prio    int
	asked   time.Time
	// since is when the request first asked.
	since time.Time
}

// expire drops the requests not asked for within the queue's ttl, and
// returns how many it dropped.
func (q *uploadQueue) expire(now time.Time) int {
	kept := q.entries[:0]
	for _, e := range q.entries {
		if now.Sub(e.asked) <= q.ttl {
			kept = append(kept, e)
		}
	}
	dropped := len(q.entries) - len(kept)
	clear(q.entries[len(kept):])
	q.entries = kept
	return dropped
}

// ahead returns how many requests are ahead of peer's request for content:
// its index when it is queued, every request when it is not.
func (q *uploadQueue) ahead(peer identity.NodeID, content [32]byte) int {
	if i := q.index(peer, content); i >= 0 {
		return i
	}
	return len(q.entries)
}

func (q *uploadQueue) index(peer identity.NodeID, content [32]byte) int {
	for i, e := range q.entries {
		if e.peer == peer && e.content == content {
			return i
		}
	}
	return -1
}

// ask records that peer asked for content at now with priority prio, adding
// the request when it is new, and returns its position (1 first). ok is
// false when a new request finds the queue, or the peer's share of it
// (maxPerPeer), full.
func (q *uploadQueue) ask(peer identity.NodeID, content [32]byte, prio int, now time.Time) (pos int, ok bool) {
	if i := q.index(peer, content); i >= 0 {
		q.entries[i].asked = now
		return i + 1, true
	}
	if len(q.entries) >= q.max {
		return 0, false
	}
	mine := 0
	for _, e := range q.entries {
		if e.peer == peer {
			mine++
		}
	}
	if mine >= q.maxPerPeer {
		return 0, false
	}
	// After every request of at least its priority: arrival order among
	// equals.
	i := len(q.entries)
	for i > 0 && q.entries[i-1].prio < prio {
		i--
	}
	q.entries = append(q.entries, queuedRequest{})
	copy(q.entries[i+1:], q.entries[i:])
	q.entries[i] = queuedRequest{peer: peer, content: content, prio: prio, asked: now, since: now}
	return i + 1, true
}

// remove takes peer's request for content out of the queue, if it is there.
func (q *uploadQueue) remove(peer identity.NodeID, content [32]byte) {
	if i := q.index(peer, content); i >= 0 {
		q.entries = append(q.entries[:i], q.entries[i+1:]...)
	}
}
