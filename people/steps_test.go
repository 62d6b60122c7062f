package people

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/wire"
)

// TestReceiptKeptWithMessage: when a message is kept (the step at which
// a crash test kills the recipient), its receipt is already in the
// outbox, committed with it, so a crash there cannot leave a message
// taken and never acknowledged; a duplicate reaches the step only once.
func TestReceiptKeptWithMessage(t *testing.T) {
	w, s := newWorld(t, 2)
	a, b := s[0], s[1]
	befriendMem(t, w, a, b)
	var steps []string
	var receipts int
	b.cfg.AfterStep = func(step string) {
		steps = append(steps, step)
		if step != stepLetterKept {
			return
		}
		items, err := b.st.outbox()
		if err != nil {
			t.Fatal(err)
		}
		receipts = 0
		for _, it := range items {
			if it.Kind == wire.LetterReceipt && it.Peer == a.me.ID {
				receipts++
			}
		}
	}
	if _, err := a.Send(b.me.ID, "one"); err != nil {
		t.Fatal(err)
	}
	a.pump(time.Now())
	if len(steps) != 2 || steps[0] != stepLetterOpened || steps[1] != stepLetterKept || receipts != 1 {
		t.Fatalf("steps %v, receipts in the outbox when kept: %d", steps, receipts)
	}
	// The same parcel again: opened, dropped as a duplicate, not kept.
	m := w.nets[a.me.ID].sent[len(w.nets[a.me.ID].sent)-1]
	b.handleParcel(w.nets[a.me.ID].sn, m)
	if len(steps) != 3 || steps[2] != stepLetterOpened || b.Stats().Duplicates != 1 {
		t.Fatalf("after a duplicate: steps %v, duplicates %d", steps, b.Stats().Duplicates)
	}
}

// TestMailFetchedFromFormerSupernodes: a running node asks the supernodes
// it was attached to before for its mail again every MailFetchInterval,
// not only when its attachments change (a contact that lost track of it
// stores there), and never asks its current supernode (which pushes by
// itself).
func TestMailFetchedFromFormerSupernodes(t *testing.T) {
	id := newID(t)
	s, err := Open(Config{Identity: id, DBPath: filepath.Join(t.TempDir(), "people.db"), MailFetchInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	former := identity.NodeID{5}
	if _, err := s.st.db.Exec(`INSERT INTO mailboxes(id, at) VALUES(?, ?)`, former[:], time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	m := &memNet{me: id.ID, sn: identity.NodeID{1}, world: map[identity.NodeID]*Service{}, online: map[identity.NodeID]bool{},
		self: s, stored: map[identity.NodeID][]wire.Parcel{}}
	s.Start(m)
	testwait.Until(t, 5*time.Second, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.fetches) >= 3
	}, "fetched at the start and twice more")
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, via := range m.fetches {
		if len(via) != 1 || via[0] != former {
			t.Fatalf("fetched from %v, want only the former supernode", via)
		}
	}
}
