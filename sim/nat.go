package sim

import (
	"slices"

	"github.com/canopy-p2p/canopy/nat"
)

// directTable says, for every pair of NAT kinds, whether two leaves behind
// them can connect directly with ICE or need a relay. It is nat.DirectPossible
// applied to the kinds' behaviours, worked out once when the model is built:
// the simulator asks for every download, and DirectPossible tries every
// value of an unknown field and explains its answer each time it is called.
type directTable struct {
	n  int    // the largest nat.Kind, plus one
	ok []bool // ok[a*n+b] for kinds a and b
}

func newDirectTable() directTable {
	kinds := nat.Kinds()
	t := directTable{n: int(slices.Max(kinds)) + 1}
	t.ok = make([]bool, t.n*t.n)
	for _, a := range kinds {
		for _, b := range kinds {
			t.ok[int(a)*t.n+int(b)], _ = nat.DirectPossible(a.Behaviour(), b.Behaviour())
		}
	}
	return t
}

// direct reports whether leaves behind NATs a and b connect directly.
func (t directTable) direct(a, b nat.Kind) bool { return t.ok[int(a)*t.n+int(b)] }

// defaultNAT is the NAT mix of DefaultScenario: nat.Population, the one mix
// the NAT matrix test weighs its results with too (it says where each share
// comes from).
func defaultNAT() []NATKind {
	var mix []NATKind
	for _, s := range nat.Population() {
		mix = append(mix, NATKind{Kind: s.Kind.String(), Share: s.Share, Mapped: s.Mapped})
	}
	return mix
}
