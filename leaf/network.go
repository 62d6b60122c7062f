package leaf

import (
	"context"
	"fmt"
	"time"

	"github.com/canopy-p2p/canopy/transfer"
	"github.com/canopy-p2p/canopy/wire"
)

// Network asks one supernode the leaf is attached to (the oldest) for its
// view of the ring: the members with their load, and totals. The answer
// comes over the control link, bounded (wire.CheckNetworkInfo). A
// supernode that finds the leaf asking too often answers with RetryAfterMs
// and nothing else, which is returned as a SlowDownError.
func (l *Leaf) Network(ctx context.Context) (wire.NetworkInfo, error) {
	a := l.via(nil)
	if a == nil {
		return wire.NetworkInfo{}, ErrNotAttached
	}
	e, err := wire.New(wire.TypeNetworkRequest, &wire.NetworkRequest{})
	if err != nil {
		return wire.NetworkInfo{}, err
	}
	ch := make(chan wire.NetworkInfo, 1)
	l.mu.Lock()
	l.netAsks[e.ID] = ch
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.netAsks, e.ID)
		l.mu.Unlock()
	}()
	if err := a.conn.SendWait(ctx, e); err != nil {
		return wire.NetworkInfo{}, err
	}
	select {
	case n := <-ch:
		if n.RetryAfterMs > 0 {
			return n, &SlowDownError{RetryAfter: time.Duration(n.RetryAfterMs) * time.Millisecond}
		}
		return n, nil
	case <-a.conn.Done():
		return wire.NetworkInfo{}, fmt.Errorf("leaf: supernode %s went before it answered", a.conn.Peer().Short())
	case <-ctx.Done():
		return wire.NetworkInfo{}, ctx.Err()
	}
}

// networkInfo hands a supernode's answer to the Network call waiting for it;
// an answer out of its bounds breaks the protocol (the link closes), one
// nobody waits for is dropped.
func (l *Leaf) networkInfo(e wire.Envelope) error {
	var n wire.NetworkInfo
	if err := e.Decode(&n); err != nil {
		return err
	}
	if err := wire.CheckNetworkInfo(&n); err != nil {
		return err
	}
	l.mu.Lock()
	ch := l.netAsks[e.ID]
	l.mu.Unlock()
	if ch != nil {
		select {
		case ch <- n:
		default:
		}
	}
	return nil
}

// Browse lists what peer shares with this node, through the transfer engine
// (transfer.Engine.Browse).
func (l *Leaf) Browse(ctx context.Context, peer wire.Source, maxEntries int) (transfer.BrowseResult, error) {
	return l.engine.Browse(ctx, peer, maxEntries)
}
