package routing

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/identity"
)

func nid(i int) identity.NodeID {
	var n identity.NodeID
	binary.BigEndian.PutUint32(n[:4], uint32(i)+1)
	return n
}

func ring(n int) []identity.NodeID {
	ids := make([]identity.NodeID, n)
	for i := range ids {
		ids[i] = nid(i)
	}
	return ids
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// overlay runs the view rule for every member of a ring, as the node does:
// each dials what its rule opens, the dialled side accepts within
// MaxInbound, and links the rule drops close on both sides.
type overlay struct {
	p     ViewParams
	ring  *Members
	links map[identity.NodeID]map[identity.NodeID]bool // a → b → a dialled
	state map[identity.NodeID]*ViewState
}

func newOverlay(p ViewParams, ids []identity.NodeID) *overlay {
	o := &overlay{p: p, ring: NewMembers(ids), links: map[identity.NodeID]map[identity.NodeID]bool{}, state: map[identity.NodeID]*ViewState{}}
	for _, id := range ids {
		o.links[id] = map[identity.NodeID]bool{}
		o.state[id] = &ViewState{}
	}
	return o
}

func (o *overlay) stateOf(id identity.NodeID) ViewState {
	st := *o.state[id]
	st.Links = nil
	for peer, out := range o.links[id] {
		st.Links = append(st.Links, ViewLink{ID: peer, Outbound: out})
	}
	slices.SortFunc(st.Links, func(a, b ViewLink) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return st
}

// step runs every member's rule once, in ring order, at now.
func (o *overlay) step(t *testing.T, now time.Time) (opened, dropped int) {
	for i := range o.ring.Len() {
		self := o.ring.Member(i)
		d := View(o.p, self, o.ring, o.stateOf(self), now)
		o.state[self].Epoch, o.state[self].Refreshed = d.Epoch, d.Refreshed
		for _, c := range d.Drop {
			if c.Reason == "" {
				t.Fatal("drop without a reason")
			}
			delete(o.links[self], c.ID)
			delete(o.links[c.ID], self)
			dropped++
		}
		for _, c := range d.Open {
			if c.Reason == "" {
				t.Fatal("open without a reason")
			}
			if _, dup := o.links[self][c.ID]; dup {
				t.Fatalf("%v opens a second link to %v", self, c.ID)
			}
			inbound := 0
			for _, out := range o.links[c.ID] {
				if !out {
					inbound++
				}
			}
			if ok, _ := AcceptInbound(o.p, inbound); !ok {
				o.state[self].Avoid = append(o.state[self].Avoid, c.ID)
				continue
			}
			o.links[self][c.ID] = true
			o.links[c.ID][self] = false
			opened++
		}
	}
	return opened, dropped
}

func (o *overlay) degrees(id identity.NodeID) (out, in int) {
	for _, d := range o.links[id] {
		if d {
			out++
		} else {
			in++
		}
	}
	return out, in
}

// eccentricity is the largest hop distance from id over the links.
func (o *overlay) eccentricity(id identity.NodeID) int {
	dist := map[identity.NodeID]int{id: 0}
	frontier := []identity.NodeID{id}
	far := 0
	for len(frontier) > 0 {
		var next []identity.NodeID
		for _, a := range frontier {
			for b := range o.links[a] {
				if _, seen := dist[b]; !seen {
					dist[b] = dist[a] + 1
					far = dist[b]
					next = append(next, b)
				}
			}
		}
		frontier = next
	}
	if len(dist) != o.ring.Len() {
		return -1 // not connected
	}
	return far
}

func TestViewSmallRingIsFullMesh(t *testing.T) {
	p := ViewParams{PeerView: 5}
	for _, n := range []int{1, 2, 5, 6} { // up to PeerView+1 members
		o := newOverlay(p, ring(n))
		o.step(t, t0)
		for _, a := range ring(n) {
			if len(o.links[a]) != n-1 {
				t.Fatalf("ring of %d: %v has %d links, want the whole ring", n, a, len(o.links[a]))
			}
			for b, out := range o.links[a] {
				if out != (bytes.Compare(a[:], b[:]) < 0) {
					t.Fatalf("ring of %d: the link %v–%v was not dialled by the smaller ID", n, a, b)
				}
			}
		}
		if op, dr := o.step(t, t0.Add(time.Hour)); op+dr != 0 {
			t.Fatalf("ring of %d: a full mesh changed (%d opened, %d dropped)", n, op, dr)
		}
	}
}

func TestViewBoundsAndConnectivity(t *testing.T) {
	p := ViewParams{PeerView: 6, MaxInbound: 12}
	ids := ring(400)
	o := newOverlay(p, ids)
	now := t0
	for range 3 {
		o.step(t, now)
		now = now.Add(time.Second)
	}
	maxIn := 0
	for _, id := range ids {
		out, in := o.degrees(id)
		if out != p.PeerView {
			t.Fatalf("%v dials %d members, want %d", id, out, p.PeerView)
		}
		if in > p.MaxInbound {
			t.Fatalf("%v holds %d inbound links, bound %d", id, in, p.MaxInbound)
		}
		maxIn = max(maxIn, in)
	}
	// A random 6-out graph on 400 nodes has diameter about
	// log(400)/log(11) ≈ 2.5; a clustered or disconnected one would not.
	for _, id := range ids[:20] {
		if e := o.eccentricity(id); e < 0 || e > 5 {
			t.Fatalf("from %v the farthest member is %d hops away (-1: disconnected)", id, e)
		}
	}
	if op, dr := o.step(t, now); op+dr != 0 {
		t.Fatalf("a full view changed before its refresh: %d opened, %d dropped", op, dr)
	}
	t.Logf("largest inbound count %d", maxIn)
}

func TestViewDeterministic(t *testing.T) {
	p := ViewParams{PeerView: 8}
	r := NewMembers(ring(1000))
	a := View(p, nid(3), r, ViewState{}, t0)
	b := View(p, nid(3), NewMembers(reversed(ring(1000))), ViewState{}, t0)
	if len(a.Open) != 8 || !slices.Equal(a.Open, b.Open) {
		t.Fatalf("same inputs, different views:\n%v\n%v", a.Open, b.Open)
	}
	c := View(p, nid(4), r, ViewState{}, t0)
	if slices.Equal(a.Open, c.Open) {
		t.Fatal("two supernodes picked the same view")
	}
}

func reversed(s []identity.NodeID) []identity.NodeID { slices.Reverse(s); return s }

func TestViewRotation(t *testing.T) {
	p := ViewParams{PeerView: 16, Rotate: 2, Refresh: time.Minute}
	r := NewMembers(ring(2000))
	self := nid(0)
	st := ViewState{}
	apply := func(d ViewDecision) {
		st.Epoch, st.Refreshed = d.Epoch, d.Refreshed
		for _, c := range d.Drop {
			st.Links = slices.DeleteFunc(st.Links, func(l ViewLink) bool { return l.ID == c.ID })
		}
		for _, c := range d.Open {
			st.Links = append(st.Links, ViewLink{ID: c.ID, Outbound: true, Since: t0})
		}
	}
	now := t0
	apply(View(p, self, r, st, now))
	first := map[identity.NodeID]bool{}
	for _, l := range st.Links {
		first[l.ID] = true
	}
	// Within a refresh interval nothing rotates.
	if d := View(p, self, r, st, now.Add(59*time.Second)); len(d.Open)+len(d.Drop) != 0 {
		t.Fatalf("rotated before the refresh: %+v", d)
	}
	for i := range 40 {
		now = now.Add(time.Minute)
		d := View(p, self, r, st, now)
		if len(d.Drop) != p.Rotate || len(d.Open) != p.Rotate {
			t.Fatalf("refresh %d: %d dropped, %d opened, want %d each", i, len(d.Drop), len(d.Open), p.Rotate)
		}
		for _, c := range d.Drop {
			if c.Reason != ReasonRotated {
				t.Fatalf("dropped for %q", c.Reason)
			}
			for _, o := range d.Open {
				if o.ID == c.ID {
					t.Fatal("a rotated-out member was picked again at once")
				}
			}
		}
		apply(d)
	}
	// 40 refreshes of 2 out of 16 leave each first link with a chance of
	// (7/8)^40 ≈ 0.5%.
	left := 0
	for _, l := range st.Links {
		if first[l.ID] {
			left++
		}
	}
	if len(st.Links) != p.PeerView || left > 2 {
		t.Fatalf("%d links, %d of the first view still there", len(st.Links), left)
	}
}

func TestViewDropsDeparted(t *testing.T) {
	p := ViewParams{PeerView: 8}
	ids := ring(300)
	self := ids[0]
	d := View(p, self, NewMembers(ids), ViewState{}, t0)
	st := ViewState{Epoch: d.Epoch, Refreshed: d.Refreshed}
	gone := map[identity.NodeID]bool{}
	for i, c := range d.Open {
		st.Links = append(st.Links, ViewLink{ID: c.ID, Outbound: true, Since: t0})
		if i < 3 {
			gone[c.ID] = true
		}
	}
	// An inbound link from a member that left, and one from a supernode
	// that is still joining (not a member yet, linked a moment ago).
	st.Links = append(st.Links, ViewLink{ID: ids[299], Since: t0}, ViewLink{ID: nid(5000), Since: t0.Add(time.Minute)})
	gone[ids[299]] = true
	left := slices.DeleteFunc(slices.Clone(ids), func(id identity.NodeID) bool { return gone[id] })
	now := t0.Add(time.Minute + time.Second)
	d = View(p, self, NewMembers(left), st, now)
	if len(d.Drop) != 4 {
		t.Fatalf("dropped %v, want the 4 departed", d.Drop)
	}
	for _, c := range d.Drop {
		if !gone[c.ID] || c.Reason != ReasonNotMember {
			t.Fatalf("dropped %v (%s)", c.ID, c.Reason)
		}
	}
	if len(d.Open) != 3 {
		t.Fatalf("opened %d to replace 3 departed", len(d.Open))
	}
	for _, c := range d.Open {
		if gone[c.ID] {
			t.Fatal("picked a departed member")
		}
	}
	// Once the joining supernode's grace is over and it still is not a
	// member, its link goes too.
	d = View(p, self, NewMembers(left), ViewState{Links: st.Links[len(st.Links)-1:]}, now.Add(MemberGrace))
	if len(d.Drop) != 1 || d.Drop[0].ID != nid(5000) {
		t.Fatalf("non-member after its grace: %+v", d.Drop)
	}
}

func TestViewInboundBound(t *testing.T) {
	p := ViewParams{PeerView: 4, MaxInbound: 6}
	if ok, _ := AcceptInbound(p, 5); !ok {
		t.Fatal("refused below the bound")
	}
	if ok, why := AcceptInbound(p, 6); ok || why == "" {
		t.Fatal("accepted at the bound")
	}
	ids := ring(100)
	st := ViewState{}
	for _, id := range ids[1:11] {
		st.Links = append(st.Links, ViewLink{ID: id})
	}
	d := View(p, ids[0], NewMembers(ids), st, t0)
	drops := 0
	for _, c := range d.Drop {
		if c.Reason == ReasonOverInbound && !c.Outbound {
			drops++
		}
	}
	if drops != 4 || len(d.Open) != 4 {
		t.Fatalf("10 inbound over a bound of 6: %d dropped, %d opened", drops, len(d.Open))
	}
	// Avoided members are not dialled.
	d = View(p, ids[0], NewMembers(ids[:6]), ViewState{Avoid: ids[1:3]}, t0)
	for _, c := range d.Open {
		if c.ID == ids[1] || c.ID == ids[2] {
			t.Fatal("dialled an avoided member")
		}
	}
	if len(d.Open) != 3 {
		t.Fatalf("opened %d of the 3 members not avoided", len(d.Open))
	}
}

func TestOriginTTL(t *testing.T) {
	d := DefaultParams()
	cases := []struct {
		v       ViewParams
		members int
		want    uint8
	}{
		{DefaultViewParams(), 1, 2},
		{DefaultViewParams(), 33, 2},
		{DefaultViewParams(), 100_000, 2}, // reach bounded by DefaultReach
		{ViewParams{PeerView: 3}, 4, 2},
		{ViewParams{PeerView: 3}, 8, 3},  // 1+3 < 8 ≤ 1+3+6
		{ViewParams{PeerView: 2}, 8, 4},  // 1+2+2+2 < 8: capped at MaxTTL
		{ViewParams{PeerView: 8}, 30, 3}, // 1+8 < 30 ≤ 1+8+56
	}
	for _, c := range cases {
		if got := OriginTTL(d, c.v, c.members); got != c.want {
			t.Errorf("view %d, %d members: TTL %d, want %d", c.v.PeerView, c.members, got, c.want)
		}
	}
	if got := OriginTTL(Params{MaxFanout: 32, MaxTTL: 4, Reach: 10_000}, DefaultViewParams(), 10_000); got != 4 {
		t.Errorf("reach 10,000: TTL %d, want 4", got)
	}
}
