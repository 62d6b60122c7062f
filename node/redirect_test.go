package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/demo"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/node"
	"github.com/canopy-p2p/canopy/promotion"
	"github.com/canopy-p2p/canopy/wire"
)

// TestLeafRedirectsOnlyToItsSupernodes: a leaf that is dialled as if it were
// a supernode refuses and names the supernodes it is attached to, not a dead
// one it still remembers. Were it to pass on every supernode it had heard of,
// orphaned leaves (which dial each other as successors when the ring has
// died) would refill each other's candidate sets with dead supernodes, none
// would ever count as orphaned, and the emergency election would not start.
func TestLeafRedirectsOnlyToItsSupernodes(t *testing.T) {
	dir := t.TempDir()
	p := emulationPolicy()
	start := func(name string, consent promotion.Consent, join []string) *node.Node {
		cfg := demo.NodeOptions(dir, name, testLog(t))
		cfg.Policy, cfg.Consent, cfg.Join = &p, consent, join
		n, err := node.Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	live := start("live", promotion.ConsentAlways, nil)
	dead := start("dead", promotion.ConsentAlways, []string{live.Control()})
	l := start("leaf", promotion.ConsentNever, []string{live.Control(), dead.Control()})
	waitFor(t, "the leaf attached to both supernodes", 20*time.Second, func() (bool, string) {
		return len(l.Leaf().Attachments()) == 2, "not yet"
	})
	dead.Kill()
	waitFor(t, "the leaf left with the live supernode", 20*time.Second, func() (bool, string) {
		atts := l.Leaf().Attachments()
		return len(atts) == 1 && atts[0].ID == live.ID(), "not yet"
	})
	known := false
	for _, k := range l.Leaf().Known() {
		known = known || k.ID == dead.ID()
	}
	if !known {
		t.Fatal("the leaf forgot the dead supernode already: the test proves nothing")
	}

	id, _ := identity.Generate()
	creds, _ := link.NewCredentials(id)
	c, err := link.Dial(context.Background(), l.Control(), creds, l.ID(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close("test over")
	if err := c.SendBody(wire.TypeHello, &wire.Hello{Role: wire.RoleLeaf}); err != nil {
		t.Fatal(err)
	}
	e, err := c.Recv(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var r wire.Refuse
	if e.Type != wire.TypeRefuse || e.Decode(&r) != nil {
		t.Fatalf("a leaf answered a hello with %s, want a refusal", e.Type)
	}
	if len(r.Supernodes) != 1 || r.Supernodes[0].ID != live.ID() || r.Supernodes[0].Control != live.Control() {
		t.Fatalf("refusal names %+v, want only the live supernode %s at %s", r.Supernodes, live.ID().Short(), live.Control())
	}
}
