package people

import (
	"context"
	"fmt"
	"time"

	"github.com/canopy-p2p/canopy/identity"
)

// Access is what this node grants another for its shares: the node's
// uploader asks it for every offer and browse (package node).
type Access int

// Access levels, from none to the most.
const (
	// AccessBlocked: the node is blocked; it gets nothing, not even
	// what is shared with everyone.
	AccessBlocked Access = iota - 1
	// AccessStranger: no accepted contact (a request sent or received,
	// a contact removed, or nothing at all).
	AccessStranger
	// AccessContact: an accepted contact of trust "contact".
	AccessContact
	// AccessTrusted: an accepted contact of trust "trusted".
	AccessTrusted
)

func (a Access) String() string {
	switch a {
	case AccessBlocked:
		return "blocked"
	case AccessStranger:
		return "stranger"
	case AccessContact:
		return "contact"
	case AccessTrusted:
		return "trusted"
	}
	return fmt.Sprintf("Access(%d)", int(a))
}

// AccessOf returns what the node grants id. It reads the contact's row (a
// small indexed query), so a change of trust counts from the next request
// on, without a restart.
func (s *Service) AccessOf(id identity.NodeID) (Access, error) {
	s.mu.Lock()
	c, ok, err := s.st.contact(id)
	s.mu.Unlock()
	switch {
	case err != nil:
		return AccessStranger, fmt.Errorf("people: trust of %s: %w", id.Short(), err)
	case !ok:
		return AccessStranger, nil
	case c.Trust == TrustBlocked || c.State == stateBlocked:
		return AccessBlocked, nil
	case c.State != stateContact:
		return AccessStranger, nil
	case c.Trust == TrustTrusted:
		return AccessTrusted, nil
	}
	return AccessContact, nil
}

// Where returns the supernodes through which id can be reached: for a
// contact, those its presence and letters named lately; for anyone else
// (or a contact not placed), a locate on the network, bounded by ctx and
// the locate timeout. Empty when nobody answered.
func (s *Service) Where(ctx context.Context, id identity.NodeID) ([]identity.NodeID, error) {
	now := time.Now()
	s.mu.Lock()
	c, ok, err := s.st.contact(id)
	var via []identity.NodeID
	if err == nil && ok {
		via = s.viaLocked(c, now)
	} else if f, found := s.found[id]; found && now.Sub(f.at) < foundKeep {
		via = append(via, f.via...)
	}
	net := s.net
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("people: where is %s: %w", id.Short(), err)
	}
	if len(via) > 0 || net == nil {
		return via, nil
	}
	ctx, cancel := context.WithTimeout(ctx, locateTimeout)
	defer cancel()
	via, err = net.LocateNode(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(via) > 0 {
		s.mu.Lock()
		s.found[id] = foundAt{via: via, at: time.Now()}
		s.mu.Unlock()
	}
	return via, nil
}
