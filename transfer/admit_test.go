package transfer

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/nat/ice"
	"github.com/canopy-p2p/canopy/wire"
)

// recordingNet is a testNet that keeps a copy of every offer it delivers,
// as a supernode on the path could.
type recordingNet struct {
	*testNet
	mu     sync.Mutex
	offers []wire.Signal
}

func (r *recordingNet) signal(ctx context.Context, s wire.Signal) error {
	if s.Kind == wire.SignalOffer {
		r.mu.Lock()
		r.offers = append(r.offers, s)
		r.mu.Unlock()
	}
	return r.testNet.signal(ctx, s)
}

// realOfferSDP returns the SDP of a genuine pion offer on loopback whose
// peer connection is closed at once: an offer that will never connect.
func realOfferSDP(t *testing.T) string {
	t.Helper()
	api, wc := ice.NewAPI(ice.Config{LoopbackOnly: true})
	pc, err := api.NewPeerConnection(wc)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.CreateDataChannel(channelLabel, nil); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	sdp, err := gather(context.Background(), pc, offer)
	if err != nil {
		t.Fatal(err)
	}
	return sdp
}

// signedOffer is an offer from signer to to, signed at time at.
func signedOffer(signer *identity.Identity, to identity.NodeID, content [32]byte, sdp string, at time.Time) wire.Signal {
	s := wire.Signal{From: signer.ID, To: to, Kind: wire.SignalOffer, Data: sdp,
		Content: content, PubKey: signer.Public, Time: at.UnixMilli()}
	rand.Read(s.Session[:])
	s.Sig = signer.Sign(s.SignedBytes())
	return s
}

// An offer captured on the way and sent again, after its session ended or
// while it runs, is refused and starts nothing.
func TestReplayedOfferRefused(t *testing.T) {
	rn := &recordingNet{testNet: newTestNet()}
	src := newMapSource()
	id := src.share(t, randomFile(t, t.TempDir(), "f", 300<<10))
	up := newTestEngine(t, rn.testNet, testEngineOpts{source: src})
	down := newTestEngine(t, rn.testNet, testEngineOpts{config: func(c *Config) { c.Signal = rn.signal }})

	if _, err := down.Download(context.Background(), Request{Content: id, Name: "f", OutDir: t.TempDir(),
		Sources: []wire.Source{up.asSource()}}); err != nil {
		t.Fatal(err)
	}
	rn.mu.Lock()
	offers := rn.offers
	rn.mu.Unlock()
	if len(offers) != 1 || offers[0].Time == 0 {
		t.Fatalf("recorded offers %+v, want one with a time", offers)
	}
	// Wait until the upload session ended, so that the replay is not simply
	// a duplicate of a live session.
	testwait.Until(t, 10*time.Second, func() bool {
		up.mu.Lock()
		defer up.mu.Unlock()
		return len(up.sessions) == 0
	}, "upload session still open")
	before := up.Stats()
	up.HandleSignal(offers[0])
	after := up.Stats()
	if after.Refusals.Replayed != 1 {
		t.Fatalf("refusals after replay %+v", after.Refusals)
	}
	if after.UploadsAccepted != before.UploadsAccepted || after.SignalsDropped != before.SignalsDropped+1 {
		t.Fatalf("replay admitted: before %+v after %+v", before, after)
	}
	up.mu.Lock()
	sessions, pending := len(up.sessions), up.pending
	up.mu.Unlock()
	if sessions != 0 || pending != 0 {
		t.Fatalf("replay left %d sessions, %d pending", sessions, pending)
	}
}

// Offers signed outside the window, either way, or without a time are
// refused without an answer; the time is covered by the signature.
func TestOldOfferRefused(t *testing.T) {
	n := newTestNet()
	src := newMapSource()
	id := src.share(t, randomFile(t, t.TempDir(), "f", 64<<10))
	up := newTestEngine(t, n, testEngineOpts{source: src})
	peer, _ := identity.Generate()
	w := DefaultOfferWindow
	now := time.Now()

	check := func(name string, s wire.Signal, want func(Refusals) uint64) {
		t.Helper()
		before := up.Stats()
		up.HandleSignal(s)
		after := up.Stats()
		if want(after.Refusals) != want(before.Refusals)+1 || after.UploadsAccepted != before.UploadsAccepted {
			t.Errorf("%s: refusals %+v, accepted %d -> %d", name, after.Refusals,
				before.UploadsAccepted, after.UploadsAccepted)
		}
	}
	check("older than the window", signedOffer(peer, up.self, id, "v=0", now.Add(-w-time.Second)),
		func(r Refusals) uint64 { return r.Stale })
	check("ahead of the window", signedOffer(peer, up.self, id, "v=0", now.Add(w+time.Minute)),
		func(r Refusals) uint64 { return r.Future })
	noTime := wire.Signal{From: peer.ID, To: up.self, Kind: wire.SignalOffer, Data: "v=0", Content: id, PubKey: peer.Public}
	noTime.Sig = peer.Sign(noTime.SignedBytes())
	check("without time", noTime, func(r Refusals) uint64 { return r.NoTime })

	// A stale offer made fresh after signing fails the signature.
	s := signedOffer(peer, up.self, id, "v=0", now.Add(-w-time.Second))
	s.Time = now.UnixMilli()
	before := up.Stats()
	up.HandleSignal(s)
	if after := up.Stats(); after.SignalsDropped != before.SignalsDropped+1 || after.Refusals != before.Refusals ||
		after.UploadsAccepted != before.UploadsAccepted {
		t.Errorf("re-timed offer: before %+v after %+v", before, after)
	}

	// Inside the window (a skewed clock) it is considered: admitted, then
	// dropped for its bad SDP.
	before = up.Stats()
	up.HandleSignal(signedOffer(peer, up.self, id, "v=0", now.Add(-w/2)))
	if after := up.Stats(); after.UploadsAccepted != before.UploadsAccepted+1 {
		t.Errorf("offer within the window not admitted: %+v", after)
	}
	if s := up.Stats().Refusals; s.Stale != 1 || s.Future != 1 || s.NoTime != 1 || s.Replayed != 0 {
		t.Errorf("refusals %+v", s)
	}
}

// The measured attack: a peer sends 8 genuine offers that never connect,
// which used to take all 8 upload slots. Now it holds its 2 pending places
// only, and an honest download from the same sharer succeeds meanwhile.
func TestOffersThatNeverConnectCannotBlockDownload(t *testing.T) {
	n := newTestNet()
	src := newMapSource()
	path := randomFile(t, t.TempDir(), "f.bin", 1<<20)
	id := src.share(t, path)
	up := newTestEngine(t, n, testEngineOpts{source: src})
	down := newTestEngine(t, n, testEngineOpts{})

	attacker, _ := identity.Generate()
	n.mu.Lock()
	n.blackhole[attacker.ID] = true // answers go nowhere: ICE never starts
	n.mu.Unlock()
	sdp := realOfferSDP(t)
	for range DefaultMaxUploads {
		up.HandleSignal(signedOffer(attacker, up.self, id, sdp, time.Now()))
	}
	if r := up.Refusals(); r.PeerPending != DefaultMaxUploads-DefaultMaxPendingPerPeer {
		t.Fatalf("refusals %+v, want %d for pending offers", r, DefaultMaxUploads-DefaultMaxPendingPerPeer)
	}
	up.mu.Lock()
	pending, uploads := up.peerPending[attacker.ID], up.uploads
	up.mu.Unlock()
	if pending != DefaultMaxPendingPerPeer || uploads != 0 {
		t.Fatalf("attacker holds %d pending places and %d slots", pending, uploads)
	}

	out := t.TempDir()
	res, err := down.Download(context.Background(), Request{Content: id, Name: "f.bin", OutDir: out,
		Sources: []wire.Source{up.asSource()}})
	if err != nil {
		t.Fatalf("honest download while offers never connect: %v", err)
	}
	sameFile(t, path, res.Path)
	// The attacker's offers still wait for their connect deadline; none of
	// them took a slot.
	up.mu.Lock()
	pending = up.peerPending[attacker.ID]
	up.mu.Unlock()
	if pending != DefaultMaxPendingPerPeer {
		t.Fatalf("attacker pending %d after the download", pending)
	}
}

// The per-peer and total pending caps, and the connect deadline that frees
// a pending place.
func TestPendingCaps(t *testing.T) {
	n := newTestNet()
	src := newMapSource()
	id := src.share(t, randomFile(t, t.TempDir(), "f", 64<<10))
	up := newTestEngine(t, n, testEngineOpts{source: src, config: func(c *Config) {
		c.MaxPending = 3
		c.ConnectTimeout = 2 * time.Second
	}})
	a, _ := identity.Generate()
	b, _ := identity.Generate()
	n.mu.Lock()
	n.blackhole[a.ID], n.blackhole[b.ID] = true, true
	n.mu.Unlock()
	sdp := realOfferSDP(t)

	offer := func(who *identity.Identity) { up.HandleSignal(signedOffer(who, up.self, id, sdp, time.Now())) }
	offer(a)
	offer(a)
	offer(a) // over a's 2
	if r := up.Refusals(); r.PeerPending != 1 || r.Pending != 0 {
		t.Fatalf("after a's third offer: %+v", r)
	}
	offer(b)
	offer(b) // over the total of 3
	if r := up.Refusals(); r.PeerPending != 1 || r.Pending != 1 {
		t.Fatalf("after b's second offer: %+v", r)
	}
	up.mu.Lock()
	got := [3]int{up.pending, up.peerPending[a.ID], up.peerPending[b.ID]}
	up.mu.Unlock()
	if got != [3]int{3, 2, 1} {
		t.Fatalf("pending total, a, b = %v", got)
	}

	// Past the connect deadline the places are free again.
	testwait.Until(t, 10*time.Second, func() bool { return up.Refusals().PendingExpired == 3 },
		"pending offers did not expire: %+v", up.Refusals())
	up.mu.Lock()
	left, peers := up.pending, len(up.peerPending)
	up.mu.Unlock()
	if left != 0 || peers != 0 {
		t.Fatalf("after expiry %d pending, %d peers", left, peers)
	}
	before := up.Stats().UploadsAccepted
	offer(a)
	if up.Stats().UploadsAccepted != before+1 {
		t.Fatalf("a refused after its offers expired: %+v", up.Refusals())
	}
}

// The replay cache holds at most MaxOffersPerPeer offers of one peer and
// MaxOfferCache in all, refusing beyond them rather than forgetting.
func TestOfferCacheBounds(t *testing.T) {
	n := newTestNet()
	up := newTestEngine(t, n, testEngineOpts{config: func(c *Config) {
		c.MaxOffersPerPeer = 3
		c.MaxOfferCache = 4
	}})
	a, _ := identity.Generate()
	b, _ := identity.Generate()
	for range 4 {
		up.HandleSignal(signedOffer(a, up.self, [32]byte{1}, "v=0", time.Now()))
	}
	for range 2 {
		up.HandleSignal(signedOffer(b, up.self, [32]byte{1}, "v=0", time.Now()))
	}
	r := up.Refusals()
	// No Source: every remembered offer is refused as not shared.
	if r.PeerOffers != 1 || r.OfferCache != 1 || r.NotShared != 4 {
		t.Fatalf("refusals %+v", r)
	}
	up.mu.Lock()
	total := up.offers.total
	up.mu.Unlock()
	if total != 4 {
		t.Fatalf("cache holds %d", total)
	}
}

// FuzzCheckOffer feeds arbitrary offers (peer, session, time) to the
// admission check and verifies its invariants: the cache stays within its
// bounds and consistent, and an offer just remembered is refused again.
func FuzzCheckOffer(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 3, 4})
	f.Add(make([]byte, 64))
	// An offer exactly one window old: accepted, so its replay must be found.
	f.Add([]byte{0, 0, 0xff, 0xfe, 0x2b, 0x40, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		e := &Engine{cfg: Config{OfferWindow: DefaultOfferWindow, MaxOffersPerPeer: 3, MaxOfferCache: 5},
			offers: offerCache{byPeer: map[identity.NodeID][]seenOffer{}}}
		now := time.UnixMilli(1_800_000_000_000)
		for len(data) >= 2 {
			var s wire.Signal
			s.From[0] = data[0] % 4
			s.Session[0] = data[1] % 8
			data = data[2:]
			s.Time = now.UnixMilli()
			if len(data) >= 8 {
				// An offset of up to about ±4 minutes around now.
				s.Time += int64(int32(binary.BigEndian.Uint32(data))) % 240_000
				now = now.Add(time.Duration(data[4]) * time.Second)
				data = data[8:]
			}
			why := e.checkOffer(s, now)
			if why == "" {
				if again := e.checkOffer(s, now); again != reasonReplayed {
					t.Fatalf("offer accepted twice: %q", again)
				}
			}
			sum := 0
			for _, l := range e.offers.byPeer {
				if len(l) > e.cfg.MaxOffersPerPeer || len(l) == 0 {
					t.Fatalf("peer list of %d", len(l))
				}
				sum += len(l)
			}
			if sum != e.offers.total || sum > e.cfg.MaxOfferCache {
				t.Fatalf("total %d, sum %d", e.offers.total, sum)
			}
		}
	})
}

// One peer holds at most MaxUploadsPerPeer upload sessions, connected and
// pending together: one identity that connects for real cannot take every
// slot, and the others' downloads still find one.
func TestUploadSlotsPerPeer(t *testing.T) {
	n := newTestNet()
	src := newMapSource()
	id := src.share(t, randomFile(t, t.TempDir(), "f", 64<<10))
	up := newTestEngine(t, n, testEngineOpts{source: src})
	a, _ := identity.Generate()
	b, _ := identity.Generate()

	var held []*session
	for i := range DefaultMaxUploadsPerPeer {
		sess := &session{peer: a.ID}
		if why := up.takeSlot(sess); why != "" {
			t.Fatalf("a's slot %d refused: %s", i+1, why)
		}
		held = append(held, sess)
	}
	if why := up.takeSlot(&session{peer: a.ID}); why != reasonPeerBusy {
		t.Fatalf("a's slot %d: %q, want %q", DefaultMaxUploadsPerPeer+1, why, reasonPeerBusy)
	}
	// An offer from a is refused at once, counted, and answered.
	n.mu.Lock()
	n.blackhole[a.ID] = true
	n.mu.Unlock()
	up.HandleSignal(signedOffer(a, up.self, id, realOfferSDP(t), time.Now()))
	if r := up.Refusals(); r.PeerBusy != 1 {
		t.Fatalf("refusals %+v, want PeerBusy 1", r)
	}
	// Another peer still gets a slot.
	sb := &session{peer: b.ID}
	if why := up.takeSlot(sb); why != "" {
		t.Fatalf("b refused: %s", why)
	}
	// When one of a's sessions ends, a may take a slot again.
	up.endSession(held[0])
	if why := up.takeSlot(&session{peer: a.ID}); why != "" {
		t.Fatalf("a after one session ended: %s", why)
	}
	up.mu.Lock()
	got := [2]int{up.peerUploads[a.ID], up.peerUploads[b.ID]}
	up.mu.Unlock()
	if got != [2]int{DefaultMaxUploadsPerPeer, 1} {
		t.Fatalf("slots by peer a, b = %v", got)
	}
}
