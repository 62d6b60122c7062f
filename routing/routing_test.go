package routing

import (
	"testing"

	"github.com/canopy-p2p/canopy/identity"
)

func id(b byte) identity.NodeID { var n identity.NodeID; n[0] = b; return n }

func TestForward(t *testing.T) {
	peers := []Peer{{ID: id(1), Load: 50, Linked: true}, {ID: id(2), Load: 10, Linked: true}, {ID: id(3), Load: 0}, {ID: id(4), Load: 90, Linked: true}}
	cases := []struct {
		name    string
		p       Params
		q       Query
		want    []identity.NodeID
		wantTTL uint8
	}{
		{"leaf query floods", DefaultParams(), Query{TTL: 2}, []identity.NodeID{id(1), id(2), id(3), id(4)}, 1},
		{"not back to sender", DefaultParams(), Query{TTL: 3, From: id(2)}, []identity.NodeID{id(1), id(3), id(4)}, 2},
		{"ttl 1 stops", DefaultParams(), Query{TTL: 1}, nil, 0},
		{"ttl 0 stops", DefaultParams(), Query{TTL: 0}, nil, 0},
		{"ttl clamped", Params{MaxTTL: 2, MaxFanout: 8}, Query{TTL: 200}, []identity.NodeID{id(1), id(2), id(3), id(4)}, 1},
		{"capped: linked, then least loaded", Params{MaxTTL: 4, MaxFanout: 3}, Query{TTL: 2}, []identity.NodeID{id(2), id(1), id(4)}, 1},
		{"fan-out cap", Params{MaxTTL: 4, MaxFanout: 2}, Query{TTL: 2}, []identity.NodeID{id(2), id(1)}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Forward(tc.p, tc.q, peers)
			if d.Reason == "" {
				t.Error("decision without a reason")
			}
			if len(d.Targets) != len(tc.want) {
				t.Fatalf("targets %v, want %v (%s)", d.Targets, tc.want, d.Reason)
			}
			for i := range tc.want {
				if d.Targets[i] != tc.want[i] {
					t.Fatalf("targets %v, want %v", d.Targets, tc.want)
				}
			}
			if len(tc.want) > 0 && d.TTL != tc.wantTTL {
				t.Fatalf("ttl %d, want %d", d.TTL, tc.wantTTL)
			}
		})
	}
}
