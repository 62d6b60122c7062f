package supernode

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/routing"
	"github.com/canopy-p2p/canopy/wire"
)

// links counts a supernode's live links to ring peers: those it dialled and
// those dialled by others.
func (s *Supernode) links() (out, in int, peers []identity.NodeID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, set := range s.peers {
		for _, pl := range set {
			if pl.draining || pl.signal {
				continue
			}
			if pl.outbound {
				out++
			} else {
				in++
			}
			peers = append(peers, id)
			break
		}
	}
	return out, in, peers
}

// TestBoundedViewReachesRing builds a ring of 8 supernodes on loopback with
// a peer view of 2, real memberlist and real links: every supernode must hold
// at most its bound's links, and a search from a leaf of one supernode must
// find a file shared only by a leaf of the supernode farthest from it.
func TestBoundedViewReachesRing(t *testing.T) {
	const n = 8
	view := routing.ViewParams{PeerView: 2}
	bound := view.WithDefaults()
	var sns []*Supernode
	var addrs []string
	for i := range n {
		// No test logger: memberlist's probes of a ring of eight may still
		// log while the ring shuts down, after the test has ended.
		sn, addr := testSupernode(t, Config{View: view, Logger: zap.NewNop()})
		if i > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if _, err := sn.Join(ctx, []string{addrs[0]}); err != nil {
				t.Fatal(err)
			}
			cancel()
		}
		sns, addrs = append(sns, sn), append(addrs, addr)
	}
	byID := map[identity.NodeID]int{}
	for i, sn := range sns {
		byID[sn.ID()] = i
	}

	// The overlay settles when every supernode sees the whole ring and has
	// dialled its full view, and no link set changed for a second.
	var graph [][]int
	deadline := time.Now().Add(45 * time.Second) // memberlist can take a push-pull round to tell every member of every join
	stableSince, last := time.Time{}, ""
	for {
		graph = make([][]int, n)
		sig, full := "", true
		for i, sn := range sns {
			out, in, peers := sn.links()
			if len(sn.Members()) != n || out != bound.PeerView {
				full = false
			}
			if out > bound.PeerView || in > bound.MaxInbound {
				t.Fatalf("supernode %d holds %d dialled and %d inbound links; bounds %d and %d", i, out, in, bound.PeerView, bound.MaxInbound)
			}
			for _, p := range peers {
				graph[i] = append(graph[i], byID[p])
			}
			slices.Sort(graph[i])
			for _, p := range graph[i] {
				sig += string(rune('a' + p))
			}
			sig += "|"
		}
		if !full || sig != last {
			if testing.Verbose() {
				t.Logf("overlay: full %v %s", full, sig)
			}
			stableSince, last = time.Now(), sig
		} else if time.Since(stableSince) > time.Second {
			break
		}
		if time.Now().After(deadline) {
			for i, sn := range sns {
				out, in, _ := sn.links()
				sn.mu.Lock()
				t.Logf("supernode %d: %d members, %d dialled, %d inbound, failed %v, dialing %v", i, len(sn.Members()), out, in, sn.view.failed, sn.dialing)
				sn.mu.Unlock()
			}
			t.Fatalf("the overlay did not settle with full views: %v", graph)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The pair farthest apart over the links.
	from, to, far := 0, 0, 0
	for a := range n {
		dist := bfs(graph, a)
		for b, d := range dist {
			if d < 0 {
				t.Fatalf("supernode %d cannot reach %d over the links: %v", a, b, graph)
			}
			if d > far {
				from, to, far = a, b, d
			}
		}
	}
	if far < 2 {
		t.Fatalf("every supernode is linked to every other with a view of %d: %v", bound.PeerView, graph)
	}
	if budget := int(routing.OriginTTL(routing.DefaultParams(), view, n)) - 1; far > budget {
		t.Fatalf("the farthest supernode is %d hops away, beyond the origin's budget of %d: %v", far, budget, graph)
	}
	t.Logf("searching from supernode %d for a file at supernode %d, %d hops away", from, to, far)

	owner, ownerID := testLeafID(t, addrs[to])
	if err := owner.SendBody(wire.TypeIndexUpdate, &wire.IndexUpdate{Reset: true, Rev: 1, Add: []wire.IndexFile{{ID: [32]byte{9}, Name: "Farthest Shore.ogg", Size: 7}}}); err != nil {
		t.Fatal(err)
	}
	if e, err := recv(owner, 5*time.Second); err != nil || e.Type != wire.TypeIndexAck {
		t.Fatalf("no index ack: %v %s", err, e.Type)
	}
	searcher, searcherID := testLeafID(t, addrs[from])
	q, _ := wire.New(wire.TypeQuery, &wire.Query{Words: "farthest shore"})
	if err := searcher.Send(q); err != nil {
		t.Fatal(err)
	}
	e, err := recv(searcher, 5*time.Second)
	if err != nil || e.Type != wire.TypeQueryHit || e.ID != q.ID {
		t.Fatalf("no hit from %d hops away: %v %s", far, err, e.Type)
	}
	var qh wire.QueryHit
	if err := e.Decode(&qh); err != nil || len(qh.Hits) != 1 || qh.From != sns[to].ID() || qh.Hits[0].Sources[0].Node != ownerID {
		t.Fatalf("hit: %v %+v", err, qh)
	}

	// A download starts with signals between the two leaves, relayed by
	// their supernodes, which hold no link to each other: the searcher's
	// supernode must still get the offer to the owner's, and the owner's
	// the answer back.
	offer := wire.Signal{To: ownerID, Via: sns[to].ID(), Kind: wire.SignalOffer, Data: "v=0 offer"}
	if err := searcher.SendBody(wire.TypeSignal, &offer); err != nil {
		t.Fatal(err)
	}
	got := recvSignal(t, owner, 5*time.Second)
	if got.From != searcherID || got.Kind != wire.SignalOffer || len(got.FromVia) == 0 || got.FromVia[0] != sns[from].ID() {
		t.Fatalf("offer relayed as %+v", got)
	}
	answer := wire.Signal{To: searcherID, Via: got.FromVia[0], Kind: wire.SignalAnswer, Data: "v=0 answer"}
	if err := owner.SendBody(wire.TypeSignal, &answer); err != nil {
		t.Fatal(err)
	}
	if got := recvSignal(t, searcher, 5*time.Second); got.From != ownerID || got.Kind != wire.SignalAnswer {
		t.Fatalf("answer relayed as %+v", got)
	}
	// The link that carried them is a signalling link, outside the views:
	// the bounds hold, and it closes once idle.
	for i, sn := range sns {
		if out, in, _ := sn.links(); out > bound.PeerView || in > bound.MaxInbound {
			t.Fatalf("after signalling, supernode %d holds %d dialled and %d inbound view links; bounds %d and %d", i, out, in, bound.PeerView, bound.MaxInbound)
		}
	}
	origin := sns[from]
	signalLinks := func() int {
		origin.mu.Lock()
		defer origin.mu.Unlock()
		return origin.signalLinksLocked()
	}
	if n := signalLinks(); n != 1 {
		t.Fatalf("the searcher's supernode holds %d signalling links, want 1", n)
	}
	origin.closeIdleSignalLinks(time.Now().Add(signalLinkIdle))
	testwait.Until(t, 5*time.Second, func() bool { return signalLinks() == 0 }, "the idle signalling link was not closed")
}

// recvSignal returns the next Signal on c, skipping other messages.
func recvSignal(t *testing.T, c *link.Conn, d time.Duration) wire.Signal {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		e, err := recv(c, time.Until(deadline))
		if err != nil {
			t.Fatalf("no signal within %v: %v", d, err)
		}
		if e.Type != wire.TypeSignal {
			continue
		}
		var sig wire.Signal
		if err := e.Decode(&sig); err != nil {
			t.Fatal(err)
		}
		return sig
	}
}

// bfs returns the hop distance from a to every node (-1: unreachable).
func bfs(graph [][]int, a int) []int {
	dist := make([]int, len(graph))
	for i := range dist {
		dist[i] = -1
	}
	dist[a] = 0
	for frontier := []int{a}; len(frontier) > 0; {
		var next []int
		for _, u := range frontier {
			for _, v := range graph[u] {
				if dist[v] < 0 {
					dist[v] = dist[u] + 1
					next = append(next, v)
				}
			}
		}
		frontier = next
	}
	return dist
}
