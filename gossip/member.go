package gossip

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/memberlist"
)

// Member is one live member of the ring as this node sees it.
//
// There is no alive/suspect state: memberlist v0.7.0 keeps a node's state in
// a private field and never updates the exported Node.State, so the ring
// cannot report it. A suspect member is listed until it is declared dead.
type Member struct {
	// Name is the memberlist node name, the node ID in its string form.
	Name string
	// Addr is the member's gossip address, host:port.
	Addr string
	// Meta is the metadata the member publishes. It is not authenticated:
	// check Meta.NodeID on the TLS control link before trusting it.
	Meta Meta
	// Self is true for this node's own entry.
	Self bool
}

// memberFromNode decodes a memberlist node into a Member. It fails for
// metadata that does not decode or whose node ID is not the node's name.
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
type memberTable struct {
	mu      sync.Mutex
	members map[string]Member // by name; guarded by mu
}

func newMemberTable() *memberTable {
	return &memberTable{members: make(map[string]Member)}
}

func (t *memberTable) put(m Member) {
	t.mu.Lock()
	t.members[m.Name] = m
	t.mu.Unlock()
}

func (t *memberTable) remove(name string) {
	t.mu.Lock()
	delete(t.members, name)
	t.mu.Unlock()
}

func (t *memberTable) get(name string) (Member, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.members[name]
	return m, ok
}

// list returns the members sorted by name, so that callers and logs see a
// stable order.
func (t *memberTable) list() []Member {
	t.mu.Lock()
	out := make([]Member, 0, len(t.members))
	for _, m := range t.members {
		out = append(out, m)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}
