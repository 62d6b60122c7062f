package routing

import (
	"cmp"
	"math/rand/v2"
	"slices"
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

// TestForwardOrderMatchesReference checks the packed sort key against the
// order Forward documents — linked first, then least loaded, then by ID —
// on random rings, including IDs that share their leading bytes (where the
// key alone cannot tell them apart).
func TestForwardOrderMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	p := Params{MaxFanout: 8, MaxTTL: 4}
	for round := range 500 {
		n := 1 + rng.IntN(40)
		peers := make([]Peer, n)
		for i := range peers {
			var id identity.NodeID
			for j := range id {
				id[j] = byte(rng.IntN(256))
			}
			if round%3 == 0 && i > 0 {
				copy(id[:10], peers[0].ID[:10]) // same first 10 bytes
			}
			peers[i] = Peer{ID: id, Load: uint8(rng.IntN(4) * 25), Linked: rng.IntN(3) > 0}
		}
		ref := slices.Clone(peers)
		slices.SortFunc(ref, func(a, b Peer) int {
			if a.Linked != b.Linked {
				if a.Linked {
					return -1
				}
				return 1
			}
			if c := cmp.Compare(a.Load, b.Load); c != 0 {
				return c
			}
			return slices.Compare(a.ID[:], b.ID[:])
		})
		want := make([]identity.NodeID, 0, p.MaxFanout)
		for _, pe := range ref[:min(n, p.MaxFanout)] {
			want = append(want, pe.ID)
		}
		got := Forward(p, Query{TTL: 3}, peers).Targets
		if n <= p.MaxFanout {
			// Every peer gets it, in the order given.
			want = want[:0]
			for _, pe := range peers {
				want = append(want, pe.ID)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d (%d peers): targets %v, want %v", round, n, got, want)
		}
	}
}

// TestSelectFirst checks the selection against a sort, for every k, on
// random slices with many equal values.
func TestSelectFirst(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 300 {
		n := 2 + rng.IntN(70)
		s := make([]int, n)
		for i := range s {
			s[i] = rng.IntN(1 + round%20)
		}
		sorted := slices.Clone(s)
		slices.Sort(sorted)
		for k := 1; k < n; k++ {
			got := slices.Clone(s)
			selectFirst(got, k, cmp.Compare[int])
			first := slices.Clone(got[:k])
			slices.Sort(first)
			if !slices.Equal(first, sorted[:k]) {
				t.Fatalf("n=%d k=%d: first %v, want %v (input %v)", n, k, first, sorted[:k], s)
			}
		}
	}
}
