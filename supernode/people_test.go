package supernode

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/wire"
)

// person is a raw leaf link with the identity behind it, for signing.
type person struct {
	c  *link.Conn
	id *identity.Identity
}

func testPerson(t *testing.T, addr string) person {
	t.Helper()
	id, _ := identity.Generate()
	creds, _ := link.NewCredentials(id)
	c, err := link.Dial(context.Background(), addr, creds, identity.NodeID{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close("test over") })
	if err := c.SendBody(wire.TypeHello, &wire.Hello{Role: wire.RoleLeaf}); err != nil {
		t.Fatal(err)
	}
	if e, err := recv(c, 5*time.Second); err != nil || e.Type != wire.TypeWelcome {
		t.Fatalf("no welcome: %v %s", err, e.Type)
	}
	return person{c: c, id: id}
}

// next returns the next message of type typ, skipping guidance and ICE
// servers.
func (p person) next(t *testing.T, typ wire.Type) wire.Envelope {
	t.Helper()
	for {
		e, err := recv(p.c, 5*time.Second)
		if err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		switch e.Type {
		case wire.TypeGuidance, wire.TypeICEServers:
			continue
		case typ:
			return e
		}
		t.Fatalf("got %s, want %s", e.Type, typ)
	}
}

func (p person) notify(t *testing.T) wire.PresenceNotify {
	t.Helper()
	var n wire.PresenceNotify
	if err := p.next(t, wire.TypePresenceNotify).Decode(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (p person) publish(t *testing.T, st wire.Status, seq uint64, discoverable bool, allowed ...identity.NodeID) {
	t.Helper()
	r := wire.PresenceRecord{Status: st, Seq: seq, Time: time.Now().UnixMilli()}
	if err := wire.SignPresence(p.id, &r); err != nil {
		t.Fatal(err)
	}
	if err := p.c.SendBody(wire.TypePresencePublish, &wire.PresencePublish{Record: r, Allowed: allowed, Discoverable: discoverable}); err != nil {
		t.Fatal(err)
	}
}

// TestPresenceOnlyToAllowed: a holder shows a leaf's record to the
// subscribers it allows and "offline" to everyone else, the same answer as
// for a leaf that is not there; it tells the allowed of every change, and
// of the leaf leaving; a forged record is refused and counted; a locate is
// answered for an undiscoverable leaf only to those it allows.
func TestPresenceOnlyToAllowed(t *testing.T) {
	sn, addr := testSupernode(t, Config{})
	a, b, c := testPerson(t, addr), testPerson(t, addr), testPerson(t, addr)
	a.publish(t, wire.StatusOnline, 1, false, b.id.ID)
	testwait.Until(t, 5*time.Second, func() bool { return sn.PeopleStats().PresenceHeld == 1 }, "a's record held")
	target := []wire.PresenceTarget{{Node: a.id.ID, Via: []identity.NodeID{sn.ID()}}}
	for _, p := range []person{b, c} {
		if err := p.c.SendBody(wire.TypePresenceSubscribe, &wire.PresenceSubscribe{Targets: target}); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.notify(t); n.Record == nil || n.Record.Status != wire.StatusOnline || n.Record.Check() != nil {
		t.Fatalf("b, allowed, got %+v", n)
	}
	if n := c.notify(t); n.Record != nil || n.Node != a.id.ID {
		t.Fatalf("c, a stranger, got %+v", n)
	}
	// A change reaches b only.
	a.publish(t, wire.StatusAway, 2, false, b.id.ID)
	if n := b.notify(t); n.Record == nil || n.Record.Status != wire.StatusAway {
		t.Fatalf("b after away: %+v", n)
	}
	// An older record (replayed) changes nothing; a forged one is refused.
	a.publish(t, wire.StatusOnline, 1, false, b.id.ID)
	forged := wire.PresenceRecord{Status: wire.StatusOnline, Seq: 3}
	_ = wire.SignPresence(c.id, &forged)
	forged.Node = a.id.ID
	_ = a.c.SendBody(wire.TypePresencePublish, &wire.PresencePublish{Record: forged, Allowed: []identity.NodeID{b.id.ID, c.id.ID}})
	testwait.Until(t, 5*time.Second, func() bool { return sn.PeopleStats().PublishesRefused == 1 }, "the forged record refused")
	// Locate: a is not discoverable, so only the allowed b is answered.
	for _, p := range []person{c, b} {
		q, _ := wire.New(wire.TypeLocate, &wire.Locate{Node: a.id.ID})
		q.TTL = wire.DefaultTTL
		if err := p.c.Send(q); err != nil {
			t.Fatal(err)
		}
	}
	var qh wire.QueryHit
	if err := b.next(t, wire.TypeQueryHit).Decode(&qh); err != nil || len(qh.Hits) != 1 || qh.Hits[0].Sources[0].Via[0] != sn.ID() {
		t.Fatalf("b's locate: %v %+v", err, qh)
	}
	if st := sn.PeopleStats(); st.LocatesAnswered != 1 {
		t.Errorf("%d locates answered, want 1 (b's, not c's)", st.LocatesAnswered)
	}
	// Appearing offline to b: b is told offline.
	a.publish(t, wire.StatusAway, 4, false)
	if n := b.notify(t); n.Record != nil {
		t.Fatalf("b after a appears offline to it: %+v", n)
	}
	// Allowed again, then a leaves: b is told at once.
	a.publish(t, wire.StatusAway, 5, false, b.id.ID)
	if n := b.notify(t); n.Record == nil || n.Record.Seq != 5 {
		t.Fatalf("b allowed again: %+v", n)
	}
	a.c.Close("leaving")
	if n := b.notify(t); n.Record != nil {
		t.Fatalf("b after a left: %+v", n)
	}
	if st := sn.PeopleStats(); st.PresenceHeld != 0 || st.Subscriptions != 2 {
		t.Errorf("stats after a left: %+v", st)
	}
}

// TestMailbox: a parcel for a leaf that is not attached is stored when
// asked (and answered "not here" when not), pushed to the leaf when it
// attaches, and forgotten on its MailAck.
func TestMailbox(t *testing.T) {
	sn, addr := testSupernode(t, Config{})
	a := testPerson(t, addr)
	bid, _ := identity.Generate()
	send := func(store bool) wire.ParcelResult {
		t.Helper()
		p := wire.Parcel{ID: wire.NewMsgID(), To: bid.ID, Via: []identity.NodeID{sn.ID()}, Store: store, Sealed: []byte{2, 9, 9}}
		if err := a.c.SendBody(wire.TypeParcel, &p); err != nil {
			t.Fatal(err)
		}
		var r wire.ParcelResult
		if err := a.next(t, wire.TypeParcelResult).Decode(&r); err != nil || r.ID != p.ID || r.To != a.id.ID {
			t.Fatalf("result: %v %+v", err, r)
		}
		return r
	}
	if r := send(false); r.State != wire.ParcelNotHere {
		t.Fatalf("an online parcel for an absent leaf: %s", r.State)
	}
	if r := send(true); r.State != wire.ParcelStored {
		t.Fatalf("a parcel to store: %s %s", r.State, r.Reason)
	}
	a.c.Close("sender goes")
	// b attaches and gets it, with the sender stamped by the supernode.
	creds, _ := link.NewCredentials(bid)
	c, err := link.Dial(context.Background(), addr, creds, identity.NodeID{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close("test over")
	b := person{c: c, id: bid}
	if err := c.SendBody(wire.TypeHello, &wire.Hello{Role: wire.RoleLeaf}); err != nil {
		t.Fatal(err)
	}
	b.next(t, wire.TypeWelcome)
	var p wire.Parcel
	if err := b.next(t, wire.TypeParcel).Decode(&p); err != nil || p.From != a.id.ID || !p.Store {
		t.Fatalf("pushed parcel: %v %+v", err, p)
	}
	if err := c.SendBody(wire.TypeMailAck, &wire.MailAck{IDs: []wire.MsgID{p.ID}, Via: p.Via}); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 5*time.Second, func() bool { st := sn.PeopleStats(); return st.MailHeld == 0 && st.MailAcked == 1 }, "mail acknowledged")
}

// TestMailQuotas: a full mailbox refuses new parcels with the reason and
// keeps the old ones; one sender's quota does not fill another's room; old
// mail expires.
func TestMailQuotas(t *testing.T) {
	s := &Supernode{people: newPeopleState()}
	now := time.Now()
	parcel := func(from, to byte) wire.Parcel {
		return wire.Parcel{ID: wire.NewMsgID(), From: identity.NodeID{from}, To: identity.NodeID{to}, Sealed: make([]byte, 100)}
	}
	// One sender: its quota first.
	for i := range DefaultMailPerSender {
		if why := s.storeParcel(parcel(1, 2), now); why != "" {
			t.Fatalf("parcel %d refused: %s", i, why)
		}
	}
	if why := s.storeParcel(parcel(1, 2), now); why != "sender's quota at the recipient's supernode is full" {
		t.Fatalf("over the sender's quota: %q", why)
	}
	// Others fill the recipient's box.
	for i := DefaultMailPerSender; i < DefaultMailPerRecipient; i++ {
		if why := s.storeParcel(parcel(byte(3+i%200), 2), now); why != "" {
			t.Fatalf("parcel %d refused: %s", i, why)
		}
	}
	if why := s.storeParcel(parcel(250, 2), now); why != "recipient's store is full" {
		t.Fatalf("full box: %q", why)
	}
	// Another recipient still has room; a duplicate is stored once.
	p := parcel(250, 3)
	for range 2 {
		if why := s.storeParcel(p, now); why != "" {
			t.Fatalf("another recipient: %s", why)
		}
	}
	st := s.PeopleStats()
	if st.MailHeld != DefaultMailPerRecipient+1 {
		t.Fatalf("held %d", st.MailHeld)
	}
	if st.RefusedSenderQuota != 1 || st.RefusedRecipientFull != 1 || st.RefusedStoreFull != 0 {
		t.Fatalf("refusals by reason: %+v", st)
	}
	s.peopleTick(now.Add(DefaultMailExpiry + time.Second))
	if st := s.PeopleStats(); st.MailHeld != 0 || st.MailExpired != uint64(DefaultMailPerRecipient+1) || st.MailBytes != 0 {
		t.Fatalf("after expiry: %+v", st)
	}
	// The byte bound: big parcels fill a box before its count does.
	big := func(i int) wire.Parcel {
		p := parcel(byte(i), 4)
		p.Sealed = make([]byte, wire.MaxSealed)
		return p
	}
	n := 0
	for ; n < DefaultMailPerRecipient; n++ {
		if s.storeParcel(big(n), now) != "" {
			break
		}
	}
	if want := DefaultMailBytesPerRecipient / (wire.MaxSealed + 64*2); n != want {
		t.Errorf("%d big parcels stored, want %d (%s)", n, want, fmt.Sprint(DefaultMailBytesPerRecipient))
	}
}

// TestParcelFlood: a leaf sending parcels faster than its rate gets
// "refused: rate limit" answers for the excess, counted, and keeps its
// link; another leaf's parcel is stored meanwhile.
func TestParcelFlood(t *testing.T) {
	sn, addr := testSupernode(t, Config{})
	flood, honest := testPerson(t, addr), testPerson(t, addr)
	to := identity.NodeID{42}
	const n = 150
	for range n {
		p := wire.Parcel{ID: wire.NewMsgID(), To: to, Via: []identity.NodeID{sn.ID()}, Store: true, Sealed: []byte{2, 1}}
		if err := flood.c.SendBody(wire.TypeParcel, &p); err != nil {
			t.Fatal(err)
		}
	}
	p := wire.Parcel{ID: wire.NewMsgID(), To: to, Via: []identity.NodeID{sn.ID()}, Store: true, Sealed: []byte{2, 2}}
	if err := honest.c.SendBody(wire.TypeParcel, &p); err != nil {
		t.Fatal(err)
	}
	var r wire.ParcelResult
	if err := honest.next(t, wire.TypeParcelResult).Decode(&r); err != nil || r.State != wire.ParcelStored {
		t.Fatalf("the honest leaf's parcel: %v %+v", err, r)
	}
	stored, limited := 0, 0
	for range n {
		var r wire.ParcelResult
		if err := flood.next(t, wire.TypeParcelResult).Decode(&r); err != nil {
			t.Fatal(err)
		}
		switch {
		case r.State == wire.ParcelStored:
			stored++
		case r.State == wire.ParcelRefused && r.Reason != "":
			limited++
		default:
			t.Fatalf("result %+v", r)
		}
	}
	st := sn.PeopleStats()
	if limited == 0 || st.ParcelsLimited != uint64(limited) || stored+limited != n {
		t.Fatalf("%d stored, %d limited; stats %+v", stored, limited, st)
	}
}

// TestPresenceExpires: a leaf that stops publishing (gone silent, its link
// not yet timed out) is reported offline to its subscribers once its record
// is DefaultPresenceTTL old.
func TestPresenceExpires(t *testing.T) {
	sn, addr := testSupernode(t, Config{})
	a, b := testPerson(t, addr), testPerson(t, addr)
	a.publish(t, wire.StatusOnline, 1, true, b.id.ID)
	testwait.Until(t, 5*time.Second, func() bool { return sn.HoldsPresence(a.id.ID) }, "a's record held")
	if err := b.c.SendBody(wire.TypePresenceSubscribe, &wire.PresenceSubscribe{
		Targets: []wire.PresenceTarget{{Node: a.id.ID, Via: []identity.NodeID{sn.ID()}}}}); err != nil {
		t.Fatal(err)
	}
	if n := b.notify(t); n.Record == nil {
		t.Fatalf("b: %+v", n)
	}
	sn.peopleTick(time.Now().Add(DefaultPresenceTTL - time.Second))
	if !sn.HoldsPresence(a.id.ID) {
		t.Fatal("a's record expired early")
	}
	sn.peopleTick(time.Now().Add(DefaultPresenceTTL + time.Second))
	if n := b.notify(t); n.Record != nil || sn.HoldsPresence(a.id.ID) {
		t.Fatalf("after the TTL: %+v, held %v", n, sn.HoldsPresence(a.id.ID))
	}
}

// TestPresenceRenewalNotPushed: a record its owner signed again only to
// keep it valid, saying what the last one said, is not pushed to the
// subscribers (it reaches them with the answer to their next renewal); a
// record that says something new is.
func TestPresenceRenewalNotPushed(t *testing.T) {
	sn, addr := testSupernode(t, Config{})
	a, b := testPerson(t, addr), testPerson(t, addr)
	a.publish(t, wire.StatusOnline, 1, true, b.id.ID)
	testwait.Until(t, 5*time.Second, func() bool { return sn.HoldsPresence(a.id.ID) }, "a's record held")
	subscribe := func() {
		t.Helper()
		if err := b.c.SendBody(wire.TypePresenceSubscribe, &wire.PresenceSubscribe{
			Targets: []wire.PresenceTarget{{Node: a.id.ID, Via: []identity.NodeID{sn.ID()}}}}); err != nil {
			t.Fatal(err)
		}
	}
	subscribe()
	if n := b.notify(t); n.Record == nil || n.Record.Seq != 1 {
		t.Fatalf("b: %+v", n)
	}
	// Seq 2 says the same; seq 3 says away. The holder reads a's link in
	// order, so b's next notify is seq 2 if it was pushed.
	a.publish(t, wire.StatusOnline, 2, true, b.id.ID)
	a.publish(t, wire.StatusAway, 3, true, b.id.ID)
	if n := b.notify(t); n.Record == nil || n.Record.Seq != 3 || n.Record.Status != wire.StatusAway {
		t.Fatalf("b's next notify: %+v, want seq 3 (away)", n.Record)
	}
	a.publish(t, wire.StatusAway, 4, true, b.id.ID)
	testwait.Until(t, 5*time.Second, func() bool {
		sn.people.mu.Lock()
		defer sn.people.mu.Unlock()
		h := sn.people.presence[a.id.ID]
		return h != nil && h.rec.Seq == 4
	}, "seq 4 held")
	subscribe()
	if n := b.notify(t); n.Record == nil || n.Record.Seq != 4 {
		t.Fatalf("the renewal's answer: %+v, want the renewed record (seq 4)", n.Record)
	}
}
