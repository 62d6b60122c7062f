package leaf

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/nat/ice"
	"github.com/canopy-p2p/canopy/transfer"
	"github.com/canopy-p2p/canopy/wire"
)

func TestAggregateMergesSources(t *testing.T) {
	self, a, b := identity.NodeID{1}, identity.NodeID{2}, identity.NodeID{3}
	sn1, sn2 := identity.NodeID{10}, identity.NodeID{11}
	file := [32]byte{9}
	other := [32]byte{8}
	agg := newAggregate(self)
	agg.add(wire.QueryHit{From: sn1, Hits: []wire.Hit{
		{ID: file, Name: "x", Size: 5, Sources: []wire.Source{{Node: a, Via: []identity.NodeID{sn1}}, {Node: self, Via: []identity.NodeID{sn1}}}},
	}})
	// The same file from another supernode, with a known and a new source.
	touched := agg.add(wire.QueryHit{From: sn2, Hits: []wire.Hit{
		{ID: file, Name: "x", Size: 5, Sources: []wire.Source{{Node: a, Via: []identity.NodeID{sn2}}, {Node: b, Via: []identity.NodeID{sn2}}}},
		{ID: other, Name: "y", Size: 1, Sources: []wire.Source{{Node: b, Via: []identity.NodeID{sn2}}}},
	}})
	if len(touched) != 2 {
		t.Fatalf("touched %d results", len(touched))
	}
	res := agg.results()
	if len(res) != 2 || res[0].ID != file {
		t.Fatalf("results %+v", res)
	}
	r := res[0]
	if !r.Local || len(r.Sources) != 2 {
		t.Fatalf("merged result %+v: want our own copy marked local and two other sources", r)
	}
	if r.Sources[0].Node != a || len(r.Sources[0].Via) != 2 {
		t.Fatalf("source a should be reachable via both supernodes: %+v", r.Sources[0])
	}
}

// scriptedSupernode accepts leaf links on loopback, welcomes them and answers
// every query with answer(query ID, query): a real TLS link, a scripted
// supernode.
func scriptedSupernode(t *testing.T, answer func(wire.MsgID, wire.Query) wire.QueryHit) (string, identity.NodeID) {
	t.Helper()
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := link.NewCredentials(id)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []*link.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close("test over")
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			c, err := link.Accept(context.Background(), raw, creds, nil)
			if err != nil {
				continue
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				if _, err := c.Recv(5 * time.Second); err != nil {
					return
				}
				if c.SendBody(wire.TypeWelcome, &wire.Welcome{Role: wire.RoleSupernode}) != nil {
					return
				}
				c.Serve(time.Minute, func(e wire.Envelope) error {
					if e.Type != wire.TypeQuery {
						return nil
					}
					var q wire.Query
					if err := e.Decode(&q); err != nil {
						return err
					}
					qh := answer(e.ID, q)
					qh.From = id.ID
					out, err := wire.New(wire.TypeQueryHit, &qh)
					if err != nil {
						return err
					}
					out.ID = e.ID
					return c.Send(out)
				})
			})
		}
	})
	return ln.Addr().String(), id.ID
}

// TestSearchSurfacesSlowDown checks that a search its supernode refused for
// the leaf's rate returns ErrSlowDown with the retry-after, at once, and
// that a search it answers returns hits and no error.
func TestSearchSurfacesSlowDown(t *testing.T) {
	var slow atomic.Bool
	addr, _ := scriptedSupernode(t, func(_ wire.MsgID, q wire.Query) wire.QueryHit {
		if slow.Load() {
			return wire.QueryHit{RetryAfterMs: 250}
		}
		return wire.QueryHit{Hits: []wire.Hit{{ID: [32]byte{1}, Name: q.Words + ".mp3", Size: 1,
			Sources: []wire.Source{{Node: identity.NodeID{9}}}}}}
	})
	id, _ := identity.Generate()
	creds, _ := link.NewCredentials(id)
	api, _ := ice.NewAPI(ice.Config{LoopbackOnly: true})
	l, err := Start(Config{Creds: creds, Seeds: []string{addr}, Attach: 1, Logger: zaptest.NewLogger(t),
		Transfer: transfer.Config{API: api}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := testwait.For(10*time.Second, func() bool { return len(l.Attachments()) == 1 }); err != nil {
		t.Fatal("the leaf never attached to the fake supernode")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	slow.Store(true)
	res, err := l.Search(ctx, "quiet morning", 0, nil)
	var sd *SlowDownError
	if !errors.Is(err, ErrSlowDown) || !errors.As(err, &sd) || res != nil {
		t.Fatalf("refused search: %v, %d results; want ErrSlowDown", err, len(res))
	}
	if sd.RetryAfter != 250*time.Millisecond || sd.Refused != 1 || sd.Asked != 1 {
		t.Fatalf("refusal %+v", sd)
	}
	if ctx.Err() != nil {
		t.Fatal("the refused search waited for its deadline")
	}

	slow.Store(false)
	sctx, scancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer scancel()
	res, err = l.Search(sctx, "quiet morning", 0, nil)
	if err != nil || len(res) != 1 || res[0].Name != "quiet morning.mp3" {
		t.Fatalf("answered search: %v, %+v", err, res)
	}
}

// A file this node shares is shown under its own name, whatever the
// supernodes' vote says; other names are bounded and cleaned.
func TestAggregateNames(t *testing.T) {
	self, a := identity.NodeID{1}, identity.NodeID{2}
	sn1, sn2 := identity.NodeID{10}, identity.NodeID{11}
	mine, theirs := content.ID{9}, content.ID{8}
	agg := newAggregate(self)
	calls := 0
	agg.localName = func(id content.ID) string {
		calls++
		if id == mine {
			return "my holiday.jpg"
		}
		return ""
	}
	agg.add(wire.QueryHit{From: sn1, Hits: []wire.Hit{
		{ID: mine, Name: "!!! renamed by sybils.jpg", Sources: []wire.Source{{Node: a, Via: []identity.NodeID{sn1}}, {Node: self, Via: []identity.NodeID{sn1}}}},
		{ID: theirs, Name: "evil\u202egpj.exe\n" + strings.Repeat("x", 400), Sources: []wire.Source{{Node: a, Via: []identity.NodeID{sn1}}}},
	}})
	agg.add(wire.QueryHit{From: sn2, Hits: []wire.Hit{
		{ID: mine, Name: "!!! renamed by sybils.jpg", Sources: []wire.Source{{Node: self, Via: []identity.NodeID{sn2}}}},
	}})
	for _, r := range agg.results() {
		switch r.ID {
		case mine:
			if r.Name != "my holiday.jpg" || !r.Local {
				t.Errorf("own file shown as %+v", r)
			}
		case theirs:
			if len(r.Name) > wire.MaxIndexName || strings.ContainsAny(r.Name, "\u202e\n") {
				t.Errorf("name not bounded and cleaned: %q", r.Name)
			}
		}
	}
	if calls != 1 {
		t.Errorf("library asked %d times, want once for the one local file", calls)
	}
}

// A result is shown under its first source's own name, and every source
// keeps its own: six sybils at one supernode win that supernode's vote
// (Hit.Name) but rename nothing, an honest source answered first is shown
// with its name, later sources add theirs, and a supernode that sends no
// per-source names (older) leaves the hit's name as the fallback.
func TestAggregatePerSourceNames(t *testing.T) {
	self, honest := identity.NodeID{1}, identity.NodeID{2}
	sn1, sn2 := identity.NodeID{10}, identity.NodeID{11}
	file, old := content.ID{9}, content.ID{8}
	agg := newAggregate(self)
	agg.add(wire.QueryHit{From: sn1, Hits: []wire.Hit{
		{ID: file, Name: "Quiet Morning.exe", Sources: []wire.Source{{Node: honest, Via: []identity.NodeID{sn1}, Name: "Quiet Morning.flac"}}},
	}})
	var sybils []wire.Source
	for i := range 6 {
		sybils = append(sybils, wire.Source{Node: identity.NodeID{byte(20 + i)}, Via: []identity.NodeID{sn2}, Name: "Quiet Morning.exe\u202e"})
	}
	agg.add(wire.QueryHit{From: sn2, Hits: []wire.Hit{
		{ID: file, Name: "Quiet Morning.exe", Sources: append(sybils, wire.Source{Node: honest, Via: []identity.NodeID{sn2}, Name: "Quiet Morning.flac"})},
		{ID: old, Name: "from an older supernode.ogg", Sources: []wire.Source{{Node: honest, Via: []identity.NodeID{sn2}}}},
	}})
	for _, r := range agg.results() {
		switch r.ID {
		case file:
			if r.Name != "Quiet Morning.flac" {
				t.Errorf("shown as %q, want the first source's own name", r.Name)
			}
			if len(r.Sources) != 7 || r.Sources[0].Node != honest || len(r.Sources[0].Via) != 2 {
				t.Fatalf("sources %+v", r.Sources)
			}
			for _, s := range r.Sources[1:] {
				if s.Name != "Quiet Morning.exe\ufffd" {
					t.Errorf("sybil source named %q, want its own name, cleaned", s.Name)
				}
			}
		case old:
			if r.Name != "from an older supernode.ogg" || r.Sources[0].Name != "" {
				t.Errorf("result from an older supernode: %+v", r)
			}
		}
	}
}
