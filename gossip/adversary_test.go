package gossip

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"io"
	"log"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/link"
	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// The strangers in this file are written against memberlist directly, on
// real UDP and TCP sockets on loopback, as someone attacking the ring would.

// staticMeta is a memberlist delegate publishing fixed metadata, to play a
// misbehaving member that bypasses this package.
type staticMeta []byte

func (s staticMeta) NodeMeta(int) []byte             { return s }
func (s staticMeta) NotifyMsg([]byte)                {}
func (s staticMeta) GetBroadcasts(int, int) [][]byte { return nil }
func (s staticMeta) LocalState(bool) []byte          { return nil }
func (s staticMeta) MergeRemoteState([]byte, bool)   {}

// plainStranger is stock memberlist with the ring's label and meta: the
// 30-line program that joined the unauthenticated ring.
func plainStranger(t *testing.T, name string, meta []byte) *memberlist.Memberlist {
	t.Helper()
	conf := memberlist.DefaultLocalConfig()
	conf.Name = name
	conf.BindAddr = "127.0.0.1"
	conf.BindPort = 0
	conf.Label = ringLabel
	conf.Logger = log.New(io.Discard, "", 0)
	conf.Delegate = staticMeta(meta)
	ml, err := memberlist.Create(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })
	return ml
}

// anyTrust trusts nobody's packets and verifies everybody's streams: the
// stranger's side of an authenticated transport, which only needs its own
// join stream to go out.
type anyTrust struct{}

func (anyTrust) key(identity.NodeID) (ed25519.PublicKey, bool) { return nil, false }
func (anyTrust) verifyNow(context.Context, Meta) error         { return nil }

// authStranger is memberlist on this package's authenticated transport with
// a real key: it proves creds' key on every stream and presents hello (a
// signed record, whose control address the ring will dial) in the stream
// handshake, while memberlist gossips name and meta, which may be anything.
func authStranger(t *testing.T, creds *link.Credentials, name string, hello func(gossip netip.AddrPort) []byte, meta func(gossip netip.AddrPort) []byte) *memberlist.Memberlist {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Creds, cfg.BindAddr = creds, "127.0.0.1"
	cfg = cfg.withDefaults()
	nt, err := listen(cfg, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(nt.GetAutoBindPort()))
	helloMeta := hello(addr)
	tr := newAuthTransport(nt, cfg, anyTrust{}, func() []byte { return helloMeta }, newRefusalCounters(zap.NewNop()), zap.NewNop())
	conf := memberlist.DefaultLocalConfig()
	conf.Name = name
	conf.BindAddr = "127.0.0.1"
	conf.BindPort, conf.AdvertisePort = nt.GetAutoBindPort(), nt.GetAutoBindPort()
	conf.Label = ringLabel
	conf.Transport = tr
	conf.Logger = log.New(io.Discard, "", 0)
	conf.Delegate = staticMeta(meta(addr))
	ml, err := memberlist.Create(conf)
	if err != nil {
		_ = tr.Shutdown()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })
	return ml
}

// signedMeta signs m for id with gossip address g, failing the test on error.
func signedMeta(t *testing.T, id *identity.Identity, m Meta, g netip.AddrPort) []byte {
	t.Helper()
	m.Gossip = g
	if m.Issued.IsZero() {
		m.Issued = time.Now()
	}
	b, err := EncodeMeta(m, id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// ringPair starts two real members and joins them.
func ringPair(t *testing.T) (a, b *testNode) {
	t.Helper()
	a, b = newTestNode(t), newTestNode(t)
	if _, err := b.ring.Join([]string{a.ring.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, 10*time.Second, []*testNode{a, b}, a, b)
	return a, b
}

// assertRingWorks checks that a and b still list exactly each other and that
// a metadata update from b still reaches a, and that neither ever reported
// the other leaving.
func assertRingWorks(t *testing.T, a, b *testNode) {
	t.Helper()
	m := *b.meta.Load()
	m.Slots = m.Slots%1000 + 1
	b.meta.Store(&m)
	if err := b.ring.UpdateMeta(time.Second); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, func() bool {
		for _, mem := range a.ring.Members() {
			if mem.Name == b.id.String() && mem.Meta.Slots == m.Slots {
				return true
			}
		}
		return false
	}, "waiting for b's update to reach a")
	waitMembers(t, time.Second, []*testNode{a, b}, a, b)
	for _, pair := range [][2]*testNode{{a, b}, {b, a}} {
		if _, ok := pair[0].events.find(EventLeave, pair[1].id.String()); ok {
			t.Errorf("%s reported %s leaving", pair[0].id.Short(), pair[1].id.Short())
		}
	}
}

// notListed fails t if any of the rings lists or ever reported name.
func notListed(t *testing.T, name string, nodes ...*testNode) {
	t.Helper()
	for _, n := range nodes {
		if slices.Contains(names(n.ring), name) {
			t.Errorf("%s lists %s", n.id.Short(), name)
		}
		if _, ok := n.events.find(EventJoin, name); ok {
			t.Errorf("%s reported %s joining", n.id.Short(), name)
		}
	}
}

// TestStrangersAreNotAdmitted plays every stranger the issue describes
// against a real ring of two: none is listed or reported, each refusal is
// counted under its reason, and the ring keeps working.
func TestStrangersAreNotAdmitted(t *testing.T) {
	a, b := ringPair(t)
	fake := Meta{Control: "127.0.0.1:9", Software: "canopy/evil", Slots: 9999}

	t.Run("plain memberlist with fake metadata", func(t *testing.T) {
		// The unsigned version-1 record the old ring accepted.
		old := encodeRaw(t, map[int]any{0: 1, 1: testIdentity(40).ID[:], 2: "127.0.0.1:9", 6: 9999})
		name := testIdentity(40).ID.String()
		before := a.ring.Refusals().StreamHandshake
		s := plainStranger(t, name, old)
		if _, err := s.Join([]string{a.ring.LocalAddr()}); err == nil {
			t.Error("a plain memberlist joined")
		}
		testwait.Until(t, 5*time.Second, func() bool { return a.ring.Refusals().StreamHandshake > before },
			"waiting for a to refuse the stream")
		notListed(t, name, a, b)
	})

	// The remaining strangers hold a real key and pass the transport's
	// stream handshake with a record that verifies; what memberlist then
	// gossips about them is the lie.
	creds := newCreds(t)
	id := creds.ID()
	control := startControl(t, creds)
	goodHello := func(g netip.AddrPort) []byte {
		return signedMeta(t, id, Meta{Control: control}, g)
	}
	cases := []struct {
		name   string
		node   string // memberlist name
		meta   func(netip.AddrPort) []byte
		reason func(Refusals) uint64
	}{
		{"garbage metadata", id.ID.String(),
			func(netip.AddrPort) []byte { return []byte("\xa1\x00\xff not cbor") },
			func(r Refusals) uint64 { return r.MetaInvalid }},
		{"valid-looking metadata signed by a wrong key", id.ID.String(),
			func(g netip.AddrPort) []byte {
				// The stranger's own key in the record, another key's
				// signature.
				b := signedMeta(t, testIdentity(41), fake, g)
				var s signedWire
				if err := metaDec.Unmarshal(b, &s); err != nil {
					t.Fatal(err)
				}
				var w map[int]any
				if err := metaDec.Unmarshal(s.Body, &w); err != nil {
					t.Fatal(err)
				}
				w[9] = []byte(id.Public)
				return encodeRaw(t, map[int]any{1: encodeRaw(t, w), 2: s.Sig})
			},
			func(r Refusals) uint64 { return r.MetaSignature }},
		{"metadata of another key under this name", id.ID.String(),
			func(g netip.AddrPort) []byte { return signedMeta(t, testIdentity(42), fake, g) },
			func(r Refusals) uint64 { return r.MetaName }},
		{"own record under another node's name", b.id.String(),
			func(g netip.AddrPort) []byte { return signedMeta(t, id, fake, g) },
			func(r Refusals) uint64 { return r.MetaName }},
		{"own record naming another gossip address", id.ID.String(),
			func(netip.AddrPort) []byte {
				return signedMeta(t, id, fake, netip.MustParseAddrPort(b.ring.LocalAddr()))
			},
			func(r Refusals) uint64 { return r.MetaAddr }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.reason(a.ring.Refusals())
			s := authStranger(t, creds, tc.node, goodHello, tc.meta)
			// The join's stream is accepted (the stranger proved a key
			// that verifies); a refuses what it says.
			if _, err := s.Join([]string{a.ring.LocalAddr()}); err != nil {
				t.Fatalf("join stream refused: %v", err)
			}
			testwait.Until(t, 5*time.Second, func() bool { return tc.reason(a.ring.Refusals()) > before },
				"waiting for a to refuse the stranger's alive message")
			_ = s.Shutdown()
			notListed(t, id.ID.String(), a, b)
			if tc.node != b.id.String() {
				notListed(t, tc.node, a, b)
			}
		})
	}

	t.Run("real key at an unreachable control address", func(t *testing.T) {
		creds := newCreds(t)
		dead := closedAddr(t)
		before := a.ring.Refusals()
		hello := func(g netip.AddrPort) []byte { return signedMeta(t, creds.ID(), Meta{Control: dead, Slots: 9999}, g) }
		s := authStranger(t, creds, creds.ID().ID.String(), hello, hello)
		if _, err := s.Join([]string{a.ring.LocalAddr()}); err == nil {
			t.Error("joined with a control address nobody answers at")
		}
		after := a.ring.Refusals()
		if after.StreamUnverified <= before.StreamUnverified || after.Unverified <= before.Unverified {
			t.Errorf("refusals %+v, want more StreamUnverified and Unverified than %+v", after, before)
		}
		notListed(t, creds.ID().ID.String(), a, b)
	})

	assertRingWorks(t, a, b)
}

// A member of the real implementation whose control address does not answer
// cannot join either: the member it contacts verifies it first.
func TestRingRefusesUnreachableJoiner(t *testing.T) {
	a, b := ringPair(t)
	creds := newCreds(t)
	cfg := testConfig(creds, closedAddr(t))
	r, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Join([]string{a.ring.LocalAddr()}); err == nil {
		t.Error("unreachable joiner joined")
	}
	notListed(t, creds.ID().ID.String(), a, b)
	if a.ring.Refusals().StreamUnverified == 0 {
		t.Error("refusal not counted")
	}
	assertRingWorks(t, a, b)
}

// msgpackStr encodes s as a msgpack string.
func msgpackStr(s string) []byte {
	if len(s) < 32 {
		return append([]byte{0xa0 | byte(len(s))}, s...)
	}
	return append([]byte{0xd9, byte(len(s))}, s...)
}

// forgedMsg builds a memberlist suspect (3) or dead (5) message about node,
// as memberlist encodes it (a msgpack map of the struct's fields), behind the
// ring's label header: what the attacker sent.
func forgedMsg(kind byte, incarnation uint32, node, from string) []byte {
	b := []byte{244, byte(len(ringLabel))}
	b = append(b, ringLabel...)
	b = append(b, kind, 0x83)
	b = append(b, msgpackStr("Incarnation")...)
	b = append(b, 0xce)
	b = binary.BigEndian.AppendUint32(b, incarnation)
	b = append(b, msgpackStr("Node")...)
	b = append(b, msgpackStr(node)...)
	b = append(b, msgpackStr("From")...)
	b = append(b, msgpackStr(from)...)
	return b
}

const (
	msgSuspect = 3
	msgDead    = 5
)

func sendUDP(t *testing.T, to string, packets ...[]byte) {
	t.Helper()
	c, err := net.Dial("udp", to)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range packets {
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
}

// TestForgedDeathDoesNotAuthenticate sends the measured attack, dead and
// suspect messages naming a live member with incarnation 2^32-1, first to a
// plain memberlist pair (where it works, which shows the forgery is what
// memberlist acts on), then to the ring: unsigned, signed by a stranger, and
// signed by a stranger claiming to be a member. None is accepted and no
// member is dropped.
func TestForgedDeathDoesNotAuthenticate(t *testing.T) {
	const maxInc = 1<<32 - 1
	// The control experiment: stock memberlist drops a live member.
	p1 := plainStranger(t, "p1", nil)
	p2 := plainStranger(t, "p2", nil)
	if _, err := p2.Join([]string{p1.LocalNode().Address()}); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 5*time.Second, func() bool { return p1.NumMembers() == 2 }, "waiting for the plain pair")
	sendUDP(t, p1.LocalNode().Address(), forgedMsg(msgDead, maxInc, "p2", "p1"))
	testwait.Until(t, 5*time.Second, func() bool { return p1.NumMembers() == 1 },
		"waiting for the forged dead message to drop p2 from plain memberlist")

	a, b := ringPair(t)
	stranger := testIdentity(60)
	victim := b.id.String()
	var packets [][]byte
	for _, kind := range []byte{msgDead, msgSuspect} {
		msg := forgedMsg(kind, maxInc, victim, a.id.String())
		packets = append(packets, msg) // unsigned
		signed, err := sealPacket(stranger, time.Now().UnixNano(), msg)
		if err != nil {
			t.Fatal(err)
		}
		packets = append(packets, signed) // signed by a key nobody verified
		// Claiming to come from b itself (as if b declared itself dead),
		// signed by the stranger.
		claimed := append([]byte{}, signed...)
		copy(claimed[1:], b.id[:])
		packets = append(packets, claimed)
	}
	before := a.ring.Refusals()
	for range 6 { // the measured attack sent six
		sendUDP(t, a.ring.LocalAddr(), packets...)
	}
	testwait.Until(t, 5*time.Second, func() bool {
		r := a.ring.Refusals()
		return r.PacketMalformed-before.PacketMalformed >= 12 && r.PacketUnknown-before.PacketUnknown >= 12 &&
			r.PacketSignature-before.PacketSignature >= 12
	}, "waiting for a to refuse every forged packet")
	assertRingWorks(t, a, b)
}

// A member that moves its control listener is hidden until the new address
// verifies, and listed again with it; an address that does not verify keeps
// it hidden, though memberlist still holds it.
func TestMemberReverifiedOnControlChange(t *testing.T) {
	a, b := ringPair(t)
	name := b.id.String()
	moved := startControl(t, b.creds)
	m := *b.meta.Load()
	m.Control = moved
	b.meta.Store(&m)
	if err := b.ring.UpdateMeta(time.Second); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, func() bool {
		for _, mem := range a.ring.Members() {
			if mem.Name == name && mem.Meta.Control == moved {
				return true
			}
		}
		return false
	}, "waiting for a to list b at its new control address")

	m.Control = closedAddr(t)
	b.meta.Store(&m)
	if err := b.ring.UpdateMeta(time.Second); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, func() bool {
		return !slices.Contains(names(a.ring), name) && a.ring.Unverified() == 1
	}, "waiting for a to hide b behind an unreachable control address")
	if ev, ok := a.events.find(EventLeave, name); !ok || ev.Member.Meta.Control != m.Control {
		t.Errorf("leave event %+v, %v", ev, ok)
	}
	if a.ring.Refusals().Unverified == 0 {
		t.Error("failed verification not counted")
	}
}
