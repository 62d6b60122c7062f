package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/canopy-p2p/canopy/identity"
)

func testIdentity(t testing.TB) *identity.Identity {
	t.Helper()
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func signedLetter(t testing.TB, from *identity.Identity, to identity.NodeID, kind LetterKind, text string) Letter {
	t.Helper()
	l := Letter{Kind: kind, To: to, ID: NewMsgID(), Time: 1_700_000_000_000, Text: text, Seq: 3}
	if kind == LetterRequest || kind == LetterAccept {
		l.BoxKey = bytes.Repeat([]byte{7}, 32)
	}
	if err := SignLetter(from, &l); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLetterCheck: a signed letter passes; any change to a signed field,
// another key, or a bound exceeded is refused with ErrPeople.
func TestLetterCheck(t *testing.T) {
	alice, bob := testIdentity(t), testIdentity(t)
	l := signedLetter(t, alice, bob.ID, LetterMessage, "hello")
	if err := l.Check(); err != nil {
		t.Fatalf("a signed letter was refused: %v", err)
	}
	b, err := EncodeLetter(&l)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeLetter(b)
	if err != nil || back.Check() != nil || back.Text != "hello" {
		t.Fatalf("round trip: %v %+v", err, back)
	}
	for name, change := range map[string]func(*Letter){
		"text":          func(l *Letter) { l.Text = "hellO" },
		"recipient":     func(l *Letter) { l.To = alice.ID },
		"sequence":      func(l *Letter) { l.Seq++ },
		"sender":        func(l *Letter) { l.From = bob.ID },
		"another key":   func(l *Letter) { l.PubKey = bob.Public },
		"no signature":  func(l *Letter) { l.Sig = nil },
		"kind":          func(l *Letter) { l.Kind = 9 },
		"text too long": func(l *Letter) { l.Text = strings.Repeat("x", MaxMessageText+1) },
		"not UTF-8":     func(l *Letter) { l.Text = "\xff" },
		"nick too long": func(l *Letter) { l.Nick = strings.Repeat("n", MaxNickname+1) },
		"box key size":  func(l *Letter) { l.BoxKey = []byte{1, 2} },
	} {
		c := l
		change(&c)
		if err := c.Check(); !errors.Is(err, ErrPeople) {
			t.Errorf("%s: got %v, want ErrPeople", name, err)
		}
	}
	// Bounds are checked even when the signature is good.
	long := signedLetter(t, alice, bob.ID, LetterRequest, strings.Repeat("r", MaxRequestText+1))
	if err := long.Check(); !errors.Is(err, ErrPeople) {
		t.Errorf("a request note over %d bytes passed: %v", MaxRequestText, err)
	}
	noKey := Letter{Kind: LetterAccept, To: bob.ID, ID: NewMsgID()}
	if err := SignLetter(alice, &noKey); err != nil {
		t.Fatal(err)
	}
	if err := noKey.Check(); !errors.Is(err, ErrPeople) {
		t.Errorf("an accept without a box key passed: %v", err)
	}
}

// TestPresenceCheck: a signed record passes; a changed one, a status that
// may not be published, or a record published by another node is refused.
func TestPresenceCheck(t *testing.T) {
	alice, bob := testIdentity(t), testIdentity(t)
	r := PresenceRecord{Status: StatusAway, Text: "lunch", Nick: "alice", Seq: 9, Time: 1, Supernodes: []identity.NodeID{bob.ID}}
	if err := SignPresence(alice, &r); err != nil {
		t.Fatal(err)
	}
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
	p := PresencePublish{Record: r, Allowed: []identity.NodeID{bob.ID}}
	if err := CheckPublish(&p, alice.ID); err != nil {
		t.Fatal(err)
	}
	if err := CheckPublish(&p, bob.ID); !errors.Is(err, ErrPeople) {
		t.Errorf("bob published alice's record: %v", err)
	}
	for name, change := range map[string]func(*PresenceRecord){
		"status":     func(r *PresenceRecord) { r.Status = StatusOnline },
		"offline":    func(r *PresenceRecord) { r.Status = StatusOffline },
		"text":       func(r *PresenceRecord) { r.Text = strings.Repeat("t", MaxStatusText+1) },
		"sequence":   func(r *PresenceRecord) { r.Seq = 10 },
		"supernodes": func(r *PresenceRecord) { r.Supernodes = nil },
		"time":       func(r *PresenceRecord) { r.Time = 2 },
		"validity":   func(r *PresenceRecord) { r.Valid = 1 },
	} {
		c := r
		change(&c)
		if err := c.Check(); !errors.Is(err, ErrPeople) {
			t.Errorf("%s: got %v, want ErrPeople", name, err)
		}
	}
	// A validity past the bound is refused though signed; the default
	// holds for a record that names none.
	long := r
	long.Valid = MaxPresenceValid.Milliseconds() + 1
	if err := SignPresence(alice, &long); err != nil {
		t.Fatal(err)
	}
	if err := long.Check(); !errors.Is(err, ErrPeople) {
		t.Errorf("a record valid for %d ms passed: %v", long.Valid, err)
	}
	if r.Validity() != DefaultPresenceValid {
		t.Errorf("a record without a validity holds %v, want %v", r.Validity(), DefaultPresenceValid)
	}
	many := PresencePublish{Record: r, Allowed: make([]identity.NodeID, MaxAllowed+1)}
	if err := CheckPublish(&many, alice.ID); !errors.Is(err, ErrPeople) {
		t.Errorf("%d viewers passed: %v", MaxAllowed+1, err)
	}
}

func TestCheckParcel(t *testing.T) {
	ok := Parcel{To: identity.NodeID{1}, Sealed: []byte{1}}
	if err := CheckParcel(&ok); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]Parcel{
		"no recipient": {Sealed: []byte{1}},
		"empty":        {To: identity.NodeID{1}},
		"too large":    {To: identity.NodeID{1}, Sealed: make([]byte, MaxSealed+1)},
		"too many via": {To: identity.NodeID{1}, Sealed: []byte{1}, Via: make([]identity.NodeID, MaxVia+1)},
	} {
		if err := CheckParcel(&p); !errors.Is(err, ErrPeople) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseStatus(t *testing.T) {
	for _, s := range []string{"online", "away", "busy", "invisible"} {
		if st, err := ParseStatus(s); err != nil || st.String() != s {
			t.Errorf("%s: %v %v", s, st, err)
		}
	}
	for _, s := range []string{"offline", "", "Away", "gone"} {
		if _, err := ParseStatus(s); err == nil {
			t.Errorf("%q parsed as a status", s)
		}
	}
}

// FuzzDecodeLetter: any bytes decode to a letter or an error, never a
// panic; a letter that passes Check still does after an encode and decode
// round trip (one encoding, so one signature).
func FuzzDecodeLetter(f *testing.F) {
	alice, bob := testIdentity(f), testIdentity(f)
	for _, k := range []LetterKind{LetterRequest, LetterAccept, LetterMessage, LetterReceipt, LetterRemove} {
		l := signedLetter(f, alice, bob.ID, k, "note")
		b, _ := EncodeLetter(&l)
		f.Add(b)
	}
	r := PresenceRecord{Status: StatusBusy, Seq: 1}
	if err := SignPresence(alice, &r); err != nil {
		f.Fatal(err)
	}
	rb, _ := encMode.Marshal(&r)
	f.Add(rb)
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := DecodeLetter(b)
		if err != nil {
			return
		}
		if l.Check() != nil {
			return
		}
		again, err := EncodeLetter(&l)
		if err != nil {
			t.Fatal(err)
		}
		l2, err := DecodeLetter(again)
		if err != nil || l2.Check() != nil {
			t.Fatalf("a checked letter did not survive a round trip: %v", err)
		}
		var rec PresenceRecord
		if decMode.Unmarshal(b, &rec) == nil {
			_ = rec.Check()
		}
	})
}

// FuzzPeopleChecks: the checks a supernode runs on a people message's body
// take any decoded input without panicking, and what passes keeps its
// bounds.
func FuzzPeopleChecks(f *testing.F) {
	for _, s := range seeds(f) {
		e, err := Unmarshal(s)
		if err == nil && e.Type >= TypeParcel && e.Type <= TypeLocate {
			f.Add(byte(e.Type), e.Payload)
		}
	}
	f.Fuzz(func(t *testing.T, typ byte, payload []byte) {
		e := Envelope{Type: Type(typ), Payload: payload}
		switch e.Type {
		case TypeParcel:
			var p Parcel
			if e.Decode(&p) == nil && CheckParcel(&p) == nil && (len(p.Sealed) > MaxSealed || len(p.Via) > MaxVia) {
				t.Fatalf("parcel past its bounds passed: %d bytes, %d via", len(p.Sealed), len(p.Via))
			}
		case TypePresencePublish:
			var p PresencePublish
			if e.Decode(&p) == nil && CheckPublish(&p, p.Record.Node) == nil && len(p.Allowed) > MaxAllowed {
				t.Fatalf("%d viewers passed", len(p.Allowed))
			}
		case TypePresenceSubscribe:
			var s PresenceSubscribe
			if e.Decode(&s) == nil && CheckSubscribe(&s) == nil && len(s.Targets) > MaxSubscribe {
				t.Fatalf("%d targets passed", len(s.Targets))
			}
		case TypePresenceNotify:
			var n PresenceNotify
			if e.Decode(&n) == nil && n.Record != nil {
				_ = n.Record.Check()
			}
		}
	})
}
