package leaf

import (
	"testing"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/wire"
)

func TestAggregateMergesSources(t *testing.T) {
	self, a, b := identity.NodeID{1}, identity.NodeID{2}, identity.NodeID{3}
	sn1, sn2 := identity.NodeID{10}, identity.NodeID{11}
	file := [32]byte{9}
	other := [32]byte{8}
	agg := newAggregate(self)
	agg.add(wire.QueryHit{From: sn1, Hits: []wire.Hit{
		{ID: file, Name: "x", Size: 5, Sources: []wire.Source{{Node: a, Via: []identity.NodeID{sn1}}, {Node: self, Via: []identity.NodeID{sn1}}}},
	}})
	// The same file from another supernode, with a known and a new source.
	touched := agg.add(wire.QueryHit{From: sn2, Hits: []wire.Hit{
		{ID: file, Name: "x", Size: 5, Sources: []wire.Source{{Node: a, Via: []identity.NodeID{sn2}}, {Node: b, Via: []identity.NodeID{sn2}}}},
		{ID: other, Name: "y", Size: 1, Sources: []wire.Source{{Node: b, Via: []identity.NodeID{sn2}}}},
	}})
	if len(touched) != 2 {
		t.Fatalf("touched %d results", len(touched))
	}
	res := agg.results()
	if len(res) != 2 || res[0].ID != file {
		t.Fatalf("results %+v", res)
	}
	r := res[0]
	if !r.Local || len(r.Sources) != 2 {
		t.Fatalf("merged result %+v: want our own copy marked local and two other sources", r)
	}
	if r.Sources[0].Node != a || len(r.Sources[0].Via) != 2 {
		t.Fatalf("source a should be reachable via both supernodes: %+v", r.Sources[0])
	}
}
