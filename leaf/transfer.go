package leaf

import (
	"context"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/transfer"
	"github.com/canopy-p2p/canopy/wire"
)

// sendSignal is the transfer engine's way out: it sends a signal through the
// supernode the recipient is attached to when we are attached to it too, and
// otherwise through any of ours, which relays it across the ring.
func (l *Leaf) sendSignal(ctx context.Context, s wire.Signal) error {
	l.mu.Lock()
	via := make([]identity.NodeID, 0, len(l.atts))
	for id := range l.atts {
		via = append(via, id)
	}
	a := l.atts[s.Via]
	if a == nil {
		for _, x := range l.atts {
			a = x
			break
		}
	}
	l.mu.Unlock()
	if a == nil {
		return ErrNotAttached
	}
	s.FromVia = via
	e, err := wire.New(wire.TypeSignal, &s)
	if err != nil {
		return err
	}
	return a.conn.SendWait(ctx, e)
}

// TransferStats returns the transfer engine's counters: uploads and
// downloads running, bytes by path, pieces, refused offers.
func (l *Leaf) TransferStats() transfer.Stats { return l.engine.Stats() }

// Uploads returns the uploads this node serves now and its upload queue.
func (l *Leaf) Uploads() transfer.Uploads { return l.engine.Uploads() }

// Download fetches a file from the given sources through the transfer engine.
func (l *Leaf) Download(ctx context.Context, req transfer.Request) (transfer.Result, error) {
	return l.engine.Download(ctx, req)
}
