package node_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/demo"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/node"
	"github.com/canopy-p2p/canopy/promotion"
	"github.com/canopy-p2p/canopy/wire"
)

// peopleNet is a loopback network for the people tests: supernodes and
// leaves started by name, each leaf attached to one supernode it names, so
// that people on different supernodes must cross the ring.
type peopleNet struct {
	t     testing.TB
	dir   string
	log   *zap.Logger
	nodes map[string]*node.Node
	cfgs  map[string]node.Config
}

func newPeopleNet(t testing.TB) *peopleNet {
	pn := &peopleNet{t: t, dir: t.TempDir(), log: zap.NewNop(), nodes: map[string]*node.Node{}, cfgs: map[string]node.Config{}}
	if os.Getenv("CANOPY_PEOPLE_LOG") != "" {
		pn.log, _ = zap.NewDevelopment()
	}
	t.Cleanup(func() {
		// Leaves first, then supernodes.
		for _, leaves := range []bool{true, false} {
			for name, n := range pn.nodes {
				if (n.Role() == node.RoleLeaf) == leaves {
					n.Close()
					delete(pn.nodes, name)
				}
			}
		}
	})
	return pn
}

func (pn *peopleNet) supernode(name string, join ...string) *node.Node {
	cfg := demo.NodeOptions(pn.dir, name, pn.log)
	cfg.Consent = promotion.ConsentAlways
	cfg.RoleInterval = node.NoRoleLoop
	for _, j := range join {
		cfg.Join = append(cfg.Join, pn.nodes[j].Control())
	}
	return pn.start(name, cfg)
}

func (pn *peopleNet) leafConfig(name, sn string) node.Config {
	cfg := demo.NodeOptions(pn.dir, name, pn.log)
	cfg.Consent = promotion.ConsentNever
	cfg.RoleInterval = node.NoRoleLoop
	cfg.Attach = 1
	cfg.Join = []string{pn.nodes[sn].Control()}
	return cfg
}

func (pn *peopleNet) leaf(name, sn string) *node.Node {
	n := pn.start(name, pn.leafConfig(name, sn))
	pn.published(name, sn)
	return n
}

// published waits until leaf name is attached to supernode sn and its
// presence is held there.
func (pn *peopleNet) published(name, sn string) {
	pn.t.Helper()
	n, s := pn.nodes[name], pn.nodes[sn].Supernode()
	testwait.Until(pn.t, 10*time.Second, func() bool { return len(n.Leaf().Attachments()) > 0 && s.HoldsPresence(n.ID()) },
		"%s attached to %s with its presence held", name, sn)
}

func (pn *peopleNet) start(name string, cfg node.Config) *node.Node {
	pn.t.Helper()
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		pn.t.Fatalf("start %s: %v", name, err)
	}
	pn.nodes[name], pn.cfgs[name] = n, cfg
	return n
}

func (pn *peopleNet) stop(name string) {
	if err := pn.nodes[name].Close(); err != nil {
		pn.t.Logf("close %s: %v", name, err)
	}
	delete(pn.nodes, name)
}

func (pn *peopleNet) restart(name string) *node.Node {
	n := pn.start(name, pn.cfgs[name])
	testwait.Until(pn.t, 10*time.Second, func() bool { return len(n.Leaf().Attachments()) > 0 }, "%s attached again", name)
	return n
}

func contactOf(n *node.Node, id identity.NodeID) (api.Contact, bool) {
	cs, err := n.People().Contacts()
	if err != nil {
		return api.Contact{}, false
	}
	for _, c := range cs {
		if c.ID == id.String() {
			return c, true
		}
	}
	return api.Contact{}, false
}

func messageState(n *node.Node, id string) string {
	ms, err := n.People().Messages(nil, 0)
	if err != nil {
		return "error: " + err.Error()
	}
	for _, m := range ms {
		if m.ID == id {
			return m.State + " " + m.Reason
		}
	}
	return "missing"
}

func ptr[T any](v T) *T { return &v }

// befriend makes a and b contacts: a asks, b accepts.
func befriend(t testing.TB, a, b *node.Node, note string) {
	t.Helper()
	if _, err := a.People().Add(context.Background(), b.ID(), "", note); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, func() bool {
		rs, _ := b.People().Requests()
		return len(rs) == 1 && rs[0].ID == a.ID().String() && rs[0].Text == note
	}, "b sees a's request")
	if _, err := b.People().Accept(a.ID()); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, func() bool {
		ca, ok1 := contactOf(a, b.ID())
		cb, ok2 := contactOf(b, a.ID())
		return ok1 && ok2 && ca.State == "contact" && cb.State == "contact"
	}, "a and b are contacts on both sides")
}

// TestPeopleLoopback is issue 11's loopback scenario with the default
// timers: two supernodes, A on one and B on the other. A adds B, B
// accepts; A goes away and B sees it within 3 s; a message is delivered
// within 3 s; B stops and A's next message is stored at B's supernode; A
// stops; B starts and receives it; A starts and sees it delivered. A
// stranger C sees nothing of A's presence, its request waits, and once A
// blocks C its requests are dropped.
func TestPeopleLoopback(t *testing.T) {
	pn := newPeopleNet(t)
	pn.supernode("sn1")
	pn.supernode("sn2", "sn1")
	testwait.Until(t, 15*time.Second, func() bool {
		return len(pn.nodes["sn1"].Supernode().Members()) == 2 && len(pn.nodes["sn2"].Supernode().Members()) == 2
	}, "a ring of two")
	a := pn.leaf("a", "sn1")
	b := pn.leaf("b", "sn2")
	if _, err := a.People().SetProfile(api.ProfileSet{Nick: ptr("alice")}); err != nil {
		t.Fatal(err)
	}

	// A mistyped ID is refused before anything is sent.
	typo := []byte(b.ID().String())
	typo[51] = 'z'
	if _, err := identity.ParseNodeID(string(typo)); err == nil {
		t.Fatalf("a mistyped node ID parsed")
	}

	befriend(t, a, b, "hi, it's alice")
	if c, _ := contactOf(b, a.ID()); c.Nick != "alice" {
		t.Errorf("b knows a as %q, want alice", c.Nick)
	}
	testwait.Until(t, 15*time.Second, func() bool {
		c, _ := contactOf(b, a.ID())
		return c.Online && c.Status == "online"
	}, "b sees a online")

	// Presence: away reaches B within 3 s.
	changed := time.Now()
	if _, err := a.People().SetProfile(api.ProfileSet{Status: ptr("away"), Text: ptr("lunch")}); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 3*time.Second, func() bool {
		c, _ := contactOf(b, a.ID())
		return c.Status == "away" && c.Text == "lunch"
	}, "b sees a away within 3 s")
	t.Logf("presence change reached the contact in %v", time.Since(changed).Round(time.Millisecond))
	if c, _ := contactOf(b, a.ID()); len(c.Where) != 1 || c.Where[0] != pn.nodes["sn1"].ID().String() {
		t.Errorf("b sees a held at %v, want sn1", c.Where)
	}

	// A message to an online contact: delivered within 3 s.
	sent := time.Now()
	m, err := a.People().Send(b.ID(), "hello bob")
	if err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 3*time.Second, func() bool { return messageState(a, m.ID) == "delivered " }, "delivered within 3 s")
	t.Logf("online message delivered in %v", time.Since(sent).Round(time.Millisecond))
	got, _ := b.People().Messages(ptr(a.ID()), 0)
	if len(got) != 1 || got[0].Text != "hello bob" || got[0].Dir != "in" {
		t.Fatalf("b's conversation with a: %+v", got)
	}

	// B stops: A sees it offline, and A's next message is stored.
	pn.stop("b")
	testwait.Until(t, 5*time.Second, func() bool {
		c, _ := contactOf(a, b.ID())
		return !c.Online && c.Status == "offline" && c.LastSeen != nil
	}, "a sees b offline")
	m2, err := a.People().Send(b.ID(), "are you there?")
	if err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, func() bool { return messageState(a, m2.ID) == "stored " }, "stored while b is offline: %s", messageState(a, m2.ID))
	if st := pn.nodes["sn2"].Supernode().PeopleStats(); st.MailHeld != 1 {
		t.Errorf("b's supernode holds %d parcels, want 1", st.MailHeld)
	}

	// A stops; B starts and receives the message though A is gone.
	pn.stop("a")
	b = pn.restart("b")
	testwait.Until(t, 10*time.Second, func() bool {
		ms, _ := b.People().Messages(ptr(a.ID()), 0)
		return len(ms) == 2 && ms[1].Text == "are you there?"
	}, "b received the stored message")
	// B's receipt waits at A's supernode; A starts and sees "delivered".
	testwait.Until(t, 10*time.Second, func() bool { return pn.nodes["sn1"].Supernode().PeopleStats().MailHeld == 1 }, "b's receipt stored for a")
	a = pn.restart("a")
	testwait.Until(t, 10*time.Second, func() bool { return messageState(a, m2.ID) == "delivered " }, "a sees delivered: %s", messageState(a, m2.ID))
	if ms, _ := b.People().Messages(ptr(a.ID()), 0); len(ms) != 2 {
		t.Errorf("b has %d messages from a after the restarts, want 2 (no duplicate)", len(ms))
	}

	// A stranger C, on A's supernode: its subscription to A's presence is
	// answered without a record.
	c := pn.leaf("c", "sn1")
	if err := c.Leaf().SubscribePresence([]wire.PresenceTarget{{Node: a.ID(), Via: a.Leaf().Supernodes()}}); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 5*time.Second, func() bool { return c.People().Stats().NotContactNotifies > 0 }, "the stranger's subscription answered")
	if st := c.People().Stats(); st.StrangerRecords != 0 {
		t.Errorf("the stranger was shown %d presence records of a", st.StrangerRecords)
	}
	// Its message waits as a request.
	if _, err := c.People().Send(a.ID(), "hi"); err == nil {
		t.Errorf("c sent a message to a, who is not its contact")
	}
	if _, err := c.People().Add(context.Background(), a.ID(), "", "buy my stuff"); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, func() bool {
		rs, _ := a.People().Requests()
		return len(rs) == 1 && rs[0].ID == c.ID().String()
	}, "c's request waits at a")
	if _, err := a.People().SetTrust(c.ID(), "blocked"); err != nil {
		t.Fatal(err)
	}
	blocked := a.People().Stats().Blocked
	if err := c.People().Remove(a.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.People().Add(context.Background(), a.ID(), "", "again"); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, func() bool { return a.People().Stats().Blocked > blocked }, "c's request dropped as blocked")
	if rs, _ := a.People().Requests(); len(rs) != 0 {
		t.Errorf("a has requests after blocking c: %+v", rs)
	}
}

// TestPeopleAppearOfflineAndInvisible: appearing offline to one contact
// shows offline to it within 3 s while another still sees online; its
// messages still arrive (stored at the supernode the hidden user is
// attached to, which hands them over at once) but stay "stored" at the
// sender, as for a user who is offline: the receipt is held back, across
// a restart, and goes when the user stops hiding. Invisible does the same
// to every contact.
func TestPeopleAppearOfflineAndInvisible(t *testing.T) {
	pn := newPeopleNet(t)
	pn.supernode("sn1")
	pn.supernode("sn2", "sn1")
	testwait.Until(t, 15*time.Second, func() bool { return len(pn.nodes["sn2"].Supernode().Members()) == 2 }, "a ring of two")
	a, b, c := pn.leaf("a", "sn1"), pn.leaf("b", "sn2"), pn.leaf("c", "sn1")
	befriend(t, a, b, "")
	befriend(t, a, c, "")
	aID := a.ID()
	sees := func(viewer *node.Node, status string) func() bool {
		return func() bool { k, _ := contactOf(viewer, aID); return k.Status == status }
	}
	testwait.Until(t, 15*time.Second, sees(b, "online"), "b sees a online")
	testwait.Until(t, 15*time.Second, sees(c, "online"), "c sees a online")
	has := func(n *node.Node, id string) func() bool {
		return func() bool { return messageState(n, id) == "received " }
	}

	if _, err := a.People().AppearOffline(b.ID(), true); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 3*time.Second, sees(b, "offline"), "b sees a offline within 3 s")
	if k, _ := contactOf(c, a.ID()); k.Status != "online" {
		t.Fatalf("c sees a %s, want online", k.Status)
	}
	m, err := b.People().Send(a.ID(), "are you hiding?")
	if err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, has(a, m.ID), "a has b's message")
	testwait.Until(t, 5*time.Second, func() bool { return a.People().Stats().AnswersHeld == 1 }, "a holds its receipt back")
	// A fence: c's message to a is delivered, so a receipt a had sent b
	// with b's message would have arrived by now.
	mc, err := c.People().Send(a.ID(), "fence")
	if err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, func() bool { return messageState(c, mc.ID) == "delivered " }, "c's message delivered: %s", messageState(c, mc.ID))
	if st := messageState(b, m.ID); st != "stored " {
		t.Fatalf("b's message to a, who appears offline to b, is %q, want stored", st)
	}

	// The held receipt survives a restart of a, which still hides.
	pn.stop("a")
	testwait.Until(t, 5*time.Second, sees(c, "offline"), "c sees a offline once it stopped")
	a = pn.restart("a")
	testwait.Until(t, 15*time.Second, func() bool {
		for _, sn := range a.Leaf().Supernodes() {
			for _, n := range pn.nodes {
				if n.ID() == sn && n.Supernode() != nil && n.Supernode().HoldsPresence(aID) {
					return true
				}
			}
		}
		return false
	}, "a's presence held after its restart: attached to %v", a.Leaf().Supernodes())
	if w := a.People().Stats().AnswersWaiting; w != 1 {
		t.Fatalf("a holds %d answers back after its restart, want 1", w)
	}
	if st := messageState(b, m.ID); st != "stored " {
		t.Fatalf("b's message is %q after a's restart, want stored", st)
	}
	if k, _ := contactOf(b, a.ID()); k.Status != "offline" {
		t.Fatalf("b sees a %s after its restart, want offline", k.Status)
	}
	if _, err := a.People().AppearOffline(b.ID(), false); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, func() bool { return messageState(b, m.ID) == "delivered " }, "b's message delivered once a stops hiding: %s", messageState(b, m.ID))
	testwait.Until(t, 3*time.Second, func() bool { return a.People().Stats().AnswersWaiting == 0 }, "a's held answers sent")
	testwait.Until(t, 40*time.Second, sees(b, "online"), "b sees a online again")
	// c too: a may have come back on the other supernode, which c finds
	// with a locate (a contact that is invisible cannot be found, and c's
	// message would wait at the supernode a was on before).
	testwait.Until(t, 40*time.Second, sees(c, "online"), "c sees a online again")
	if ms, _ := a.People().Messages(ptr(b.ID()), 0); len(ms) != 1 {
		t.Fatalf("a has %d messages from b, want 1 (the re-sent copy is a duplicate)", len(ms))
	}

	if _, err := a.People().SetProfile(api.ProfileSet{Status: ptr("invisible")}); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 3*time.Second, sees(c, "offline"), "c sees a offline within 3 s of a going invisible")
	testwait.Until(t, 3*time.Second, sees(b, "offline"), "b sees a offline too")
	mi, err := c.People().Send(a.ID(), "anyone there?")
	if err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, has(a, mi.ID), "a has c's message while invisible")
	testwait.Until(t, 10*time.Second, func() bool { return messageState(c, mi.ID) == "stored " }, "c's message stored: %s", messageState(c, mi.ID))

	if _, err := a.People().AppearOffline(b.ID(), true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.People().SetProfile(api.ProfileSet{Status: ptr("busy")}); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 30*time.Second, sees(c, "busy"), "c sees a busy: %+v", func() api.Contact { k, _ := contactOf(c, a.ID()); return k }())
	testwait.Until(t, 10*time.Second, func() bool { return messageState(c, mi.ID) == "delivered " }, "c's message delivered once a is visible: %s", messageState(c, mi.ID))
	if k, _ := contactOf(b, a.ID()); k.Status != "offline" {
		t.Fatalf("b sees a %s though a appears offline to it again", k.Status)
	}
}

// TestPeopleCrashes: a sender killed right after queueing messages loses
// none (they are in its database before Send returns) and sends each
// once; a mailbox supernode that crashes with the messages loses none
// either: the sender still holds them, finds the recipient where it
// attached next (a locate) and delivers them. Real time: about 40 s (the
// locate of a contact that went offline waits the retry interval).
func TestPeopleCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the default locate retry interval")
	}
	pn := newPeopleNet(t)
	pn.supernode("sn1")
	pn.supernode("sn2", "sn1")
	testwait.Until(t, 15*time.Second, func() bool { return len(pn.nodes["sn2"].Supernode().Members()) == 2 }, "a ring of two")
	a, b := pn.leaf("a", "sn1"), pn.leaf("b", "sn2")
	befriend(t, a, b, "")
	pn.stop("b")
	testwait.Until(t, 5*time.Second, func() bool { k, _ := contactOf(a, b.ID()); return !k.Online }, "a sees b offline")
	var ids []string
	for i := range 5 {
		m, err := a.People().Send(b.ID(), fmt.Sprintf("message %d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	if err := a.Kill(); err != nil {
		t.Logf("kill: %v", err)
	}
	delete(pn.nodes, "a")
	a = pn.restart("a")
	testwait.Until(t, 15*time.Second, func() bool {
		for _, id := range ids {
			if messageState(a, id) != "stored " {
				return false
			}
		}
		return true
	}, "every message stored after a's crash: %s", messageState(a, ids[4]))
	if held := pn.nodes["sn2"].Supernode().PeopleStats().MailHeld; held != 5 {
		t.Fatalf("b's supernode holds %d parcels, want 5", held)
	}
	// b's supernode crashes with them; b comes back on the other.
	if err := pn.nodes["sn2"].Kill(); err != nil {
		t.Logf("kill sn2: %v", err)
	}
	delete(pn.nodes, "sn2")
	cfg := pn.cfgs["b"]
	cfg.Join = []string{pn.nodes["sn1"].Control()}
	pn.cfgs["b"] = cfg
	b = pn.restart("b")
	testwait.Until(t, 60*time.Second, func() bool {
		for _, id := range ids {
			if messageState(a, id) != "delivered " {
				return false
			}
		}
		return true
	}, "every message delivered after the mailbox crashed: %s", messageState(a, ids[0]))
	ms, _ := b.People().Messages(ptr(a.ID()), 0)
	if len(ms) != 5 {
		t.Fatalf("b has %d messages, want 5 (none lost, none twice)", len(ms))
	}
	for i, m := range ms {
		if m.Text != fmt.Sprintf("message %d", i) {
			t.Errorf("message %d is %q: out of order", i, m.Text)
		}
	}
}
