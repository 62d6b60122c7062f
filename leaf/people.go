package leaf

import (
	"context"
	"slices"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/wire"
)

// People is what the leaf hands the people protocol's messages to (the
// node's people.Service). Its methods are called from link reader
// goroutines and must not block.
type People interface {
	// Parcel is a parcel for this leaf, from supernode via.
	Parcel(via identity.NodeID, p wire.Parcel)
	// ParcelResult is what a supernode did with a parcel this leaf sent.
	ParcelResult(r wire.ParcelResult)
	// PresenceNotify is a holder's word on a contact's presence.
	PresenceNotify(n wire.PresenceNotify)
	// Attachments says the set of supernodes the leaf is attached to
	// changed.
	Attachments()
}

// peopleMessage hands a people message from supernode a to cfg.People. It
// reports false for a type that is not one.
func (l *Leaf) peopleMessage(a *attachment, e wire.Envelope) (bool, error) {
	switch e.Type {
	case wire.TypeParcel:
		var p wire.Parcel
		if err := e.Decode(&p); err != nil {
			return true, err
		}
		if l.cfg.People != nil && wire.CheckParcel(&p) == nil && p.To == l.id {
			l.cfg.People.Parcel(a.conn.Peer(), p)
		}
	case wire.TypeParcelResult:
		var r wire.ParcelResult
		if err := e.Decode(&r); err != nil {
			return true, err
		}
		if l.cfg.People != nil && r.To == l.id {
			l.cfg.People.ParcelResult(r)
		}
	case wire.TypePresenceNotify:
		var n wire.PresenceNotify
		if err := e.Decode(&n); err != nil {
			return true, err
		}
		if l.cfg.People != nil && n.To == l.id {
			l.cfg.People.PresenceNotify(n)
		}
	default:
		return false, nil
	}
	return true, nil
}

// peopleAttachments tells cfg.People that the attachments changed.
func (l *Leaf) peopleAttachments() {
	if l.cfg.People != nil {
		l.cfg.People.Attachments()
	}
}

// Supernodes returns the IDs of the supernodes the leaf is attached to,
// oldest attachment first.
func (l *Leaf) Supernodes() []identity.NodeID {
	atts := l.Attachments()
	out := make([]identity.NodeID, len(atts))
	for i, a := range atts {
		out[i] = a.ID
	}
	return out
}

// via picks the attachment to send a people message through: one of
// prefer when the leaf is attached to it, else the oldest.
func (l *Leaf) via(prefer []identity.NodeID) *attachment {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range prefer {
		if a := l.atts[id]; a != nil {
			return a
		}
	}
	var best *attachment
	for _, a := range l.atts {
		if best == nil || a.since.Before(best.since) {
			best = a
		}
	}
	return best
}

// SendParcel sends a parcel into the network through one supernode: one of
// the recipient's when the leaf is attached to it, else its oldest.
func (l *Leaf) SendParcel(ctx context.Context, p wire.Parcel) error {
	a := l.via(p.Via)
	if a == nil {
		return ErrNotAttached
	}
	e, err := wire.New(wire.TypeParcel, &p)
	if err != nil {
		return err
	}
	return a.conn.SendWait(ctx, e)
}

// PublishPresence gives every supernode the leaf is attached to its
// presence record and who may see it.
func (l *Leaf) PublishPresence(p wire.PresencePublish) error {
	links := l.links()
	if len(links) == 0 {
		return ErrNotAttached
	}
	for _, c := range links {
		_ = c.SendBody(wire.TypePresencePublish, &p)
	}
	return nil
}

// SubscribePresence asks, through one supernode, for the presence of the
// targets, renewing the subscriptions at their holders.
func (l *Leaf) SubscribePresence(targets []wire.PresenceTarget) error {
	a := l.via(nil)
	if a == nil {
		return ErrNotAttached
	}
	for len(targets) > 0 {
		n := min(len(targets), wire.MaxSubscribe)
		if err := a.conn.SendBody(wire.TypePresenceSubscribe, &wire.PresenceSubscribe{Targets: targets[:n]}); err != nil {
			return err
		}
		targets = targets[n:]
	}
	return nil
}

// AckMail tells the supernodes via that the leaf took the stored parcels
// ids, through one supernode (which tells the others).
func (l *Leaf) AckMail(via []identity.NodeID, ids []wire.MsgID) error {
	a := l.via(via)
	if a == nil {
		return ErrNotAttached
	}
	for len(ids) > 0 {
		n := min(len(ids), wire.MaxMailAck)
		if err := a.conn.SendBody(wire.TypeMailAck, &wire.MailAck{Via: via, IDs: ids[:n]}); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// FetchMail asks the supernodes via (those it was attached to before) for
// the parcels they hold for the leaf.
func (l *Leaf) FetchMail(via []identity.NodeID) error {
	a := l.via(nil)
	if a == nil {
		return ErrNotAttached
	}
	if len(via) > wire.MaxVia {
		via = via[:wire.MaxVia]
	}
	return a.conn.SendBody(wire.TypeMailFetch, &wire.MailFetch{Via: via})
}

// LocateNode asks the network which supernodes node is attached to. It
// returns what answered within a short grace after the first answer, or
// nothing when ctx ends first.
func (l *Leaf) LocateNode(ctx context.Context, node identity.NodeID) ([]identity.NodeID, error) {
	e, err := wire.New(wire.TypeLocate, &wire.Locate{Node: node})
	if err != nil {
		return nil, err
	}
	e.TTL = wire.DefaultTTL
	ch := make(chan wire.QueryHit, 16)
	l.mu.Lock()
	l.pending[e.ID] = ch
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.pending, e.ID)
		l.mu.Unlock()
	}()
	sent := 0
	for _, c := range l.links() {
		if c.Send(e) == nil {
			sent++
		}
	}
	if sent == 0 {
		return nil, ErrNotAttached
	}
	var out []identity.NodeID
	var grace <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return out, nil
		case <-grace:
			return out, nil
		case qh := <-ch:
			for _, h := range qh.Hits {
				for _, src := range h.Sources {
					if src.Node != node {
						continue
					}
					for _, v := range src.Via {
						if !slices.Contains(out, v) && len(out) < wire.MaxVia {
							out = append(out, v)
						}
					}
				}
			}
			if grace == nil && len(out) > 0 {
				// The other supernodes of the node answer within a hop of
				// the first.
				t := time.NewTimer(200 * time.Millisecond)
				defer t.Stop()
				grace = t.C
			}
		}
	}
}
