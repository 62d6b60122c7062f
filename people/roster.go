package people

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/wire"
)

// What the local API calls. Node IDs arrive parsed (identity.ParseNodeID
// refuses a mistyped one before anything is sent).

// Profile returns the node's profile.
func (s *Service) Profile() api.Profile {
	s.mu.Lock()
	defer s.mu.Unlock()
	return api.Profile{ID: s.me.ID.String(), Short: s.me.ID.Short(), Nick: s.profile.Nick,
		Status: s.profile.Status.String(), Text: s.profile.Text}
}

// SetProfile changes what set names; the supernodes hear of it at once.
func (s *Service) SetProfile(set api.ProfileSet) (api.Profile, error) {
	var st wire.Status
	if set.Status != nil {
		var err error
		if st, err = wire.ParseStatus(*set.Status); err != nil {
			return api.Profile{}, err
		}
	}
	if set.Nick != nil {
		if err := checkText("nickname", *set.Nick, wire.MaxNickname); err != nil {
			return api.Profile{}, err
		}
	}
	if set.Text != nil {
		if err := checkText("status text", *set.Text, wire.MaxStatusText); err != nil {
			return api.Profile{}, err
		}
	}
	s.mu.Lock()
	err := s.st.tx(func(tx *sql.Tx) error {
		if set.Nick != nil {
			if err := setMeta(tx, "nick", *set.Nick); err != nil {
				return err
			}
		}
		if set.Status != nil {
			if err := setMeta(tx, "status", st.String()); err != nil {
				return err
			}
		}
		if set.Text != nil {
			return setMeta(tx, "text", *set.Text)
		}
		return nil
	})
	if err == nil {
		if set.Nick != nil {
			s.profile.Nick = *set.Nick
		}
		if set.Status != nil {
			s.profile.Status = st
		}
		if set.Text != nil {
			s.profile.Text = *set.Text
		}
		// Leaving invisible ends the hiding: what was held back goes.
		s.pubDirty, s.heldDirty = true, true
	}
	s.mu.Unlock()
	if err != nil {
		return api.Profile{}, err
	}
	s.poke()
	return s.Profile(), nil
}

// Contacts lists the roster with presence: contacts, requests waiting for
// an answer, and blocked nodes.
func (s *Service) Contacts() ([]api.Contact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, err := s.st.contacts()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := []api.Contact{}
	for _, c := range cs {
		if c.State == stateRemoving {
			continue
		}
		out = append(out, s.contactViewLocked(c, now))
	}
	return out, nil
}

// Add sends a contact request to id, with an optional note. A node ID has
// no check digits, so a mistyped one is most often another valid ID: Add
// first looks for the node on the network and sends nothing when no node
// with that ID answers (ErrNotFound), which also means that a request
// goes only to a node that is online and discoverable (not invisible).
// Adding a node whose own request waits here accepts it instead, and
// needs no look-up.
func (s *Service) Add(ctx context.Context, id identity.NodeID, name, note string) (api.Contact, error) {
	if id == s.me.ID {
		return api.Contact{}, ErrSelf
	}
	if id.IsZero() {
		return api.Contact{}, fmt.Errorf("people: no node ID")
	}
	if err := checkText("request message", note, wire.MaxRequestText); err != nil {
		return api.Contact{}, err
	}
	if err := checkText("name", name, wire.MaxNickname); err != nil {
		return api.Contact{}, err
	}
	s.mu.Lock()
	nick := s.profile.Nick
	_, waiting, err := s.st.request(id)
	c, known, err2 := s.st.contact(id)
	s.mu.Unlock()
	if err = errors.Join(err, err2); err != nil {
		return api.Contact{}, err
	}
	if !waiting && !(known && c.State == stateContact) {
		// Twice: a node that has just attached answers a locate only
		// once it has published its presence, a moment later.
		var via []identity.NodeID
		for try := 0; try < 2 && len(via) == 0 && ctx.Err() == nil; try++ {
			lctx, cancel := context.WithTimeout(ctx, addLocateTimeout)
			via, err = s.net.LocateNode(lctx, id)
			cancel()
			if err != nil {
				return api.Contact{}, err
			}
		}
		if len(via) == 0 {
			return api.Contact{}, fmt.Errorf("%w: %s (mistyped? a request reaches only a node that is online and not invisible; nothing was sent)", ErrNotFound, id)
		}
		s.mu.Lock()
		s.found[id] = foundAt{via: via, at: time.Now()}
		s.mu.Unlock()
	}
	now := time.Now()
	l, err := s.newLetter(wire.LetterRequest, id, now, func(l *wire.Letter) {
		l.Nick, l.Text, l.BoxKey = nick, note, s.keys.Public[:]
	})
	if err != nil {
		return api.Contact{}, err
	}
	var out api.Contact
	var events []api.Event
	s.mu.Lock()
	err = s.st.tx(func(tx *sql.Tx) error {
		c, ok, err := s.contactTx(tx, id)
		if err != nil {
			return err
		}
		if ok && c.Trust == TrustBlocked {
			return fmt.Errorf("%w: unblock it first (canopy contacts trust %s contact)", ErrBlocked, id)
		}
		var n int
		if err := tx.QueryRow(`SELECT count(*) FROM contacts WHERE state != ?`, stateBlocked).Scan(&n); err != nil {
			return err
		}
		if !ok && n >= wire.MaxAllowed {
			return fmt.Errorf("people: %s", maxContactsExceededMessage)
		}
		if ok && c.State == stateContact {
			if name != "" {
				c.Name = name
			}
			out = s.contactViewLocked(c, now)
			return putContact(tx, c)
		}
		// A request from them waiting here: adding them is accepting it.
		if r, ok, err := s.requestTx(tx, id); err != nil {
			return err
		} else if ok {
			c = contact{ID: id, Name: name, Nick: r.Nick, Trust: TrustContact, State: stateRequested, Via: r.Via, Since: now}
			evs, _, err := s.becomeContactLocked(tx, c, wire.Letter{BoxKey: r.BoxKey, Nick: r.Nick, Supernodes: r.Via}, now, false)
			if err != nil {
				return err
			}
			events = evs
			acc, err := s.newLetter(wire.LetterAccept, id, now, func(l *wire.Letter) { l.BoxKey, l.Nick = s.keys.Public[:], nick })
			if err != nil {
				return err
			}
			c, _, _ = s.contactTx(tx, id)
			out = s.contactViewLocked(c, now)
			return enqueue(tx, acc, now)
		}
		if !ok {
			c = contact{ID: id, Name: name, Trust: TrustContact, State: stateRequested, Since: now}
		} else if name != "" {
			c.Name = name
		}
		c.State = stateRequested
		if err := putContact(tx, c); err != nil {
			return err
		}
		out = s.contactViewLocked(c, now)
		return enqueue(tx, l, now)
	})
	s.mu.Unlock()
	if err != nil {
		return api.Contact{}, err
	}
	for i := range events {
		s.emit(events[i])
	}
	s.poke()
	return out, nil
}

// addLocateTimeout bounds each of Add's two locates.
const addLocateTimeout = 1500 * time.Millisecond

// Requests lists the contact requests waiting.
func (s *Service) Requests() ([]api.Request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs, err := s.st.queryRequests(``)
	if err != nil {
		return nil, err
	}
	out := []api.Request{}
	for _, r := range rs {
		out = append(out, requestView(r))
	}
	return out, nil
}

// Accept accepts id's request: id becomes a contact and hears so.
func (s *Service) Accept(id identity.NodeID) (api.Contact, error) {
	s.mu.Lock()
	_, ok, err := s.st.request(id)
	s.mu.Unlock()
	if err != nil {
		return api.Contact{}, err
	}
	if !ok {
		return api.Contact{}, fmt.Errorf("%w from %s", ErrNoRequest, id.Short())
	}
	return s.Add(context.Background(), id, "", "")
}

// Deny forgets id's request. Nothing is sent: the requester cannot tell a
// denial from a request not yet seen.
func (s *Service) Deny(id identity.NodeID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.st.db.Exec(`DELETE FROM requests WHERE id = ?`, id[:])
	if err != nil {
		return err
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return fmt.Errorf("%w from %s", ErrNoRequest, id.Short())
	}
	return nil
}

// Remove ends a contact (or withdraws a request): the node stops showing
// it presence and taking its messages, and tells it, so that it does the
// same.
func (s *Service) Remove(id identity.NodeID) error {
	now := time.Now()
	l, err := s.newLetter(wire.LetterRemove, id, now, nil)
	if err != nil {
		return err
	}
	s.mu.Lock()
	var cv api.Contact
	err = s.st.tx(func(tx *sql.Tx) error {
		c, ok, err := s.contactTx(tx, id)
		if err != nil {
			return err
		}
		if !ok || c.State == stateRemoving {
			return fmt.Errorf("%w: %s", ErrNotContact, id.Short())
		}
		cv = s.contactViewLocked(c, now)
		if c.State != stateContact {
			_, err := tx.Exec(`DELETE FROM contacts WHERE id = ?`, id[:])
			return err
		}
		c.State = stateRemoving
		if err := putContact(tx, c); err != nil {
			return err
		}
		// Letters still waiting for it go with it.
		if _, err := tx.Exec(`DELETE FROM outbox WHERE peer = ? AND kind != ?`, id[:], wire.LetterRemove); err != nil {
			return err
		}
		return enqueue(tx, l, now)
	})
	if err == nil {
		delete(s.pres, id)
		s.pubDirty, s.heldDirty = true, true
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	cv.State = "removed"
	s.emit(api.Event{Kind: "contact", Contact: &cv})
	s.poke()
	return nil
}

// SetTrust sets id's trust. Blocking a node that is no contact (a
// stranger whose requests should stop) records it as blocked and drops its
// request.
func (s *Service) SetTrust(id identity.NodeID, t Trust) (api.Contact, error) {
	if id == s.me.ID {
		return api.Contact{}, ErrSelf
	}
	now := time.Now()
	s.mu.Lock()
	var out api.Contact
	err := s.st.tx(func(tx *sql.Tx) error {
		c, ok, err := s.contactTx(tx, id)
		if err != nil {
			return err
		}
		if !ok || c.State == stateRemoving {
			if t != TrustBlocked {
				return fmt.Errorf("%w: %s (add it first)", ErrNotContact, id.Short())
			}
			c = contact{ID: id, State: stateBlocked, Since: now}
			if r, ok, _ := s.requestTx(tx, id); ok {
				c.Nick = r.Nick
			}
		}
		if c.State == stateBlocked && t != TrustBlocked {
			// A blocked stranger unblocked is a stranger again.
			_, err := tx.Exec(`DELETE FROM contacts WHERE id = ?`, id[:])
			out = s.contactViewLocked(c, now)
			out.State = "removed"
			return err
		}
		c.Trust = t
		if t == TrustBlocked {
			if _, err := tx.Exec(`DELETE FROM requests WHERE id = ?`, id[:]); err != nil {
				return err
			}
			if _, err := tx.Exec(`DELETE FROM outbox WHERE peer = ?`, id[:]); err != nil {
				return err
			}
		}
		if err := putContact(tx, c); err != nil {
			return err
		}
		out = s.contactViewLocked(c, now)
		return nil
	})
	if err == nil {
		if t == TrustBlocked {
			delete(s.pres, id)
		}
		s.pubDirty, s.subDirty, s.heldDirty = true, true, true
	}
	s.mu.Unlock()
	if err != nil {
		return api.Contact{}, err
	}
	s.emit(api.Event{Kind: "contact", Contact: &out})
	s.poke()
	return out, nil
}

// AppearOffline makes the node appear offline to one contact (on) or not.
func (s *Service) AppearOffline(id identity.NodeID, on bool) (api.Contact, error) {
	s.mu.Lock()
	c, ok, err := s.st.contact(id)
	if err == nil && (!ok || c.State != stateContact) {
		err = fmt.Errorf("%w: %s", ErrNotContact, id.Short())
	}
	if err == nil {
		c.AppearOffline = on
		err = putContact(s.st.db, c)
		s.pubDirty, s.heldDirty = true, true
	}
	var out api.Contact
	if err == nil {
		out = s.contactViewLocked(c, time.Now())
	}
	s.mu.Unlock()
	if err != nil {
		return api.Contact{}, err
	}
	s.poke()
	return out, nil
}

// Send sends a message to a contact. It is queued at once (and kept across
// restarts) and placed by the run goroutine: to the contact when it is
// online, else to its supernodes' store.
func (s *Service) Send(to identity.NodeID, text string) (api.Message, error) {
	if text == "" {
		return api.Message{}, fmt.Errorf("people: empty message")
	}
	if err := checkText("message", text, wire.MaxMessageText); err != nil {
		return api.Message{}, err
	}
	now := time.Now()
	var m message
	s.mu.Lock()
	err := s.st.tx(func(tx *sql.Tx) error {
		c, ok, err := s.contactTx(tx, to)
		if err != nil {
			return err
		}
		if !ok || c.State != stateContact {
			return fmt.Errorf("%w: %s (a message goes to contacts only; send a request with canopy contacts add)", ErrNotContact, to.Short())
		}
		if c.Trust == TrustBlocked {
			return fmt.Errorf("%w: %s", ErrBlocked, to.Short())
		}
		c.OutSeq++
		if err := putContact(tx, c); err != nil {
			return err
		}
		l, err := s.newLetter(wire.LetterMessage, to, now, func(l *wire.Letter) { l.Text, l.Seq = text, c.OutSeq })
		if err != nil {
			return err
		}
		m = message{ID: l.ID, Peer: to, Out: true, Seq: c.OutSeq, Time: now, Text: text, State: msgQueued, Updated: now}
		if err := putMessage(tx, m); err != nil {
			return err
		}
		return enqueue(tx, l, now)
	})
	s.mu.Unlock()
	if err != nil {
		return api.Message{}, err
	}
	s.poke()
	return messageView(m), nil
}

// Messages lists the newest limit messages, of one conversation when peer
// is set, oldest first.
func (s *Service) Messages(peer *identity.NodeID, limit int) ([]api.Message, error) {
	if limit <= 0 || limit > 10_000 {
		limit = DefaultHistory
	}
	s.mu.Lock()
	ms, err := s.st.messages(peer, limit)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := []api.Message{}
	for _, m := range ms {
		out = append(out, messageView(m))
	}
	return out, nil
}
