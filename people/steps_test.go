package people

import (
	"testing"
	"time"

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
