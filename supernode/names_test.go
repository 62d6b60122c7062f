package supernode

import (
	"strings"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/index"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/wire"
)

// share uploads files as c's whole index and waits for the ack.
func share(t *testing.T, c *link.Conn, files ...wire.IndexFile) {
	t.Helper()
	if err := c.SendBody(wire.TypeIndexUpdate, &wire.IndexUpdate{Reset: true, Rev: 1, Add: files}); err != nil {
		t.Fatal(err)
	}
	if e, err := recvSkipping(c, 5*time.Second); err != nil || e.Type != wire.TypeIndexAck {
		t.Fatalf("no index ack: %v %s", err, e.Type)
	}
}

// Six sybils that attached first share a content ID as "Quiet Morning.exe",
// one honest leaf as "Quiet Morning.flac": the hit's vote is the sybils',
// but every source comes with its own name, so the honest source is listed
// with the honest name, whatever the number of sybils.
func TestHitsCarryEachSourcesName(t *testing.T) {
	_, addr := testSupernode(t, Config{})
	file := [32]byte{7}
	sybils := map[identity.NodeID]bool{}
	for range 6 {
		c, id := testLeafID(t, addr)
		share(t, c, wire.IndexFile{ID: file, Name: "Quiet Morning.exe", Size: 42})
		sybils[id] = true
	}
	honest, honestID := testLeafID(t, addr)
	share(t, honest, wire.IndexFile{ID: file, Name: "Quiet Morning.flac", Size: 42})
	searcher := testLeaf(t, addr)
	q, _ := wire.New(wire.TypeQuery, &wire.Query{Words: "quiet morning"})
	if err := searcher.Send(q); err != nil {
		t.Fatal(err)
	}
	e, err := recvSkipping(searcher, 5*time.Second)
	if err != nil || e.Type != wire.TypeQueryHit || e.ID != q.ID {
		t.Fatalf("no hit: %v %s", err, e.Type)
	}
	var qh wire.QueryHit
	if err := e.Decode(&qh); err != nil || len(qh.Hits) != 1 {
		t.Fatalf("hits: %v %+v", err, qh)
	}
	h := qh.Hits[0]
	if h.Name != "Quiet Morning.exe" {
		t.Fatalf("the vote went to %q: with six sybils it is theirs, which is why a leaf does not show it", h.Name)
	}
	if len(h.Sources) != 7 {
		t.Fatalf("%d sources, want 7", len(h.Sources))
	}
	for _, s := range h.Sources {
		want := "Quiet Morning.exe"
		if s.Node == honestID {
			want = "Quiet Morning.flac"
		} else if !sybils[s.Node] {
			t.Fatalf("unknown source %s", s.Node.Short())
		}
		if s.Name != want {
			t.Errorf("source %s listed as %q, want its own %q", s.Node.Short(), s.Name, want)
		}
	}
}

// A search answer whose sources carry long names is cut into messages by
// size, not only by count: 100 hits of 32 sources with 255-byte names
// (about 1.2 MB) arrive whole, in messages each within the payload limit
// and the byte budget.
func TestAnswerBatchesByBytes(t *testing.T) {
	sn, addr := testSupernode(t, Config{})
	c, id := testLeafID(t, addr)
	if err := testwait.For(5*time.Second, func() bool { return len(sn.Leaves()) == 1 }); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("n", wire.MaxIndexName-4) + ".mp3"
	var hits []index.Hit
	for i := range 100 {
		h := index.Hit{ID: [32]byte{byte(i), 1}, Name: long, Size: 1, OwnerCount: index.MaxHitOwners}
		for j := range index.MaxHitOwners {
			h.Owners = append(h.Owners, identity.NodeID{byte(i), byte(j), 2})
			h.Names = append(h.Names, long)
		}
		hits = append(hits, h)
	}
	qid := wire.MsgID{9}
	sn.answer(qid, route{leaf: id}, hits)
	got, messages := 0, 0
	for got < len(hits) {
		e, err := recvSkipping(c, 5*time.Second)
		if err != nil {
			t.Fatalf("after %d hits in %d messages: %v", got, messages, err)
		}
		if e.Type != wire.TypeQueryHit || e.ID != qid {
			continue
		}
		if len(e.Payload) > maxHitBytes+maxHitBytes/8 {
			t.Errorf("a message of %d bytes, budget %d", len(e.Payload), maxHitBytes)
		}
		var qh wire.QueryHit
		if err := e.Decode(&qh); err != nil {
			t.Fatal(err)
		}
		for _, h := range qh.Hits {
			if len(h.Sources) != index.MaxHitOwners || h.Sources[0].Name != long {
				t.Fatalf("hit with %d sources, first named %q", len(h.Sources), h.Sources[0].Name)
			}
		}
		got += len(qh.Hits)
		messages++
	}
	if got != len(hits) || messages < 4 {
		t.Fatalf("%d hits in %d messages, want 100 in at least 4 (about 1.2 MB of them)", got, messages)
	}
}
