package gossip

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// keyTrust trusts the keys it holds, for packet tests.
type keyTrust map[identity.NodeID]ed25519.PublicKey

func (k keyTrust) key(id identity.NodeID) (ed25519.PublicKey, bool) {
	pub, ok := k[id]
	return pub, ok
}
func (keyTrust) verifyNow(context.Context, Meta) error { return nil }

// packetReceiver is the receiving half of an authTransport, without
// sockets: authenticate runs only on the packet pump, so tests call it
// directly.
func packetReceiver(trusted ...*identity.Identity) *authTransport {
	k := keyTrust{}
	for _, id := range trusted {
		k[id.ID] = id.Public
	}
	return &authTransport{
		trust: k, skew: DefaultClockSkew, maxSenders: 4,
		refusals: newRefusalCounters(zap.NewNop()), replay: make(map[identity.NodeID]*replayWindow),
	}
}

func packetAt(b []byte, at time.Time) *memberlist.Packet {
	return &memberlist.Packet{Buf: append([]byte{}, b...), From: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, Timestamp: at}
}

func TestPacketAuthentication(t *testing.T) {
	member, stranger := testIdentity(1), testIdentity(2)
	rx := packetReceiver(member)
	now := time.Now()
	seal := func(id *identity.Identity, at time.Time, payload string) []byte {
		b, err := sealPacket(id, at.UnixNano(), []byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := seal(member, now, "ping")
	p := packetAt(good, now)
	if !rx.authenticate(p) || string(p.Buf) != "ping" {
		t.Fatalf("a member's packet was refused or mangled: %q", p.Buf)
	}
	if len(good) != len("ping")+packetOverhead {
		t.Errorf("overhead %d, want %d", len(good)-len("ping"), packetOverhead)
	}
	flipped := append([]byte{}, good...)
	flipped[packetHeaderLen] ^= 1
	claimed := seal(stranger, now, "dead")
	copy(claimed[1:], member.ID[:])
	refused := []struct {
		name string
		buf  []byte
		at   time.Time
		want func(Refusals) uint64
	}{
		{"replayed", good, now, func(r Refusals) uint64 { return r.PacketReplay }},
		{"empty", nil, now, func(r Refusals) uint64 { return r.PacketMalformed }},
		{"header only", good[:packetOverhead], now, func(r Refusals) uint64 { return r.PacketMalformed }},
		{"other version", append([]byte{9}, good[1:]...), now, func(r Refusals) uint64 { return r.PacketMalformed }},
		{"from a stranger", seal(stranger, now, "ping"), now, func(r Refusals) uint64 { return r.PacketUnknown }},
		{"a stranger claiming a member's ID", claimed, now, func(r Refusals) uint64 { return r.PacketSignature }},
		{"payload changed", flipped, now, func(r Refusals) uint64 { return r.PacketSignature }},
		{"too old", seal(member, now.Add(-DefaultClockSkew-time.Second), "ping"), now, func(r Refusals) uint64 { return r.PacketClock }},
		{"from the future", seal(member, now.Add(DefaultClockSkew+time.Second), "ping"), now, func(r Refusals) uint64 { return r.PacketClock }},
	}
	for _, tt := range refused {
		before := tt.want(rx.refusals.Snapshot())
		if rx.authenticate(packetAt(tt.buf, tt.at)) {
			t.Errorf("%s: accepted", tt.name)
		}
		if tt.want(rx.refusals.Snapshot()) != before+1 {
			t.Errorf("%s: not counted under its reason: %+v", tt.name, rx.refusals.Snapshot())
		}
	}
	// Reordering within the window is fine; once replayDepth newer packets
	// came, an older one is refused even if it was never seen.
	late := seal(member, now.Add(-time.Millisecond), "late")
	if !rx.authenticate(packetAt(late, now)) {
		t.Error("a reordered packet was refused")
	}
	for i := range replayDepth {
		if !rx.authenticate(packetAt(seal(member, now.Add(time.Duration(i+1)*time.Microsecond), "x"), now)) {
			t.Fatalf("packet %d refused", i)
		}
	}
	if rx.authenticate(packetAt(seal(member, now.Add(-2*time.Millisecond), "older"), now)) {
		t.Error("a packet older than the whole window was accepted")
	}
}

// The replay windows are bounded: senders beyond maxSenders push out the
// silent ones.
func TestReplayWindowsBounded(t *testing.T) {
	ids := []*identity.Identity{testIdentity(1), testIdentity(2), testIdentity(3), testIdentity(4), testIdentity(5), testIdentity(6)}
	rx := packetReceiver(ids...)
	now := time.Now()
	for _, id := range ids {
		b, _ := sealPacket(id, now.UnixNano(), []byte("ping"))
		if !rx.authenticate(packetAt(b, now)) {
			t.Fatal("refused")
		}
		if len(rx.replay) > rx.maxSenders {
			t.Fatalf("%d replay windows, limit %d", len(rx.replay), rx.maxSenders)
		}
	}
}

// FuzzPacket feeds the packet decoder and authentication arbitrary bytes,
// seeded with real packets. Whatever authenticates must be exactly what the
// trusted key would seal for that time and payload.
func FuzzPacket(f *testing.F) {
	member := testIdentity(1)
	now := time.Unix(1_750_000_000, 0)
	for _, payload := range []string{"p", "ping with a longer payload", string(forgedMsg(msgDead, 7, "x", "y"))} {
		b, err := sealPacket(member, now.UnixNano(), []byte(payload))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{packetVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, signed, payload, sig, err := parsePacket(b)
		if err == nil && (len(signed)+len(sig) != len(b) || len(payload) != len(b)-packetOverhead || len(sig) != ed25519.SignatureSize) {
			t.Fatalf("parse split %d bytes into %d signed, %d payload, %d signature", len(b), len(signed), len(payload), len(sig))
		}
		rx := packetReceiver(member)
		p := packetAt(b, now)
		if !rx.authenticate(p) {
			return
		}
		re, err := sealPacket(member, h.time, p.Buf)
		if err != nil || string(re) != string(b) {
			t.Fatalf("accepted a packet the member did not seal: %x", b)
		}
	})
}

// FuzzMetaFrame feeds the stream handshake's frame reader arbitrary bytes.
func FuzzMetaFrame(f *testing.F) {
	var w frameBuf
	b, _ := EncodeMeta(sampleMeta(), testIdentity(1))
	_ = writeMetaFrame(&w, b)
	f.Add([]byte(w))
	f.Add([]byte{0xff, 0xff})
	f.Add([]byte{0, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := frameBuf(in)
		got, err := readMetaFrame(&r)
		if err != nil {
			return
		}
		if len(got) > MaxMetaSize || 2+len(got) > len(in) {
			t.Fatalf("read %d bytes from %d", len(got), len(in))
		}
	})
}

// frameBuf is a minimal io.ReadWriter.
type frameBuf []byte

func (b *frameBuf) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }
func (b *frameBuf) Read(p []byte) (int, error) {
	if len(*b) == 0 {
		return 0, errors.New("EOF")
	}
	n := copy(p, *b)
	*b = (*b)[n:]
	return n, nil
}

// BenchmarkPacket measures what signing costs per memberlist packet.
func BenchmarkPacket(b *testing.B) {
	member := testIdentity(1)
	payload := make([]byte, 1400-packetOverhead)
	b.Run("seal", func(b *testing.B) {
		for b.Loop() {
			if _, err := sealPacket(member, time.Now().UnixNano(), payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("authenticate", func(b *testing.B) {
		rx := packetReceiver(member)
		pkts := make([][]byte, 0, 1024)
		for i := range 1024 {
			p, _ := sealPacket(member, time.Now().UnixNano()+int64(i), payload)
			pkts = append(pkts, p)
		}
		i := 0
		for b.Loop() {
			rx.replay = map[identity.NodeID]*replayWindow{} // every packet new
			if !rx.authenticate(packetAt(pkts[i%len(pkts)], time.Now())) {
				b.Fatal("refused")
			}
			i++
		}
	})
}

// recordingVerify counts calls per control address and fails those in bad.
type recordingVerify struct {
	mu    sync.Mutex
	calls map[string]int
	bad   map[string]bool
	gate  chan struct{} // if not nil, each call waits for it
}

func (r *recordingVerify) verify(ctx context.Context, m Meta) error {
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[m.Control]++
	if r.bad[m.Control] {
		return errors.New("connection refused")
	}
	return nil
}

func (r *recordingVerify) count(control string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[control]
}

func testVerifier(t *testing.T, rv *recordingVerify, capacity int, onVerified func(verifyKey)) *verifier {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Creds = newCreds(t)
	cfg.Verify = rv.verify
	cfg.VerifyCache = capacity
	cfg = cfg.withDefaults()
	if onVerified == nil {
		onVerified = func(verifyKey) {}
	}
	v := newVerifier(cfg, zap.NewNop(), newRefusalCounters(zap.NewNop()), onVerified)
	t.Cleanup(v.close)
	return v
}

func metaFor(id *identity.Identity, control string) Meta {
	return Meta{NodeID: id.ID, Key: [32]byte(id.Public), Control: control}
}

func TestVerifierCachesAndShares(t *testing.T) {
	rv := &recordingVerify{calls: map[string]int{}, bad: map[string]bool{"127.0.0.1:9": true}, gate: make(chan struct{})}
	v := testVerifier(t, rv, 2, nil)
	id := testIdentity(1)
	m := metaFor(id, "127.0.0.1:1")
	// Eight streams from the same new peer wait for one dial.
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v.verifyNow(context.Background(), m) != nil {
				failed.Add(1)
			}
		}()
	}
	close(rv.gate)
	wg.Wait()
	if rv.count(m.Control) != 1 || failed.Load() != 0 {
		t.Fatalf("%d dials, %d failures; want 1 dial, none failed", rv.count(m.Control), failed.Load())
	}
	if pub, ok := v.key(id.ID); !ok || !pub.Equal(id.Public) || !v.verified(m) {
		t.Fatal("verified key not trusted")
	}
	// A failure is remembered for VerifyRetry: no second dial.
	bad := metaFor(testIdentity(2), "127.0.0.1:9")
	for range 2 {
		if err := v.verifyNow(context.Background(), bad); !errors.Is(err, ErrUnverified) {
			t.Fatalf("bad: %v, want ErrUnverified", err)
		}
	}
	if rv.count(bad.Control) != 1 {
		t.Errorf("failure dialled %d times within the retry time", rv.count(bad.Control))
	}
	if _, ok := v.key(bad.NodeID); ok {
		t.Error("failed key trusted")
	}
	// The same node at a new control address is verified again; the cache
	// of two then forgets the least recently used entry, the first.
	moved := metaFor(id, "127.0.0.1:2")
	if v.verified(moved) {
		t.Fatal("new address counted as verified")
	}
	if err := v.verifyNow(context.Background(), moved); err != nil || rv.count(moved.Control) != 1 {
		t.Fatalf("moved: %v, %d dials", err, rv.count(moved.Control))
	}
	v.mu.Lock()
	n := v.entries.len()
	v.mu.Unlock()
	if n > 2 {
		t.Errorf("cache holds %d entries, limit two", n)
	}
	if v.verified(m) {
		t.Error("the least recently used entry was kept")
	}
	if _, ok := v.key(id.ID); !ok {
		t.Error("key dropped while an entry for it is verified")
	}
}

func TestVerifierBackground(t *testing.T) {
	rv := &recordingVerify{calls: map[string]int{}, bad: map[string]bool{}}
	got := make(chan verifyKey, 4)
	v := testVerifier(t, rv, 16, func(k verifyKey) { got <- k })
	m := metaFor(testIdentity(3), "127.0.0.1:3")
	v.request(m)
	v.request(m) // already running or done: no second dial
	select {
	case k := <-got:
		if k != keyOf(m) {
			t.Fatalf("verified %+v", k)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("background verification never finished")
	}
	v.request(m)
	if n := rv.count(m.Control); n != 1 {
		t.Errorf("%d dials, want 1", n)
	}
	// This node itself is trusted without a dial.
	self := metaFor(v.selfKeyIdentity(), "127.0.0.1:4")
	if !v.verified(self) || v.verifyNow(context.Background(), self) != nil {
		t.Error("self not trusted")
	}
}

// selfKeyIdentity returns the verifier's own identity, for tests.
func (v *verifier) selfKeyIdentity() *identity.Identity {
	return &identity.Identity{ID: v.self, Public: v.selfKey}
}

// The alive filter refuses metadata older than the newest it accepted for a
// node (a replay to roll back Slots or Control), and a different record with
// the same time.
func TestAliveFilterRefusesRollback(t *testing.T) {
	rv := &recordingVerify{calls: map[string]int{}, bad: map[string]bool{}}
	v := testVerifier(t, rv, 16, nil)
	refusals := newRefusalCounters(zap.NewNop())
	f := newAliveFilter(zap.NewNop(), refusals, v, 16)
	id := testIdentity(5)
	g := netip.MustParseAddrPort("127.0.0.1:7401")
	node := func(slots uint16, issued time.Time) *memberlist.Node {
		b, err := EncodeMeta(Meta{Gossip: g, Issued: issued, Control: "127.0.0.1:7400", Slots: slots}, id)
		if err != nil {
			t.Fatal(err)
		}
		return &memberlist.Node{Name: id.ID.String(), Addr: net.IPv4(127, 0, 0, 1).To4(), Port: 7401, Meta: b}
	}
	t0 := time.UnixMilli(1_750_000_000_000)
	steps := []struct {
		name string
		n    *memberlist.Node
		ok   bool
	}{
		{"first record", node(0, t0), true},
		{"the same again", node(0, t0), true},
		{"newer", node(5, t0.Add(time.Second)), true},
		{"old record replayed", node(0, t0), false},
		{"same time, other content", node(200, t0.Add(time.Second)), false},
		{"newer still", node(7, t0.Add(2*time.Second)), true},
	}
	for _, s := range steps {
		err := f.NotifyAlive(s.n)
		if (err == nil) != s.ok {
			t.Errorf("%s: %v, want accepted = %v", s.name, err, s.ok)
		}
		if !s.ok && !errors.Is(err, ErrStaleMeta) {
			t.Errorf("%s: %v, want ErrStaleMeta", s.name, err)
		}
	}
	if n := refusals.Snapshot().MetaStale; n != 2 {
		t.Errorf("MetaStale = %d, want 2", n)
	}
}
