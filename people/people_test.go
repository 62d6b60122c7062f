package people

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/wire"
)

func newID(t testing.TB) *identity.Identity {
	t.Helper()
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestSealOpen: a boxed letter opens only with the recipient's key and
// unaltered; a plain one only for a request.
func TestSealOpen(t *testing.T) {
	alice, bob, eve := newID(t), newID(t), newID(t)
	ka, _ := DeriveBoxKeys(alice)
	kb, _ := DeriveBoxKeys(bob)
	ke, _ := DeriveBoxKeys(eve)
	if again, _ := DeriveBoxKeys(alice); again.Public != ka.Public {
		t.Fatal("box keys differ between derivations of one identity")
	}
	l := wire.Letter{Kind: wire.LetterMessage, To: bob.ID, ID: wire.NewMsgID(), Time: time.Now().UnixMilli(), Text: "secret"}
	if err := wire.SignLetter(alice, &l); err != nil {
		t.Fatal(err)
	}
	sealed, err := sealLetter(&l, ka, kb.Public[:])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sealed), "secret") {
		t.Fatal("the text is readable in the sealed letter")
	}
	got, boxed, key, err := openLetter(sealed, kb)
	if err != nil || !boxed || got.Text != "secret" || string(key) != string(ka.Public[:]) {
		t.Fatalf("open: %v boxed=%v %+v", err, boxed, got)
	}
	if _, _, _, err := openLetter(sealed, ke); !errors.Is(err, ErrBadLetter) {
		t.Errorf("eve opened bob's letter: %v", err)
	}
	for i := range []int{0, 30, len(sealed) - 1} {
		bad := append([]byte(nil), sealed...)
		bad[[]int{0, 30, len(sealed) - 1}[i]] ^= 1
		if _, _, _, err := openLetter(bad, kb); !errors.Is(err, ErrBadLetter) {
			t.Errorf("a letter changed at byte %d opened: %v", i, err)
		}
	}
	// A message sent plain is refused: only requests travel so.
	plain, err := sealLetter(&l, ka, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := openLetter(plain, kb); !errors.Is(err, ErrBadLetter) {
		t.Errorf("a plain message was taken: %v", err)
	}
	req := wire.Letter{Kind: wire.LetterRequest, To: bob.ID, ID: wire.NewMsgID(), BoxKey: ka.Public[:], Text: "hi"}
	if err := wire.SignLetter(alice, &req); err != nil {
		t.Fatal(err)
	}
	if plain, err = sealLetter(&req, ka, nil); err != nil {
		t.Fatal(err)
	}
	if got, boxed, _, err := openLetter(plain, kb); err != nil || boxed || got.Text != "hi" {
		t.Errorf("a plain request: %v %v", err, boxed)
	}
	// A boxed accept whose signed box key is not the one it was sealed
	// with is refused (someone else's key in a box of their own).
	acc := wire.Letter{Kind: wire.LetterAccept, To: bob.ID, ID: wire.NewMsgID(), BoxKey: ke.Public[:]}
	if err := wire.SignLetter(alice, &acc); err != nil {
		t.Fatal(err)
	}
	s2, _ := sealLetter(&acc, ka, kb.Public[:])
	if _, _, _, err := openLetter(s2, kb); !errors.Is(err, ErrBadLetter) {
		t.Errorf("an accept sealed with another key than it names: %v", err)
	}
}

// FuzzOpenLetter: any sealed bytes open to a checked letter or an error.
func FuzzOpenLetter(f *testing.F) {
	alice, bob := newID(f), newID(f)
	ka, _ := DeriveBoxKeys(alice)
	kb, _ := DeriveBoxKeys(bob)
	l := wire.Letter{Kind: wire.LetterMessage, To: bob.ID, ID: wire.NewMsgID(), Text: "x"}
	_ = wire.SignLetter(alice, &l)
	s, _ := sealLetter(&l, ka, kb.Public[:])
	f.Add(s)
	r := wire.Letter{Kind: wire.LetterRequest, To: bob.ID, ID: wire.NewMsgID(), BoxKey: ka.Public[:]}
	_ = wire.SignLetter(alice, &r)
	p, _ := sealLetter(&r, ka, nil)
	f.Add(p)
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, _, _, err := openLetter(b, kb)
		if err == nil && got.Check() != nil {
			t.Fatal("openLetter returned a letter that fails Check")
		}
	})
}

// TestDamagedDatabaseRefused: a people.db that is not a database stops
// Open with ErrDamaged and is left as it is: it holds the user's contacts.
func TestDamagedDatabaseRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "people.db")
	junk := []byte("this is not a database, but it may be all the user has")
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Config{Identity: newID(t), DBPath: path})
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open of a damaged people.db: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != string(junk) {
		t.Fatal("the damaged file was changed")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("Open left files beside the damaged one: %v", entries)
	}
}

// memNet connects Services in memory for the protocol's logic: a parcel
// goes straight to its recipient when it is "online", else it is stored
// (or refused, as refuse says), and the sender hears the result.
type memNet struct {
	me     identity.NodeID
	sn     identity.NodeID
	world  map[identity.NodeID]*Service
	online map[identity.NodeID]bool
	self   *Service
	sent   []wire.Parcel
	stored map[identity.NodeID][]wire.Parcel
	refuse string
	// fetches are the MailFetch calls, under mu (the run goroutine makes
	// them when a test starts the service).
	mu      sync.Mutex
	fetches [][]identity.NodeID
}

func (m *memNet) SendParcel(ctx context.Context, p wire.Parcel) error {
	p.From, p.FromVia = m.me, []identity.NodeID{m.sn}
	m.sent = append(m.sent, p)
	result := func(st wire.ParcelState, reason string) {
		for _, v := range p.Via {
			m.self.handleResult(wire.ParcelResult{ID: p.ID, To: m.me, From: v, State: st, Reason: reason})
		}
	}
	switch {
	case m.refuse != "":
		result(wire.ParcelRefused, m.refuse)
	case m.online[p.To] && m.world[p.To] != nil:
		m.world[p.To].handleParcel(m.sn, p)
		result(wire.ParcelHanded, "")
	case p.Store:
		m.stored[p.To] = append(m.stored[p.To], p)
		result(wire.ParcelStored, "")
	default:
		result(wire.ParcelNotHere, "")
	}
	return nil
}
func (m *memNet) PublishPresence(wire.PresencePublish) error    { return nil }
func (m *memNet) SubscribePresence([]wire.PresenceTarget) error { return nil }
func (m *memNet) AckMail([]identity.NodeID, []wire.MsgID) error { return nil }
func (m *memNet) FetchMail(via []identity.NodeID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fetches = append(m.fetches, slices.Clone(via))
	return nil
}
func (m *memNet) Supernodes() []identity.NodeID { return []identity.NodeID{m.sn} }
func (m *memNet) LocateNode(context.Context, identity.NodeID) ([]identity.NodeID, error) {
	return []identity.NodeID{{9}}, nil
}

// world is a few Services on a memNet, driven by the test: pump places
// what waits in every outbox.
type world struct {
	t      *testing.T
	svcs   map[identity.NodeID]*Service
	nets   map[identity.NodeID]*memNet
	online map[identity.NodeID]bool
}

func newWorld(t *testing.T, n int) (*world, []*Service) {
	w := &world{t: t, svcs: map[identity.NodeID]*Service{}, nets: map[identity.NodeID]*memNet{}, online: map[identity.NodeID]bool{}}
	var out []*Service
	for range n {
		id := newID(t)
		s, err := Open(Config{Identity: id, DBPath: filepath.Join(t.TempDir(), "people.db")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		m := &memNet{me: id.ID, sn: identity.NodeID{byte(len(out) + 1)}, world: w.svcs, online: w.online, self: s,
			stored: map[identity.NodeID][]wire.Parcel{}}
		s.net, s.ctx = m, context.Background()
		w.svcs[id.ID], w.nets[id.ID], w.online[id.ID] = s, m, true
		out = append(out, s)
	}
	return w, out
}

// settle pumps every outbox until nothing more is sent.
func (w *world) settle() {
	for range 10 {
		before := 0
		for _, m := range w.nets {
			before += len(m.sent)
		}
		for id, s := range w.svcs {
			if w.online[id] {
				s.pump(time.Now())
				s.wg.Wait() // locates
				for len(s.inbox) > 0 {
					(<-s.inbox)()
				}
				s.pump(time.Now())
			}
		}
		after := 0
		for _, m := range w.nets {
			after += len(m.sent)
		}
		if after == before {
			return
		}
	}
}

func befriendMem(t *testing.T, w *world, a, b *Service) {
	t.Helper()
	if _, err := a.Add(context.Background(), b.me.ID, "", "hi"); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if _, err := b.Accept(a.me.ID); err != nil {
		t.Fatal(err)
	}
	w.settle()
	for _, p := range [][2]*Service{{a, b}, {b, a}} {
		c, ok, _ := p[0].st.contact(p[1].me.ID)
		if !ok || c.State != stateContact || len(c.BoxKey) != 32 {
			t.Fatalf("not contacts after accept: %+v", c)
		}
	}
}

// TestRequestsCollapseDenySendsNothing: two requests from one node are one
// request (counted twice); denying it sends nothing back; a blocked node's
// requests are dropped.
func TestRequestsCollapseDenySendsNothing(t *testing.T) {
	w, s := newWorld(t, 2)
	a, b := s[0], s[1]
	for range 2 {
		if _, err := a.Add(context.Background(), b.me.ID, "bob", "hello"); err != nil {
			t.Fatal(err)
		}
		w.settle()
	}
	rs, _ := b.Requests()
	if len(rs) != 1 || rs[0].Count != 2 || rs[0].Text != "hello" {
		t.Fatalf("b's requests: %+v", rs)
	}
	sentByB := len(w.nets[b.me.ID].sent)
	if err := b.Deny(a.me.ID); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if n := len(w.nets[b.me.ID].sent); n != sentByB {
		t.Errorf("denying sent %d parcels", n-sentByB)
	}
	if err := b.Deny(a.me.ID); !errors.Is(err, ErrNoRequest) {
		t.Errorf("second deny: %v", err)
	}
	if _, err := b.SetTrust(a.me.ID, TrustBlocked); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Add(context.Background(), b.me.ID, "", "again"); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if rs, _ := b.Requests(); len(rs) != 0 || b.Stats().Blocked != 1 {
		t.Errorf("a blocked node's request: %+v, blocked %d", rs, b.Stats().Blocked)
	}
	if _, err := a.Add(context.Background(), a.me.ID, "", ""); !errors.Is(err, ErrSelf) {
		t.Errorf("adding oneself: %v", err)
	}
}

// TestMessageStates: online, a message is delivered (the receipt); offline
// it is stored; a full store makes it failed with the store's reason; a
// stored message is delivered when its recipient takes it, though its
// sender is offline, and the sender sees delivered when it returns.
func TestMessageStates(t *testing.T) {
	w, s := newWorld(t, 2)
	a, b := s[0], s[1]
	befriendMem(t, w, a, b)
	state := func(svc *Service, id string) string {
		ms, _ := svc.Messages(nil, 0)
		for _, m := range ms {
			if m.ID == id {
				return m.State + " " + m.Reason
			}
		}
		return "missing"
	}
	// b shows online to a.
	a.mu.Lock()
	rec := wire.PresenceRecord{Status: wire.StatusOnline, Seq: 1, Time: time.Now().UnixMilli(), Supernodes: []identity.NodeID{w.nets[b.me.ID].sn}}
	_ = wire.SignPresence(b.me, &rec)
	a.mu.Unlock()
	a.handleNotify(wire.PresenceNotify{Node: b.me.ID, To: a.me.ID, From: w.nets[b.me.ID].sn, Record: &rec})

	m1, err := a.Send(b.me.ID, "one")
	if err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := state(a, m1.ID); got != "delivered " {
		t.Fatalf("online message: %s", got)
	}

	// b goes offline.
	w.online[b.me.ID] = false
	a.handleNotify(wire.PresenceNotify{Node: b.me.ID, To: a.me.ID, From: w.nets[b.me.ID].sn})
	m2, _ := a.Send(b.me.ID, "two")
	w.settle()
	if got := state(a, m2.ID); got != "stored " {
		t.Fatalf("offline message: %s", got)
	}
	w.nets[a.me.ID].refuse = "recipient's store is full"
	m3, _ := a.Send(b.me.ID, "three")
	w.settle()
	if got := state(a, m3.ID); got != "failed recipient's store is full" {
		t.Fatalf("refused by a full store: %s", got)
	}
	// a goes offline; b returns and takes its mail.
	w.online[a.me.ID], w.online[b.me.ID] = false, true
	for _, p := range w.nets[a.me.ID].stored[b.me.ID] {
		b.handleParcel(w.nets[b.me.ID].sn, p)
		b.handleParcel(w.nets[b.me.ID].sn, p) // a duplicate is dropped
	}
	w.settle()
	got, _ := b.Messages(&a.me.ID, 0)
	if len(got) != 2 || got[0].Text != "one" || got[1].Text != "two" {
		t.Fatalf("b's conversation: %+v", got)
	}
	// b's receipt waits for a; a returns and takes it.
	w.online[a.me.ID] = true
	receipts := w.nets[b.me.ID].stored[a.me.ID]
	if len(receipts) == 0 {
		t.Fatal("b stored no receipt for a")
	}
	for _, p := range receipts {
		a.handleParcel(w.nets[a.me.ID].sn, p)
	}
	if got := state(a, m2.ID); got != "delivered " {
		t.Fatalf("after the receipt: %s", got)
	}
	// Order per conversation: by the sender's time and sequence.
	seqs := []uint64{}
	ms, _ := b.st.messages(&a.me.ID, 10)
	for _, m := range ms {
		seqs = append(seqs, m.Seq)
	}
	if len(seqs) != 2 || seqs[0] >= seqs[1] {
		t.Errorf("sequence numbers %v", seqs)
	}
}

// TestRemoveEndsBothSides: removing a contact removes it on the other side
// too, and its messages then wait as a request.
func TestRemoveEndsBothSides(t *testing.T) {
	w, s := newWorld(t, 2)
	a, b := s[0], s[1]
	befriendMem(t, w, a, b)
	if err := a.Remove(b.me.ID); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if _, ok, _ := a.st.contact(b.me.ID); ok {
		t.Error("a still has b after removing it")
	}
	if _, ok, _ := b.st.contact(a.me.ID); ok {
		t.Error("b still has a after a removed it")
	}
	if _, err := b.Send(a.me.ID, "hello?"); !errors.Is(err, ErrNotContact) {
		t.Errorf("b sent to a removed contact: %v", err)
	}
	a.mu.Lock()
	allowed := a.allowedLocked()
	a.mu.Unlock()
	if len(allowed) != 0 {
		t.Errorf("a still shows its presence to %v", allowed)
	}
}

// TestAllowed: presence goes to contacts only, not to one a user appears
// offline to, not to the blocked, and to nobody when invisible.
func TestAllowed(t *testing.T) {
	w, s := newWorld(t, 4)
	a, b, c, d := s[0], s[1], s[2], s[3]
	befriendMem(t, w, a, b)
	befriendMem(t, w, a, c)
	befriendMem(t, w, a, d)
	allowed := func() map[identity.NodeID]bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		m := map[identity.NodeID]bool{}
		for _, id := range a.allowedLocked() {
			m[id] = true
		}
		return m
	}
	if got := allowed(); len(got) != 3 {
		t.Fatalf("allowed: %v", got)
	}
	if _, err := a.AppearOffline(c.me.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetTrust(d.me.ID, TrustBlocked); err != nil {
		t.Fatal(err)
	}
	if got := allowed(); len(got) != 1 || !got[b.me.ID] {
		t.Fatalf("allowed after appear-offline and block: %v", got)
	}
	if _, err := a.SetProfile(api.ProfileSet{Status: ptr("invisible")}); err != nil {
		t.Fatal(err)
	}
	if got := allowed(); len(got) != 0 {
		t.Fatalf("allowed while invisible: %v", got)
	}
	// Bad profile input is refused and changes nothing.
	if _, err := a.SetProfile(api.ProfileSet{Status: ptr("gone")}); err == nil {
		t.Error("status gone was taken")
	}
	if _, err := a.SetProfile(api.ProfileSet{Nick: ptr(strings.Repeat("n", wire.MaxNickname+1))}); !errors.Is(err, ErrTooLong) {
		t.Errorf("a long nickname: %v", err)
	}
	if p := a.Profile(); p.Status != "invisible" || p.Nick != "" {
		t.Errorf("profile: %+v", p)
	}
}

func ptr[T any](v T) *T { return &v }

// TestPersists: the profile, contacts and messages survive a reopen.
func TestPersists(t *testing.T) {
	w, s := newWorld(t, 2)
	a, b := s[0], s[1]
	befriendMem(t, w, a, b)
	if _, err := a.SetProfile(api.ProfileSet{Nick: ptr("alice"), Text: ptr("hi")}); err != nil {
		t.Fatal(err)
	}
	w.online[b.me.ID] = false
	m, _ := a.Send(b.me.ID, "kept")
	path := a.cfg.DBPath
	a.Close()
	a2, err := Open(Config{Identity: a.me, DBPath: path})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	if p := a2.Profile(); p.Nick != "alice" || p.Text != "hi" {
		t.Errorf("profile after reopen: %+v", p)
	}
	if cs, _ := a2.Contacts(); len(cs) != 1 || cs[0].State != "contact" {
		t.Errorf("contacts after reopen: %+v", cs)
	}
	items, _ := a2.st.outbox()
	if len(items) != 1 || items[0].ID.String() != m.ID {
		t.Errorf("outbox after reopen: %+v", items)
	}
}

// TestExpiry: a message not delivered within the expiry fails with the
// reason and leaves the outbox.
func TestExpiry(t *testing.T) {
	w, s := newWorld(t, 2)
	a, b := s[0], s[1]
	befriendMem(t, w, a, b)
	w.online[b.me.ID] = false
	a.cfg.MessageExpiry = time.Minute
	m, err := a.Send(b.me.ID, "soon stale")
	if err != nil {
		t.Fatal(err)
	}
	w.settle()
	a.pump(time.Now().Add(2 * time.Minute))
	ms, _ := a.Messages(nil, 0)
	if len(ms) != 1 || ms[0].ID != m.ID || ms[0].State != "failed" || !strings.HasPrefix(ms[0].Reason, "expired") {
		t.Fatalf("after the expiry: %+v", ms)
	}
	if items, _ := a.st.outbox(); len(items) != 0 {
		t.Fatalf("outbox after the expiry: %+v", items)
	}
}

// TestViewGoesStale: a contact whose holders stop answering shows offline
// once their last word is PresenceStale old, and a replayed older record
// from a holder does not bring back an old status.
func TestViewGoesStale(t *testing.T) {
	w, s := newWorld(t, 2)
	a, b := s[0], s[1]
	befriendMem(t, w, a, b)
	holder := identity.NodeID{7}
	rec := func(st wire.Status, seq uint64) *wire.PresenceRecord {
		r := wire.PresenceRecord{Status: st, Seq: seq, Time: time.Now().UnixMilli(), Supernodes: []identity.NodeID{holder}}
		if err := wire.SignPresence(b.me, &r); err != nil {
			t.Fatal(err)
		}
		return &r
	}
	a.handleNotify(wire.PresenceNotify{Node: b.me.ID, To: a.me.ID, From: holder, Record: rec(wire.StatusBusy, 5)})
	a.handleNotify(wire.PresenceNotify{Node: b.me.ID, To: a.me.ID, From: holder, Record: rec(wire.StatusOnline, 4)})
	view := func() api.Contact {
		cs, _ := a.Contacts()
		return cs[0]
	}
	if c := view(); c.Status != "busy" || !c.Online {
		t.Fatalf("after a replayed older record: %+v", c)
	}
	forged := rec(wire.StatusAway, 6)
	forged.Status = wire.StatusOnline
	a.handleNotify(wire.PresenceNotify{Node: b.me.ID, To: a.me.ID, From: holder, Record: forged})
	if c := view(); c.Status != "busy" || a.Stats().PresenceRefused != 1 {
		t.Fatalf("after a forged record: %+v, refused %d", c, a.Stats().PresenceRefused)
	}
	a.mu.Lock()
	a.refreshViewLocked(b.me.ID, time.Now().Add(a.cfg.PresenceStale+time.Second))
	a.mu.Unlock()
	if c := view(); c.Status != "offline" || c.Online || c.LastSeen == nil {
		t.Fatalf("after the holders went silent: %+v", c)
	}
}
