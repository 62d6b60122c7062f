package relay

import (
	"errors"
	"net"
	"sync"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Relaying a datagram costs pion/turn two system calls (read it from the
// client's socket, write it to the relay socket), and on a loaded machine
// most of the relay's CPU goes to those calls and to parking and waking the
// reading goroutine between datagrams. The relay therefore reads its sockets
// in batches (recvmmsg, through x/net) and queues the datagrams pion writes
// to relay sockets while it works through a batch, sending them together
// (sendmmsg) just before it would read again: "flush before you block".
// A datagram waits at most for the rest of its batch to be handled, a few
// microseconds. On systems without recvmmsg/sendmmsg x/net moves one datagram
// per call, which is what pion does anyway.

const (
	// relayListenBatch is how many datagrams one read of a listening socket
	// takes and how many relay writes are queued at most: 32 × 2 KiB of
	// buffers per listening socket.
	relayListenBatch = 32
	// relayAllocBatch is the same for a relay socket, of which there are
	// many and each is bounded by a per-leaf rate: 8 × 2 KiB each.
	relayAllocBatch = 8
	// relayBatchBufSize holds any datagram pion accepts (its inbound MTU is
	// 1600 bytes); longer ones are truncated, and pion drops them as such.
	relayBatchBufSize = 2048
)

// relayBatchConn is the part of x/net's ipv4.PacketConn and ipv6.PacketConn
// the relay uses.
type relayBatchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// newRelayBatchConn wraps c for batch I/O, or returns nil when c is not an
// operating-system UDP socket (an injected ListenPacket), which then gets
// one datagram per call.
func newRelayBatchConn(c net.PacketConn) relayBatchConn {
	uc, ok := c.(*net.UDPConn)
	if !ok {
		return nil
	}
	if a, ok := uc.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() != nil {
		return ipv4.NewPacketConn(uc)
	}
	return ipv6.NewPacketConn(uc)
}

// relayBatchReader hands out the datagrams of one recvmmsg one at a time.
// Only its socket's one reader goroutine uses it.
type relayBatchReader struct {
	bc      relayBatchConn
	msgs    []ipv4.Message
	n, next int
}

func newRelayBatchReader(bc relayBatchConn, size int) *relayBatchReader {
	r := &relayBatchReader{bc: bc, msgs: make([]ipv4.Message, size)}
	for i := range r.msgs {
		r.msgs[i].Buffers = [][]byte{make([]byte, relayBatchBufSize)}
	}
	return r
}

// buffered reports whether a datagram is waiting in the current batch.
func (r *relayBatchReader) buffered() bool { return r.next < r.n }

// readFrom copies the next datagram into p, reading a new batch when the
// current one is used up.
func (r *relayBatchReader) readFrom(p []byte) (int, net.Addr, error) {
	if r.next >= r.n {
		n, err := r.bc.ReadBatch(r.msgs, 0)
		if err != nil {
			r.n, r.next = 0, 0
			return 0, nil, err
		}
		r.n, r.next = n, 0
	}
	m := &r.msgs[r.next]
	r.next++
	return copy(p, m.Buffers[0][:m.N]), m.Addr, nil
}

// relaySendQueue holds the datagrams pion wrote to relay sockets while one
// listening socket's batch is handled. Its owner, the listening socket's
// read goroutine, both fills and flushes it; the mutex only guards against
// a write from elsewhere.
type relaySendQueue struct {
	mu    sync.Mutex
	items []relayQueued
	n     int
	msgs  []ipv4.Message // scratch for WriteBatch
}

type relayQueued struct {
	a    *relayAlloc
	to   *net.UDPAddr
	data []byte // owned copy: pion reuses its buffer for the next datagram
}

func newRelaySendQueue(size int) *relaySendQueue {
	q := &relaySendQueue{items: make([]relayQueued, size), msgs: make([]ipv4.Message, size)}
	for i := range q.items {
		q.items[i].data = make([]byte, 0, relayBatchBufSize)
	}
	for i := range q.msgs {
		q.msgs[i].Buffers = make([][]byte, 1)
	}
	return q
}

// add queues a datagram for a, sending the queue first if it is full.
func (q *relaySendQueue) add(a *relayAlloc, p []byte, to *net.UDPAddr) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == len(q.items) {
		q.flushLocked()
	}
	it := &q.items[q.n]
	it.a, it.to, it.data = a, to, append(it.data[:0], p...)
	q.n++
}

// flush sends everything queued.
func (q *relaySendQueue) flush() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.flushLocked()
}

// flushLocked sends the queue with one sendmmsg per run of datagrams for the
// same relay socket (with one busy client, one call for the whole queue).
func (q *relaySendQueue) flushLocked() {
	for i := 0; i < q.n; {
		a := q.items[i].a
		j := i
		for j < q.n && q.items[j].a == a {
			m := &q.msgs[j-i]
			m.Buffers[0], m.Addr = q.items[j].data, q.items[j].to
			j++
		}
		a.writeBatch(q.msgs[:j-i])
		i = j
	}
	for i := range q.n {
		q.items[i].a, q.items[i].to = nil, nil
	}
	for i := range q.msgs {
		q.msgs[i].Buffers[0], q.msgs[i].Addr = nil, nil
	}
	q.n = 0
}

// writeBatch sends ms on the relay socket. A datagram the kernel refuses is
// dropped, like a datagram lost on the way; the rest still go.
func (a *relayAlloc) writeBatch(ms []ipv4.Message) {
	for len(ms) > 0 {
		n, err := a.batch.WriteBatch(ms, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			n = max(n, 0) + 1 // skip the datagram that failed
		} else if n <= 0 {
			return
		}
		ms = ms[min(n, len(ms)):]
	}
}
