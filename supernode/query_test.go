package supernode

import (
	"fmt"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/index"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/wire"
)

// upload sends one full index upload of files and waits for its ack.
func upload(t *testing.T, c *link.Conn, files ...wire.IndexFile) wire.IndexAck {
	t.Helper()
	if err := c.SendBody(wire.TypeIndexUpdate, &wire.IndexUpdate{Reset: true, Rev: 1, Add: files}); err != nil {
		t.Fatal(err)
	}
	e, err := recv(c, 5*time.Second)
	var a wire.IndexAck
	if err != nil || e.Type != wire.TypeIndexAck || e.Decode(&a) != nil {
		t.Fatalf("no index ack: %v %s", err, e.Type)
	}
	return a
}

// TestQueryOverRateGetsSlowDown checks that every query of a leaf over its
// rate is answered, with a "slow down" that names the query and a
// retry-after, and counted; the queries within the rate get their hits.
func TestQueryOverRateGetsSlowDown(t *testing.T) {
	sn, addr := testSupernode(t, Config{QueryRate: 1, QueryBurst: 2})
	owner := testLeaf(t, addr)
	upload(t, owner, wire.IndexFile{ID: [32]byte{7}, Name: "Quiet Morning.flac", Size: 42})
	searcher := testLeaf(t, addr)
	sent := map[wire.MsgID]bool{}
	for range 5 {
		q, _ := wire.New(wire.TypeQuery, &wire.Query{Words: "quiet morning"})
		sent[q.ID] = true
		if err := searcher.Send(q); err != nil {
			t.Fatal(err)
		}
	}
	hits, slow := 0, 0
	for range 5 {
		e, err := recv(searcher, 5*time.Second)
		var qh wire.QueryHit
		if err != nil || e.Type != wire.TypeQueryHit || e.Decode(&qh) != nil || !sent[e.ID] {
			t.Fatalf("answer %d: %v %s", hits+slow, err, e.Type)
		}
		delete(sent, e.ID)
		switch {
		case qh.RetryAfterMs > 0:
			if len(qh.Hits) != 0 || qh.From != sn.ID() || qh.RetryAfterMs > uint32(maxRetryAfter.Milliseconds()) {
				t.Fatalf("slow down %+v", qh)
			}
			slow++
		case len(qh.Hits) == 1:
			hits++
		default:
			t.Fatalf("answer %+v", qh)
		}
	}
	if hits != 2 || slow != 3 {
		t.Fatalf("%d answered, %d slowed down; want 2 and 3", hits, slow)
	}
	st := sn.Stats()
	if st.QueriesLimited != 3 || st.SlowDowns != 3 || st.QueriesFromLeaves != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestIndexUpdatesArePaced uploads more files than a leaf's index burst:
// the updates are all applied and acknowledged, the later ones after the
// supernode read the link more slowly, which it counts.
func TestIndexUpdatesArePaced(t *testing.T) {
	sn, addr := testSupernode(t, Config{IndexRate: 2000, IndexBurst: 100})
	c := testLeaf(t, addr)
	for rev := range 4 {
		files := make([]wire.IndexFile, 100)
		for i := range files {
			files[i] = wire.IndexFile{ID: [32]byte{byte(rev), byte(i)}, Name: fmt.Sprintf("song %d %d.mp3", rev, i), Size: 1}
		}
		if err := c.SendBody(wire.TypeIndexUpdate, &wire.IndexUpdate{Add: files, Rev: int64(rev + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	var a wire.IndexAck
	for range 4 {
		e, err := recv(c, 5*time.Second)
		if err != nil || e.Type != wire.TypeIndexAck || e.Decode(&a) != nil || a.Error != "" {
			t.Fatalf("ack: %v %s %+v", err, e.Type, a)
		}
	}
	if a.Rev != 4 || a.Files != 400 {
		t.Fatalf("last ack %+v", a)
	}
	if st := sn.Stats(); st.IndexUpdatesPaced == 0 {
		t.Fatalf("stats %+v: no update paced", st)
	}
}

// TestIndexFullKeepsTheLink fills the index: the leaf over the limit is
// told in its ack and keeps its link (it used to lose it).
func TestIndexFullKeepsTheLink(t *testing.T) {
	sn, addr := testSupernode(t, Config{Index: index.Limits{MaxFiles: 2}})
	first := testLeaf(t, addr)
	upload(t, first, wire.IndexFile{ID: [32]byte{1}, Name: "one", Size: 1}, wire.IndexFile{ID: [32]byte{2}, Name: "two", Size: 1})
	second, _ := testLeafID(t, addr)
	a := upload(t, second, wire.IndexFile{ID: [32]byte{3}, Name: "three", Size: 1})
	if a.Error == "" || a.Files != 0 {
		t.Fatalf("ack %+v, want a refusal", a)
	}
	// The link still works: a query is answered.
	q, _ := wire.New(wire.TypeQuery, &wire.Query{Words: "one"})
	if err := second.Send(q); err != nil {
		t.Fatal(err)
	}
	if e, err := recv(second, 5*time.Second); err != nil || e.Type != wire.TypeQueryHit {
		t.Fatalf("after the refusal: %v %s", err, e.Type)
	}
	if c := sn.IndexCounters(); c.IndexFull != 1 {
		t.Fatalf("index counters %+v", c)
	}
}
