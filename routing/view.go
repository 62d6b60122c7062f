package routing

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"slices"
	"time"

	"github.com/canopy-p2p/canopy/identity"
)

// Peer-view defaults. The node's supernode config and the simulator's
// scenario both read them, so the overlay the simulator measures is the one
// the node builds.
const (
	// DefaultPeerView is how many ring members a supernode dials and keeps
	// control links to. Gnutella ultrapeers kept about 32 ultrapeer
	// neighbours (LimeWire) and gtk-gnutella 42–50; 32 is also the routing
	// core's fan-out, so one hop can use every link a supernode chose.
	DefaultPeerView = 32
	// DefaultViewRefresh is how often a supernode rotates part of its view.
	// With DefaultViewRotate it replaces its whole view in about
	// 32 × 5 min ≈ 2.7 h, shorter than a typical supernode tenure, so views
	// do not fossilise around the members that were there first.
	DefaultViewRefresh = 5 * time.Minute
	// DefaultViewRotate is how many of its dialled links a supernode replaces
	// at each refresh: one, so a refresh costs one TLS handshake and never
	// disturbs more than 1/32 of the routes.
	DefaultViewRotate = 1
	// DefaultMaxInbound is how many links dialled by other members a
	// supernode accepts. Each link has one dialler, so the mean inbound count
	// equals the view size and its spread is about √32 ≈ 6: twice the view
	// never binds in a random overlay but caps the degree of a supernode
	// that many members converge on.
	DefaultMaxInbound = 2 * DefaultPeerView
	// MemberGrace is how long a link to a peer that is not (yet) a ring
	// member is kept: a joining supernode dials its seeds before gossip
	// reports it, and memberlist spreads a join within seconds.
	MemberGrace = 30 * time.Second
)

// ViewParams bound a supernode's peer view: the ring members it keeps
// control links to. Zero fields mean their defaults.
type ViewParams struct {
	// PeerView is how many members a supernode dials (DefaultPeerView).
	// While the ring has no more than PeerView other members, the view is
	// the whole ring.
	PeerView int
	// Refresh is the interval between two rotations (DefaultViewRefresh).
	Refresh time.Duration
	// Rotate is how many dialled links one rotation replaces
	// (DefaultViewRotate).
	Rotate int
	// MaxInbound caps the links other members dialled that a supernode
	// holds (zero: twice PeerView, DefaultMaxInbound for the default view);
	// a supernode's degree is at most PeerView + MaxInbound.
	MaxInbound int
}

// DefaultViewParams returns the view bounds the node uses.
func DefaultViewParams() ViewParams {
	return ViewParams{PeerView: DefaultPeerView, Refresh: DefaultViewRefresh, Rotate: DefaultViewRotate, MaxInbound: DefaultMaxInbound}
}

// WithDefaults returns p with its zero fields set to their defaults. It is
// exported, unlike the configs' withDefaults, because the supernode and the
// simulator both fill a ViewParams they hold.
func (p ViewParams) WithDefaults() ViewParams {
	d := DefaultViewParams()
	if p.PeerView <= 0 {
		p.PeerView = d.PeerView
	}
	if p.Refresh <= 0 {
		p.Refresh = d.Refresh
	}
	if p.Rotate <= 0 {
		p.Rotate = d.Rotate
	}
	if p.MaxInbound <= 0 {
		p.MaxInbound = 2 * p.PeerView // DefaultMaxInbound for the default view
	}
	return p
}

// Ring is the ring membership as the view rule reads it: Len members,
// indexable in a stable order, possibly including the deciding supernode.
// The node gives memberlist's members sorted by ID; the simulator its
// supernode table. The rule only reads it.
type Ring interface {
	Len() int
	Member(i int) identity.NodeID
	Has(id identity.NodeID) bool
}

// Members is a Ring over a slice of IDs, with a set for Has.
type Members struct {
	ids []identity.NodeID
	set map[identity.NodeID]struct{}
}

// NewMembers returns the ring of the given IDs, sorted so that the same
// membership gives the same ring whatever order it was listed in.
func NewMembers(ids []identity.NodeID) *Members {
	s := slices.Clone(ids)
	slices.SortFunc(s, func(a, b identity.NodeID) int { return bytes.Compare(a[:], b[:]) })
	s = slices.Compact(s)
	set := make(map[identity.NodeID]struct{}, len(s))
	for _, id := range s {
		set[id] = struct{}{}
	}
	return &Members{ids: s, set: set}
}

// Len implements Ring.
func (m *Members) Len() int { return len(m.ids) }

// Member implements Ring.
func (m *Members) Member(i int) identity.NodeID { return m.ids[i] }

// Has implements Ring.
func (m *Members) Has(id identity.NodeID) bool { _, ok := m.set[id]; return ok }

// ViewLink is a control link a supernode holds to another.
type ViewLink struct {
	ID identity.NodeID
	// Outbound says this supernode dialled it: it counts in the view.
	// Links the peer dialled count against MaxInbound.
	Outbound bool
	// Since is when the link came up.
	Since time.Time
}

// ViewState is what the rule needs to remember between two calls; the
// caller keeps it and stores the Epoch and Refreshed of each decision.
type ViewState struct {
	// Links are the links up now, one per peer.
	Links []ViewLink
	// Epoch counts the rotations so far; it seeds the rule's choices.
	Epoch uint64
	// Refreshed is when the last rotation happened (zero: none yet).
	Refreshed time.Time
	// Avoid are members not to dial now (a recent dial failed or was
	// refused).
	Avoid []identity.NodeID
}

// ViewChange is one link to open or close, and why.
type ViewChange struct {
	ID       identity.NodeID
	Outbound bool
	Reason   string
}

// ViewDecision says which links to open and which to close. Links of the
// state that are in neither list are kept.
type ViewDecision struct {
	Open []ViewChange
	Drop []ViewChange
	// Epoch and Refreshed are the state to keep for the next call.
	Epoch     uint64
	Refreshed time.Time
	// Whole says the view is the whole ring (small ring).
	Whole  bool
	Reason string
}

// Reasons the view rule gives.
const (
	ReasonNotMember   = "not a ring member"
	ReasonWholeRing   = "the view is the whole ring; of each pair the smaller ID dials"
	ReasonFill        = "picked to fill the view"
	ReasonRotated     = "rotated out at refresh"
	ReasonOverView    = "more dialled links than the view holds"
	ReasonOverInbound = "more inbound links than MaxInbound"
)

// View decides which ring members supernode self keeps control links to.
//
// While the ring has at most PeerView other members, the view is the whole
// ring, as with a full mesh: of each pair the smaller ID dials, so that the
// pair ends with one link.
//
// In a larger ring a supernode dials PeerView members and accepts up to
// MaxInbound links the others dialled. A member already linked in either
// direction is never dialled again (a link carries queries both ways), so a
// pair that picked each other ends with one link too. The members to dial
// are drawn by hashing (self, Epoch, attempt) to positions in the ring:
// uniform, so the overlay is a random graph with good expansion; keyed by
// self, so supernodes do not converge on the same members; and a pure
// function of the inputs, so the simulator reproduces it. Every Refresh the
// epoch advances and Rotate dialled links, chosen by the same hash, are
// replaced, so a view formed early does not persist after the ring has
// churned. Links to members that left are dropped; the bounds are enforced
// by dropping the links the hash ranks last.
//
// The cost is O(links + PeerView) calls of Ring, not O(ring): the simulator
// runs it for thousands of supernodes.
func View(p ViewParams, self identity.NodeID, ring Ring, st ViewState, now time.Time) ViewDecision {
	p = p.WithDefaults()
	d := ViewDecision{Epoch: st.Epoch, Refreshed: st.Refreshed}
	others := ring.Len()
	if ring.Has(self) {
		others--
	}
	d.Whole = others <= p.PeerView

	linked := make(map[identity.NodeID]bool, len(st.Links)) // kept links: outbound?
	var out, in []identity.NodeID
	for _, l := range st.Links {
		if l.ID == self {
			continue
		}
		if !ring.Has(l.ID) {
			if now.Sub(l.Since) >= MemberGrace {
				d.Drop = append(d.Drop, ViewChange{l.ID, l.Outbound, ReasonNotMember})
			} else {
				linked[l.ID] = l.Outbound
			}
			continue
		}
		linked[l.ID] = l.Outbound
		if l.Outbound {
			out = append(out, l.ID)
		} else {
			in = append(in, l.ID)
		}
	}
	avoid := make(map[identity.NodeID]bool, len(st.Avoid))
	for _, a := range st.Avoid {
		avoid[a] = true
	}

	if d.Whole {
		// No rotation and no bounds to enforce: there is nobody else to
		// pick, and the whole ring fits in the view.
		for i := range ring.Len() {
			m := ring.Member(i)
			if _, ok := linked[m]; ok || m == self || avoid[m] || bytes.Compare(self[:], m[:]) > 0 {
				continue
			}
			d.Open = append(d.Open, ViewChange{m, true, ReasonWholeRing})
		}
		d.Reason = ReasonWholeRing
		if d.Refreshed.IsZero() {
			d.Refreshed = now
		}
		return d
	}

	excluded := make(map[identity.NodeID]bool) // dropped now: not to be picked again at once
	drop := func(ids []identity.NodeID, n int, outbound bool, reason string, seed uint64) []identity.NodeID {
		if n <= 0 {
			return ids
		}
		ranked := rankByHash(ids, seed)
		for _, id := range ranked[:n] {
			d.Drop = append(d.Drop, ViewChange{id, outbound, reason})
			excluded[id] = true
			delete(linked, id)
		}
		return ranked[n:]
	}
	d.Reason = "view kept"
	if d.Refreshed.IsZero() {
		d.Refreshed = now
	} else if now.Sub(d.Refreshed) >= p.Refresh {
		d.Epoch++
		d.Refreshed = now
		d.Reason = "view rotated"
		out = drop(out, min(p.Rotate, len(out)), true, ReasonRotated, seed(self, d.Epoch, 1))
	}
	out = drop(out, len(out)-p.PeerView, true, ReasonOverView, seed(self, d.Epoch, 2))
	drop(in, len(in)-p.MaxInbound, false, ReasonOverInbound, seed(self, d.Epoch, 3))

	need := p.PeerView - len(out)
	if need <= 0 {
		return d
	}
	n := ring.Len()
	picked := make(map[identity.NodeID]bool, need)
	try := func(m identity.NodeID) {
		if _, ok := linked[m]; ok || m == self || avoid[m] || excluded[m] || picked[m] {
			return
		}
		picked[m] = true
		d.Open = append(d.Open, ViewChange{m, true, ReasonFill})
		need--
	}
	s := seed(self, d.Epoch, 0)
	// Random probes find a free member in a few tries while the view is a
	// small share of the ring; the scan after them, from the last probe's
	// position, settles the rare case of a ring almost all linked.
	probes, pos := 8*need+32, 0
	for i := 0; need > 0 && i < probes; i++ {
		hi, _ := bits.Mul64(mix(s+uint64(i)*0x9e3779b97f4a7c15), uint64(n))
		pos = int(hi)
		try(ring.Member(pos))
	}
	for i := 0; need > 0 && i < n; i++ {
		try(ring.Member((pos + i) % n))
	}
	if len(d.Open) > 0 && d.Reason == "view kept" {
		d.Reason = "view filled"
	}
	return d
}

// AcceptInbound says whether a supernode holding inbound links dialled by
// other members accepts one more, and why.
func AcceptInbound(p ViewParams, inbound int) (bool, string) {
	p = p.WithDefaults()
	if inbound >= p.MaxInbound {
		return false, ReasonOverInbound
	}
	return true, "inbound link accepted"
}

// DefaultReach is how many supernodes a search from a leaf is meant to reach
// (Params.Reach): 1 + the default fan-out, what the origin and one hop reach
// today, so that the message cost of a search in a large ring stays bounded
// as it was when every supernode linked the whole ring.
const DefaultReach = 33

// OriginTTL is the hop budget the origin supernode gives a leaf's query:
// the smallest TTL whose flood over views of the given size reaches
// min(ring members, Reach) supernodes, counting one hop of min(MaxFanout,
// PeerView) peers and (fan-out − 1) new peers per hop after it, capped at
// MaxTTL. In a ring that fits in one view it is 2, one hop.
func OriginTTL(p Params, v ViewParams, members int) uint8 {
	v = v.WithDefaults()
	reach := p.Reach
	if reach <= 0 {
		reach = DefaultReach
	}
	want := min(members, reach)
	f := v.PeerView
	if p.MaxFanout > 0 {
		f = min(f, p.MaxFanout)
	}
	maxTTL := max(p.MaxTTL, 2)
	got, layer := 1+f, f
	ttl := uint8(2)
	for got < want && ttl < maxTTL {
		layer *= max(f-1, 1)
		got += layer
		ttl++
	}
	return ttl
}

// rankByHash orders ids by a hash of (seed, id), highest first.
func rankByHash(ids []identity.NodeID, seed uint64) []identity.NodeID {
	// Each ID's hash is computed once, not at every comparison: the
	// simulator ranks every supernode's links at every refresh.
	type hashed struct {
		h  uint64
		id identity.NodeID
	}
	hs := make([]hashed, len(ids))
	for i, id := range ids {
		hs[i] = hashed{h: mix(seed ^ key(id)), id: id}
	}
	slices.SortFunc(hs, func(a, b hashed) int {
		if a.h != b.h {
			if a.h > b.h {
				return -1
			}
			return 1
		}
		return bytes.Compare(a.id[:], b.id[:])
	})
	s := make([]identity.NodeID, len(hs))
	for i := range hs {
		s[i] = hs[i].id
	}
	return s
}

// seed derives the rule's hash seed for one supernode, epoch and purpose.
func seed(self identity.NodeID, epoch, purpose uint64) uint64 {
	return mix(key(self) ^ mix(epoch*4+purpose+1))
}

// key folds a node ID to 64 bits, all of it: the simulator's IDs differ only
// in their first bytes, real ones everywhere.
func key(id identity.NodeID) uint64 {
	var k uint64
	for i := 0; i < len(id); i += 8 {
		k = mix(k ^ binary.BigEndian.Uint64(id[i:]))
	}
	return k
}

// mix is the splitmix64 finaliser: a fast bijection whose output bits all
// depend on every input bit.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
