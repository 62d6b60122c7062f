package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/people"
	"github.com/canopy-p2p/canopy/wire"
)

// holderAs attaches to the supernode at addr as the leaf id (with its key)
// over a raw link, so that the test can make the supernode hold, and
// serve to its subscribers, whatever record the test gives it: the same
// notify a supernode replaying an old record sends.
func holderAs(t *testing.T, addr string, id *identity.Identity) *link.Conn {
	t.Helper()
	creds, err := link.NewCredentials(id)
	if err != nil {
		t.Fatal(err)
	}
	c, err := link.Dial(context.Background(), addr, creds, identity.NodeID{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close("test over") })
	if err := c.SendBody(wire.TypeHello, &wire.Hello{Role: wire.RoleLeaf}); err != nil {
		t.Fatal(err)
	}
	for {
		e, err := c.Recv(10 * time.Second)
		if err != nil {
			t.Fatalf("no welcome: %v", err)
		}
		if e.Type == wire.TypeWelcome {
			return c
		}
	}
}

// TestPeopleReplayedPresence: a supernode serving an old signed record of
// a contact does not make the contact show. A went invisible after
// showing "online, at lunch"; B, started afresh (it holds no record of
// A), is served that record two minutes after A signed it: B shows A
// offline and counts the record expired. B is then served a fresh "busy"
// record, which shows (the supernode does serve what it is given), and
// next an older one signed seconds before it, which B refuses and counts:
// it keeps A offline rather than going back to "online, at lunch".
// Real default timers throughout.
func TestPeopleReplayedPresence(t *testing.T) {
	pn := newPeopleNet(t)
	sn := pn.supernode("sn1")
	a, b := pn.leaf("a", "sn1"), pn.leaf("b", "sn1")
	befriend(t, a, b, "")
	if _, err := a.People().SetProfile(api.ProfileSet{Text: ptr("at lunch")}); err != nil {
		t.Fatal(err)
	}
	aID := a.ID()
	view := func() api.Contact { k, _ := contactOf(pn.nodes["b"], aID); return k }
	testwait.Until(t, 15*time.Second, func() bool { k := view(); return k.Status == "online" && k.Text == "at lunch" }, "b sees a at lunch")
	if _, err := a.People().SetProfile(api.ProfileSet{Status: ptr("invisible")}); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 3*time.Second, func() bool { return view().Status == "offline" }, "b sees a offline once invisible")
	pn.stop("a")
	pn.stop("b")
	b = pn.restart("b")

	aKey, err := identity.LoadOrCreate(pn.cfgs["a"].DataDir)
	if err != nil || aKey.ID != aID {
		t.Fatalf("a's key: %v", err)
	}
	record := func(st wire.Status, text string, seq uint64, issued time.Time) wire.PresencePublish {
		r := wire.PresenceRecord{Status: st, Text: text, Seq: seq, Time: issued.UnixMilli(),
			Valid: people.DefaultPresenceValid.Milliseconds(), Supernodes: []identity.NodeID{sn.ID()}}
		if err := wire.SignPresence(aKey, &r); err != nil {
			t.Fatal(err)
		}
		return wire.PresencePublish{Record: r, Allowed: []identity.NodeID{b.ID()}}
	}
	serve := func(c *link.Conn, p wire.PresencePublish) {
		t.Helper()
		if err := c.SendBody(wire.TypePresencePublish, &p); err != nil {
			t.Fatal(err)
		}
	}

	// The old record: what A signed two minutes ago.
	c := holderAs(t, sn.Control(), aKey)
	serve(c, record(wire.StatusOnline, "at lunch", 1_000, time.Now().Add(-2*time.Minute)))
	testwait.Until(t, 15*time.Second, func() bool { return b.People().Stats().PresenceExpired >= 1 },
		"b refused the expired record: %+v", b.People().Stats())
	if k := view(); k.Status != "offline" || k.Online {
		t.Fatalf("b shows a %s (online %v) from a record signed two minutes ago", k.Status, k.Online)
	}

	// A fresh record shows; one signed just before it, served next, does not.
	before := time.Now().Add(-5 * time.Second)
	serve(c, record(wire.StatusBusy, "in a meeting", 2_001, time.Now()))
	testwait.Until(t, 5*time.Second, func() bool { k := view(); return k.Status == "busy" && k.Text == "in a meeting" }, "b sees a fresh record")
	c.Close("replay")
	testwait.Until(t, 5*time.Second, func() bool { return view().Status == "offline" }, "b sees a offline once its link went")
	replayed := b.People().Stats().PresenceReplayed
	c = holderAs(t, sn.Control(), aKey)
	serve(c, record(wire.StatusOnline, "at lunch", 2_000, before))
	testwait.Until(t, 15*time.Second, func() bool { return b.People().Stats().PresenceReplayed > replayed },
		"b refused the older record: %+v", b.People().Stats())
	if k := view(); k.Status != "offline" || k.Text != "" {
		t.Fatalf("b shows a %s %q from a record older than the one it holds", k.Status, k.Text)
	}
	// Both refusals show in the node's status (`canopy status`).
	if p := b.Status().People; p == nil || p.PresenceExpired < 1 || p.PresenceReplayed < 1 {
		t.Fatalf("b's status: %+v", p)
	}
}
