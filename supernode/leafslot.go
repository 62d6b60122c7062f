package supernode

import (
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/index"
	"github.com/canopy-p2p/canopy/routing"
	"github.com/canopy-p2p/canopy/wire"
)

// serveLeaf reads one leaf's link until it closes. It owns the link's reads.
func (s *Supernode) serveLeaf(l *leafSlot) {
	defer s.wg.Done()
	defer s.dropLeaf(l)
	// A leaf that breaks the protocol loses its link; others are unaffected.
	l.conn.Serve(s.cfg.IdleTimeout, func(e wire.Envelope) error { return s.leafMessage(l, e) })
}

func (s *Supernode) leafMessage(l *leafSlot, e wire.Envelope) error {
	switch e.Type {
	case wire.TypeIndexUpdate:
		var u wire.IndexUpdate
		if err := e.Decode(&u); err != nil {
			return err
		}
		s.paceIndex(l, u)
		return s.indexUpdate(l, u)
	case wire.TypeQuery:
		if !l.queries.Allow() {
			// Over its rate: the query is answered "slow down", the link
			// stays. A leaf that searches this fast is buggy or abusive,
			// not worth disconnecting, and an honest one must learn why it
			// got nothing.
			s.slowDown(l, e)
			return nil
		}
		s.count(func(st *Stats) { st.QueriesFromLeaves++ })
		// The origin supernode sets the budget: enough hops for the views to
		// reach the ring, up to the routing rule's reach.
		e.TTL, e.Hops = routing.OriginTTL(s.cfg.Routing, s.cfg.View, len(s.ring.Members())), 0
		return s.query(e, route{leaf: l.conn.Peer()})
	case wire.TypeSignal:
		// The rate is checked before the signal is decoded: a signal
		// over it is dropped, and refusing it should cost no more than
		// reading it.
		if !l.signals.Allow() {
			s.count(func(st *Stats) { st.SignalsLimited++ })
			s.paceRefusal(l)
			return nil
		}
		var sig wire.Signal
		if err := e.Decode(&sig); err != nil {
			return err
		}
		s.signalFromLeaf(l, sig)
		return nil
	case wire.TypeIndexAck:
		return nil
	case wire.TypeDialBack:
		var req wire.DialBack
		if err := e.Decode(&req); err != nil {
			return err
		}
		if !l.dialBacks.Allow() {
			s.count(func(st *Stats) { st.DialBacksLimited++ })
			return l.conn.SendBody(wire.TypeDialBackResult, &wire.DialBackResult{Error: "dial-back rate limit: try later"})
		}
		s.mu.Lock()
		closed := s.closed
		if !closed {
			s.wg.Add(1)
		}
		s.mu.Unlock()
		if !closed {
			go s.dialBack(l, req)
		}
		return nil
	case wire.TypeNetworkRequest:
		return s.networkRequest(l, e)
	case wire.TypeBye:
		var b wire.Bye
		_ = e.Decode(&b)
		l.conn.Close("leaf said bye: " + b.Reason)
		return nil
	default:
		if handled, err := s.peopleFromLeaf(l, e); handled {
			return err
		}
		return fmt.Errorf("unexpected %s from a leaf", e.Type)
	}
}

// indexUpdate applies a leaf's index upload and acknowledges it. Files beyond
// the per-leaf limit are refused with an error in the ack, not a disconnect: the
// leaf keeps searching and serving what fits.
func (s *Supernode) indexUpdate(l *leafSlot, u wire.IndexUpdate) error {
	owner := l.conn.Peer()
	add := make([]index.File, len(u.Add))
	for i, f := range u.Add {
		add[i] = index.File{ID: f.ID, Name: f.Name, Size: f.Size}
	}
	var err error
	if u.Reset {
		err = s.idx.Replace(owner, add)
	} else {
		for _, f := range u.Remove {
			s.idx.Remove(owner, f.ID, f.Name)
		}
		err = s.idx.Add(owner, add...)
	}
	if u.More {
		if err != nil {
			return s.ack(l, u.Rev, err)
		}
		return nil
	}
	return s.ack(l, u.Rev, err)
}

// paceIndex waits, when the leaf is over its index rate, until the update
// u may be applied: the leaf's link is read no faster, so that one leaf's
// uploads cannot keep the index busy for the others. A full upload counts
// the files it replaces, which it costs as much to remove.
func (s *Supernode) paceIndex(l *leafSlot, u wire.IndexUpdate) {
	n := len(u.Add) + len(u.Remove)
	if u.Reset {
		n += s.idx.OwnerFiles(l.conn.Peer())
	}
	if n == 0 || l.updates.AllowN(time.Now(), n) {
		return
	}
	s.count(func(st *Stats) { st.IndexUpdatesPaced++ })
	for n > 0 {
		k := min(n, l.updates.Burst())
		if l.updates.WaitN(s.ctx, k) != nil {
			return // the supernode is stopping
		}
		n -= k
	}
}

// maxRetryAfter bounds the retry-after of a "slow down": at a rate of at
// least one query in 10 s, a token is never further away.
const maxRetryAfter = 10 * time.Second

// paceRefusal takes one of leaf l's refusals at full speed and, when it has
// none left (DefaultRefusalRate), waits for one: a leaf that outruns its
// refusals is flooding, and its link is then read no faster than they come,
// so that refusing it costs little. It reports whether it waited.
func (s *Supernode) paceRefusal(l *leafSlot) bool {
	if l.refusals.Allow() {
		return false
	}
	s.count(func(st *Stats) { st.RefusalsPaced++ })
	_ = l.refusals.Wait(s.ctx) // fails only when the supernode stops
	return true
}

// slowDown answers query e of leaf l, over its rate, with a QueryHit
// without hits that says when the leaf may query again, after paceRefusal:
// no query is dropped without a word.
func (s *Supernode) slowDown(l *leafSlot, e wire.Envelope) {
	paced := s.paceRefusal(l)
	now := time.Now()
	// The time until the query limiter has a whole token again.
	wait := time.Duration((1 - l.queries.TokensAt(now)) / float64(l.queries.Limit()) * float64(time.Second))
	ms := uint32(min(max(wait, time.Millisecond), maxRetryAfter).Milliseconds())
	s.count(func(st *Stats) {
		st.QueriesLimited++
		st.SlowDowns++
	})
	if ok, held := s.lines.Allow("query rate", now); ok {
		s.log.Warn("leaf over its query rate: answered slow down",
			zap.String("leaf", l.conn.Peer().Short()), zap.Uint32("retry_after_ms", ms),
			zap.Bool("flooding", paced), zap.Uint64("lines_held_back", held))
	}
	qh, err := wire.New(wire.TypeQueryHit, &wire.QueryHit{From: s.id, RetryAfterMs: ms})
	if err != nil {
		return
	}
	qh.ID = e.ID
	_ = l.conn.Send(qh)
}

func (s *Supernode) ack(l *leafSlot, rev int64, err error) error {
	a := wire.IndexAck{Rev: rev, Files: s.idx.OwnerFiles(l.conn.Peer())}
	if err != nil {
		a.Error = err.Error()
		if ok, held := s.lines.Allow("index", time.Now()); ok {
			s.log.Warn("index update refused", zap.String("leaf", l.conn.Peer().Short()), zap.Error(err), zap.Uint64("lines_held_back", held))
		}
		// Limits are reported in the ack, not by closing the link: the
		// leaf keeps searching and serving what fitted.
		if !errors.Is(err, index.ErrOwnerFull) && !errors.Is(err, index.ErrBadFile) &&
			!errors.Is(err, index.ErrTooManyOwners) && !errors.Is(err, index.ErrIndexFull) {
			return err
		}
	}
	_ = l.conn.SendBody(wire.TypeIndexAck, &a)
	return nil
}

// dropLeaf forgets a leaf whose link closed, with its index entries, unless a
// newer link from the same leaf has replaced it.
func (s *Supernode) dropLeaf(l *leafSlot) {
	s.mu.Lock()
	current := s.leaves[l.conn.Peer()] == l
	if current {
		delete(s.leaves, l.conn.Peer())
		if s.othersLocked() == 0 && l.conn.Peer() != s.id {
			s.lastLeaf = time.Now()
		}
		if s.cfg.Relay != nil {
			// Revokes the leaf's TURN credentials and closes its
			// allocations at once: a throw-away identity that attached,
			// took credentials and left holds nothing of the relay.
			s.cfg.Relay.Detach(l.conn.Peer())
		}
	}
	s.mu.Unlock()
	if current {
		s.peopleLeafGone(l.conn.Peer())
		n := s.idx.DropOwner(l.conn.Peer())
		s.log.Info("leaf detached", zap.String("leaf", l.conn.Peer().Short()), zap.Int("files", n), zap.String("reason", l.conn.Reason()))
	}
}
