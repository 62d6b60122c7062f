package leaf

import (
	"testing"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/wire"
)

// TestAggregateFilter: a filter drops hidden sources (a file only they offer
// is not shown, and comes back with another source later), files outside the
// size bounds or of other extensions (for good: a later hit does not bring
// them back), and what it drops is not counted.
func TestAggregateFilter(t *testing.T) {
	self, good, blocked := identity.NodeID{1}, identity.NodeID{2}, identity.NodeID{3}
	sn := identity.NodeID{10}
	src := func(n identity.NodeID, name string) wire.Source {
		return wire.Source{Node: n, Via: []identity.NodeID{sn}, Name: name}
	}
	agg := newAggregate(self)
	agg.filter = &Filter{MinSize: 10, MaxSize: 100, Ext: []string{"flac", "mp3"},
		Hide: func(n identity.NodeID) bool { return n == blocked }}
	agg.add(wire.QueryHit{From: sn, Hits: []wire.Hit{
		{ID: [32]byte{1}, Size: 50, Sources: []wire.Source{src(good, "a.FLAC")}},
		{ID: [32]byte{2}, Size: 50, Sources: []wire.Source{src(blocked, "b.flac")}},
		{ID: [32]byte{3}, Size: 5, Sources: []wire.Source{src(good, "small.flac")}},
		{ID: [32]byte{4}, Size: 500, Sources: []wire.Source{src(good, "big.flac")}},
		{ID: [32]byte{5}, Size: 50, Sources: []wire.Source{src(good, "c.ogg")}},
		{ID: [32]byte{6}, Size: 50, Sources: []wire.Source{src(good, "d.mp3"), src(blocked, "d.mp3")}},
	}})
	if agg.len() != 2 {
		t.Fatalf("%d results kept, want a.FLAC and d.mp3: %+v", agg.len(), agg.results())
	}
	for _, r := range agg.results() {
		for _, s := range r.Sources {
			if s.Node == blocked {
				t.Fatalf("a hidden source is listed for %s", r.Name)
			}
		}
	}
	// b.flac from a source that is not hidden is shown; big.flac stays out.
	agg.add(wire.QueryHit{From: sn, Hits: []wire.Hit{
		{ID: [32]byte{2}, Size: 50, Sources: []wire.Source{src(good, "b.flac")}},
		{ID: [32]byte{4}, Size: 50, Sources: []wire.Source{src(good, "big.flac")}},
	}})
	if agg.len() != 3 {
		t.Fatalf("%d results after the second batch, want 3", agg.len())
	}
}
