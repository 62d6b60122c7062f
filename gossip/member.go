package gossip

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// Member is one live, verified member of the ring as this node sees it.
//
// There is no alive/suspect state: memberlist v0.7.0 keeps a node's state in
// a private field and never updates the exported Node.State, so the ring
// cannot report it. A suspect member is listed until it is declared dead.
type Member struct {
	// Name is the memberlist node name, the node ID in its string form.
	Name string
	// Addr is the member's gossip address, host:port.
	Addr string
	// Meta is the metadata the member publishes, signed by its key; the
	// ring has verified (Config.Verify) that the member answers at
	// Meta.Control with that key.
	Meta Meta
	// Self is true for this node's own entry.
	Self bool
}

// memberFromNode decodes a memberlist node into a Member. It fails for
// metadata that does not decode or verify or whose node ID is not the node's
// name.
func memberFromNode(n *memberlist.Node, self string) (Member, error) {
	meta, err := DecodeMeta(n.Meta)
	if err != nil {
		return Member{}, err
	}
	if meta.NodeID.String() != n.Name {
		return Member{}, fmt.Errorf("%w: name %q, node ID %s", ErrNameMismatch, n.Name, meta.NodeID)
	}
	return Member{
		Name: n.Name,
		Addr: n.Address(),
		Meta: meta,
		Self: n.Name == self,
	}, nil
}

// memberTable is the ring's own copy of the membership.
//
// memberlist.Members returns pointers into memberlist's node table, whose
// address and metadata fields memberlist rewrites in place, without a lock
// the caller could take, whenever an alive message arrives: reading them is a
// data race (hashicorp/memberlist#306, still open in v0.7.0). The only place
// those fields can be read safely is memberlist's event delegate, which runs
// with memberlist's node lock held, so the delegate copies each member here
// and the ring reads only this copy.
//
// The table holds every member memberlist has, but lists (and reports in
// events) only those that are visible: this node itself, and members whose
// node ID and control address have been verified. A member becomes visible
// when memberlist reports it and it is verified, or when its verification
// completes, whichever is later; a member whose control address changes is
// hidden until the new address verifies. Each change of visibility is
// reported as an event while the table's lock is held, so events come in the
// order of the changes.
type memberTable struct {
	self     string
	verified func(Meta) bool // verifier.verified
	emit     func(Event)     // never blocks
	log      *zap.Logger

	mu      sync.Mutex
	members map[string]*tableEntry // by name; guarded by mu
}

type tableEntry struct {
	m       Member
	visible bool
}

func newMemberTable(self string, verified func(Meta) bool, emit func(Event), log *zap.Logger) *memberTable {
	return &memberTable{self: self, verified: verified, emit: emit, log: log, members: make(map[string]*tableEntry)}
}

// upsert records memberlist's current view of m and reports the change in
// visibility, if any, as an event.
func (t *memberTable) upsert(m Member) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.members[m.Name]
	wasVisible := e != nil && e.visible
	if e == nil {
		e = &tableEntry{}
		t.members[m.Name] = e
	}
	e.m = m
	e.visible = m.Self || t.verified(m.Meta)
	switch {
	case e.visible && !wasVisible:
		t.log.Info("member joined", zap.String("member", m.Name), zap.String("addr", m.Addr),
			zap.String("control", m.Meta.Control), zap.Bool("self", m.Self))
		t.emit(Event{Kind: EventJoin, Member: m})
	case e.visible && wasVisible:
		t.log.Debug("member updated", zap.String("member", m.Name), zap.Any("meta", m.Meta))
		t.emit(Event{Kind: EventUpdate, Member: m})
	case !e.visible && wasVisible:
		t.log.Info("member hidden until its new control address is verified", zap.String("member", m.Name),
			zap.String("control", m.Meta.Control))
		t.emit(Event{Kind: EventLeave, Member: m})
	}
}

// remove forgets the member called name, reporting its departure if it was
// visible.
func (t *memberTable) remove(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.members[name]
	if !ok {
		return
	}
	delete(t.members, name)
	if e.visible {
		t.log.Info("member left", zap.String("member", name), zap.String("addr", e.m.Addr))
		t.emit(Event{Kind: EventLeave, Member: e.m})
	}
}

// verifiedKey makes the member k names visible if memberlist holds it with
// that control address.
func (t *memberTable) verifiedKey(k verifyKey) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.members[k.id.String()]
	if !ok || e.visible || e.m.Meta.Control != k.control {
		return
	}
	e.visible = true
	t.log.Info("member joined", zap.String("member", e.m.Name), zap.String("addr", e.m.Addr),
		zap.String("control", e.m.Meta.Control), zap.Bool("self", false))
	t.emit(Event{Kind: EventJoin, Member: e.m})
}

func (t *memberTable) get(name string) (Member, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.members[name]
	if !ok {
		return Member{}, false
	}
	return e.m, true
}

// list returns the visible members sorted by name, so that callers and logs
// see a stable order.
func (t *memberTable) list() []Member {
	t.mu.Lock()
	out := make([]Member, 0, len(t.members))
	for _, e := range t.members {
		if e.visible {
			out = append(out, e.m)
		}
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// pending returns how many members memberlist holds that are not verified
// yet.
func (t *memberTable) pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, e := range t.members {
		if !e.visible {
			n++
		}
	}
	return n
}
