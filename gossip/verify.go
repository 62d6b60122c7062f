package gossip

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"go.uber.org/zap"
)

// verifyKey is what a verification vouches for: that the node holding the
// key of id answers at control. A member that moves its control listener is
// verified again before it is listed with the new address.
type verifyKey struct {
	id      identity.NodeID
	control string
}

func keyOf(m Meta) verifyKey { return verifyKey{id: m.NodeID, control: m.Control} }

type verifyState uint8

const (
	verifyPending verifyState = iota
	verifyOK
	verifyFailed
)

// verifyEntry is one verification, running or settled. state, at and err are
// guarded by verifier.mu; done is closed when the entry settles.
type verifyEntry struct {
	meta  Meta
	state verifyState
	at    time.Time
	err   error
	done  chan struct{}
}

// verifier runs Config.Verify and remembers the results, a bounded number of
// them. Background verifications run on a fixed set of worker goroutines it
// owns; a stream handshake verifies on its own goroutine (verifyNow), sharing
// the result with everyone waiting for the same key.
//
// Its confirmed keys are the ring's trust anchor: the transport accepts a
// packet only from a node ID whose key a verification confirmed.
type verifier struct {
	verify   func(context.Context, Meta) error
	timeout  time.Duration
	retry    time.Duration
	self     identity.NodeID
	selfKey  ed25519.PublicKey
	refusals *refusalCounters
	log      *zap.Logger
	// onVerified is told of each key that verified, outside mu.
	onVerified func(verifyKey)

	ctx    context.Context
	cancel context.CancelFunc
	queue  chan *verifyEntry
	wg     sync.WaitGroup

	mu      sync.Mutex
	entries *lru[verifyKey, *verifyEntry]
	// keys holds the public key of every node ID with at least one entry
	// that verified, and how many such entries there are.
	keys map[identity.NodeID]keyRef
}

type keyRef struct {
	pub ed25519.PublicKey
	n   int
}

func newVerifier(cfg Config, log *zap.Logger, refusals *refusalCounters, onVerified func(verifyKey)) *verifier {
	id := cfg.Creds.ID()
	v := &verifier{
		verify:     cfg.Verify,
		timeout:    cfg.VerifyTimeout,
		retry:      cfg.VerifyRetry,
		self:       id.ID,
		selfKey:    id.Public,
		refusals:   refusals,
		log:        log,
		onVerified: onVerified,
		queue:      make(chan *verifyEntry, DefaultVerifyQueue),
		entries:    newLRU[verifyKey, *verifyEntry](cfg.VerifyCache),
		keys:       make(map[identity.NodeID]keyRef),
	}
	v.entries.keep = func(e *verifyEntry) bool { return e.state == verifyPending }
	v.entries.evicted = func(k verifyKey, e *verifyEntry) {
		if e.state == verifyOK {
			v.dropKey(k.id)
		}
	}
	v.ctx, v.cancel = context.WithCancel(context.Background())
	for range cfg.VerifyWorkers {
		v.wg.Add(1)
		go v.work()
	}
	return v
}

// close stops the workers and waits for them; a running Verify sees its
// context cancelled.
func (v *verifier) close() {
	v.cancel()
	v.wg.Wait()
}

func (v *verifier) work() {
	defer v.wg.Done()
	for {
		select {
		case <-v.ctx.Done():
			return
		case e := <-v.queue:
			v.run(e)
		}
	}
}

// run calls Verify for e and settles it.
func (v *verifier) run(e *verifyEntry) {
	ctx, cancel := context.WithTimeout(v.ctx, v.timeout)
	err := v.verify(ctx, e.meta)
	cancel()
	if err == nil && v.ctx.Err() != nil {
		err = v.ctx.Err()
	}
	v.settle(e, err)
}

func (v *verifier) settle(e *verifyEntry, err error) {
	k := keyOf(e.meta)
	v.mu.Lock()
	e.at = time.Now()
	if err == nil {
		e.state = verifyOK
		ref := v.keys[k.id]
		ref.pub = ed25519.PublicKey(e.meta.Key[:])
		ref.n++
		v.keys[k.id] = ref
	} else {
		e.state = verifyFailed
		e.err = fmt.Errorf("%w: %s at %s: %v", ErrUnverified, k.id.Short(), k.control, err)
	}
	close(e.done)
	v.mu.Unlock()
	if err != nil {
		if v.ctx.Err() != nil {
			return // cut short by close: says nothing about the node
		}
		v.refusals.refuse(reasonUnverified, zap.String("member", k.id.String()), zap.String("control", k.control), zap.Error(err))
		return
	}
	v.log.Debug("member verified", zap.String("member", k.id.String()), zap.String("control", k.control))
	v.onVerified(k)
}

// dropKey forgets one verified entry of id. The caller holds mu.
func (v *verifier) dropKey(id identity.NodeID) {
	ref := v.keys[id]
	ref.n--
	if ref.n <= 0 {
		delete(v.keys, id)
		return
	}
	v.keys[id] = ref
}

// key returns the public key of id if a verification confirmed it.
func (v *verifier) key(id identity.NodeID) (ed25519.PublicKey, bool) {
	if id == v.self {
		return v.selfKey, true
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	ref, ok := v.keys[id]
	return ref.pub, ok
}

// verified reports whether m's node ID and control address verified. It
// marks the result used, so that members the ring keeps hearing of stay
// cached.
func (v *verifier) verified(m Meta) bool {
	if m.NodeID == v.self {
		return true
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.entries.get(keyOf(m))
	return ok && e.state == verifyOK
}

// lookup returns the entry for m's key, starting a new one (pending) when
// there is none or the last failure is older than retry. started reports a
// new entry, which the caller must run. The caller holds mu.
func (v *verifier) lookup(m Meta) (e *verifyEntry, started bool, err error) {
	k := keyOf(m)
	if e, ok := v.entries.get(k); ok && (e.state != verifyFailed || time.Since(e.at) < v.retry) {
		return e, false, nil
	}
	e = &verifyEntry{meta: m, done: make(chan struct{})}
	if !v.entries.put(k, e) {
		return nil, false, fmt.Errorf("%w: %d verifications already running", ErrUnverified, v.entries.len())
	}
	return e, true, nil
}

// request starts a background verification of m unless one ran recently or
// is running. It never blocks: memberlist calls it with its node lock held.
func (v *verifier) request(m Meta) {
	if m.NodeID == v.self {
		return
	}
	v.mu.Lock()
	e, started, err := v.lookup(m)
	if err == nil && started {
		select {
		case v.queue <- e:
		default:
			err = fmt.Errorf("queue of %d full", cap(v.queue))
		}
		if err != nil {
			// Forgotten, so that the member's next alive message asks
			// again.
			v.entries.remove(keyOf(m))
		}
	}
	v.mu.Unlock()
	if err != nil {
		v.refusals.refuse(reasonVerifyQueueFull, zap.String("member", m.NodeID.String()), zap.Error(err))
	}
}

// verifyNow returns nil once m's node ID and control address are verified,
// verifying them on the caller's goroutine when no verification is cached or
// running, or waiting for the one that is. A failure recorded within retry is
// returned without dialling again.
func (v *verifier) verifyNow(ctx context.Context, m Meta) error {
	if m.NodeID == v.self {
		return nil
	}
	v.mu.Lock()
	e, started, err := v.lookup(m)
	v.mu.Unlock()
	if err != nil {
		return err
	}
	if started {
		vctx, cancel := context.WithTimeout(ctx, v.timeout)
		err := v.verify(vctx, m)
		cancel()
		v.settle(e, err)
		if err != nil && ctx.Err() != nil {
			// Cut short by the caller (a stream's deadline), which says
			// nothing about the node: not remembered as a failure.
			v.mu.Lock()
			if cur, ok := v.entries.get(keyOf(m)); ok && cur == e {
				v.entries.remove(keyOf(m))
			}
			v.mu.Unlock()
		}
	}
	select {
	case <-e.done:
	case <-ctx.Done():
		return fmt.Errorf("%w: %s: %v", ErrUnverified, m.NodeID.Short(), ctx.Err())
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if e.state == verifyOK {
		return nil
	}
	return e.err
}
