package supernode

import (
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/wire"
)

func TestSeenTable(t *testing.T) {
	now := time.Unix(1000, 0)
	st := newSeenTable(time.Minute, 3)
	a, b := wire.NewMsgID(), wire.NewMsgID()
	leafA := route{leaf: identity.NodeID{1}}
	if !st.add(a, leafA, now) {
		t.Fatal("a new ID was reported as seen")
	}
	if st.add(a, route{peer: identity.NodeID{2}}, now.Add(time.Second)) {
		t.Fatal("a duplicate was reported as new")
	}
	if r, ok := st.lookup(a, now); !ok || r != leafA {
		t.Fatalf("the first route must win: %+v %v", r, ok)
	}
	// Expiry: after the TTL the ID is forgotten and may be seen anew.
	if _, ok := st.lookup(a, now.Add(time.Minute)); ok {
		t.Fatal("an expired entry was found")
	}
	if !st.add(a, leafA, now.Add(2*time.Minute)) {
		t.Fatal("an expired ID was still a duplicate")
	}
	// Bound: the oldest entries go first.
	st.add(b, leafA, now.Add(2*time.Minute))
	for i := 0; i < 5; i++ {
		st.add(wire.NewMsgID(), leafA, now.Add(2*time.Minute))
	}
	if n := st.len(); n != 3 {
		t.Fatalf("table holds %d entries, bound is 3", n)
	}
	if _, ok := st.lookup(a, now.Add(2*time.Minute)); ok {
		t.Fatal("the oldest entry survived the bound")
	}
}
