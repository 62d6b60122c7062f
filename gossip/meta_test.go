package gossip

import (
	"crypto/ed25519"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/fxamacker/cbor/v2"
)

// testIdentity returns a fixed identity for seed, so that encodings (and
// Ed25519 signatures, which are deterministic) are the same on every run.
func testIdentity(seed byte) *identity.Identity {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed + byte(i)
	}
	priv := ed25519.NewKeyFromSeed(s)
	pub := priv.Public().(ed25519.PublicKey)
	return &identity.Identity{Private: priv, Public: pub, ID: identity.IDFromPublicKey(pub)}
}

var sampleIssued = time.UnixMilli(1_750_000_000_123).UTC()

func sampleMeta() Meta {
	return Meta{
		Version:  MetaVersion,
		Gossip:   netip.MustParseAddrPort("203.0.113.7:7401"),
		Issued:   sampleIssued,
		Control:  "203.0.113.7:7400",
		Software: "canopy/0.1.0",
		Proto:    1,
		Leaves:   412,
		Slots:    88,
		Load:     37,
		Uptime:   86400,
	}
}

// signedBy returns m as DecodeMeta returns it after id signed it.
func signedBy(m Meta, id *identity.Identity) Meta {
	if m.Version == 0 {
		m.Version = MetaVersion
	}
	m.NodeID, m.Key = id.ID, [32]byte(id.Public)
	return m
}

func TestMetaRoundTrip(t *testing.T) {
	base := func(f func(*Meta)) Meta {
		m := Meta{Gossip: netip.MustParseAddrPort("127.0.0.1:2"), Issued: sampleIssued, Control: "127.0.0.1:1"}
		f(&m)
		return m
	}
	tests := []struct {
		name string
		meta Meta
	}{
		{"sample", sampleMeta()},
		{"zero counters", base(func(*Meta) {})},
		{"ipv6", base(func(m *Meta) {
			m.Control, m.Software = "[2001:db8::1]:7400", "canopy/9.9.9"
			m.Gossip = netip.MustParseAddrPort("[2001:db8::1]:7401")
		})},
		{"dns name", base(func(m *Meta) { m.Control, m.Load = "super-1.example.org:443", 100 })},
		{"maxima", base(func(m *Meta) {
			m.Version, m.Control, m.Proto, m.Leaves, m.Slots, m.Load, m.Uptime, m.Files = 255, "h:65535", 255, 65535, 65535, 100, 1<<32-1, 1<<32-1
		})},
	}
	id := testIdentity(1)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := EncodeMeta(tt.meta, id)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeMeta(b)
			if err != nil {
				t.Fatal(err)
			}
			if want := signedBy(tt.meta, id); got != want {
				t.Errorf("round trip changed meta:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// EncodeMeta takes the node ID and key from the identity, whatever the Meta
// says, so no node can publish a record naming another.
func TestEncodeMetaTakesIdentityFromKey(t *testing.T) {
	m := sampleMeta()
	m.NodeID = testIdentity(7).ID
	b, err := EncodeMeta(m, testIdentity(1))
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMeta(b)
	if err != nil || got.NodeID != testIdentity(1).ID {
		t.Fatalf("decoded %v, %v; want node %s", got.NodeID, err, testIdentity(1).ID)
	}
	if _, err := EncodeMeta(sampleMeta(), nil); !errors.Is(err, ErrBadMeta) {
		t.Fatalf("no identity: %v, want ErrBadMeta", err)
	}
}

func TestEncodeMetaDefaultsVersion(t *testing.T) {
	m := sampleMeta()
	m.Version = 0
	b, err := EncodeMeta(m, testIdentity(1))
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != MetaVersion {
		t.Errorf("version %d, want %d", got.Version, MetaVersion)
	}
}

func TestEncodeMetaDeterministic(t *testing.T) {
	a, _ := EncodeMeta(sampleMeta(), testIdentity(1))
	b, _ := EncodeMeta(sampleMeta(), testIdentity(1))
	if string(a) != string(b) {
		t.Fatal("same meta encoded differently")
	}
	t.Logf("sample meta encodes to %d bytes", len(a))
}

// TestMetaWorstCaseFits shows that every Meta that passes validation fits in
// memberlist's limit, signature and key included, so EncodeMeta never hands
// memberlist metadata it would panic on.
func TestMetaWorstCaseFits(t *testing.T) {
	host := strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("b", 61) // 253 bytes
	m := Meta{
		Version:  255,
		Gossip:   netip.MustParseAddrPort("[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
		Issued:   time.UnixMilli(1<<63 - 1).UTC(),
		Control:  host + ":65535",
		Software: strings.Repeat("~", maxSoftwareLen),
		Proto:    255, Leaves: 65535, Slots: 65535, Load: 100, Uptime: 1<<32 - 1, Files: 1<<32 - 1,
	}
	b, err := EncodeMeta(m, testIdentity(9))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxMetaSize {
		t.Fatalf("worst case is %d bytes, over %d", len(b), MaxMetaSize)
	}
	t.Logf("worst-case meta encodes to %d of %d bytes", len(b), MaxMetaSize)
}

func TestEncodeMetaRejects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Meta)
	}{
		{"empty control", func(m *Meta) { m.Control = "" }},
		{"control without port", func(m *Meta) { m.Control = "203.0.113.7" }},
		{"control port zero", func(m *Meta) { m.Control = "203.0.113.7:0" }},
		{"control port too big", func(m *Meta) { m.Control = "203.0.113.7:65536" }},
		{"control port name", func(m *Meta) { m.Control = "203.0.113.7:http" }},
		{"control empty host", func(m *Meta) { m.Control = ":7400" }},
		{"control bad host", func(m *Meta) { m.Control = "bad host:7400" }},
		{"control host hyphen", func(m *Meta) { m.Control = "-x.example:7400" }},
		{"control too long", func(m *Meta) { m.Control = strings.Repeat("a.", 200) + "a:1" }},
		{"load over 100", func(m *Meta) { m.Load = 101 }},
		{"software too long", func(m *Meta) { m.Software = strings.Repeat("x", maxSoftwareLen+1) }},
		{"software control char", func(m *Meta) { m.Software = "canopy\n0.1" }},
		{"software non-ASCII", func(m *Meta) { m.Software = "canöpy" }},
		{"no gossip address", func(m *Meta) { m.Gossip = netip.AddrPort{} }},
		{"gossip port zero", func(m *Meta) { m.Gossip = netip.MustParseAddrPort("203.0.113.7:0") }},
		{"gossip unspecified", func(m *Meta) { m.Gossip = netip.MustParseAddrPort("0.0.0.0:7401") }},
		{"gossip mapped IPv4", func(m *Meta) { m.Gossip = netip.MustParseAddrPort("[::ffff:203.0.113.7]:7401") }},
		{"gossip zone", func(m *Meta) { m.Gossip = netip.MustParseAddrPort("[fe80::1%eth0]:7401") }},
		{"no issue time", func(m *Meta) { m.Issued = time.Time{} }},
		{"issued before 1970", func(m *Meta) { m.Issued = time.UnixMilli(-5) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := sampleMeta()
			tt.mutate(&m)
			if _, err := EncodeMeta(m, testIdentity(1)); !errors.Is(err, ErrBadMeta) {
				t.Fatalf("EncodeMeta: got %v, want ErrBadMeta", err)
			}
		})
	}
}

// encodeRaw encodes v without EncodeMeta's checks, to build inputs it would
// refuse.
func encodeRaw(t testing.TB, v any) []byte {
	t.Helper()
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	b, err := em.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signRaw wraps body (a CBOR map) in the signed form, signed by id.
func signRaw(t testing.TB, id *identity.Identity, body []byte) []byte {
	t.Helper()
	sig, err := id.SignContext(metaContext, body)
	if err != nil {
		t.Fatal(err)
	}
	return encodeRaw(t, map[int]any{1: body, 2: sig})
}

// validBody is a minimal body that decodes, for id.
func validBody(id *identity.Identity) map[any]any {
	return map[any]any{0: int(MetaVersion), 2: "203.0.113.7:7400", 9: []byte(id.Public),
		10: []byte{203, 0, 113, 7, 0xe9, 0x1c}, 11: uint64(sampleIssued.UnixMilli())}
}

func TestDecodeMetaRejects(t *testing.T) {
	id, other := testIdentity(1), testIdentity(2)
	// with signs, correctly, a body with key k set to v: these fail on
	// content, not on the signature.
	with := func(k any, v any) []byte {
		m := validBody(id)
		m[k] = v
		return signRaw(t, id, encodeRaw(t, m))
	}
	without := func(k any) []byte {
		m := validBody(id)
		delete(m, k)
		return signRaw(t, id, encodeRaw(t, m))
	}
	body := encodeRaw(t, validBody(id))
	good := signRaw(t, id, body)
	if _, err := DecodeMeta(good); err != nil {
		t.Fatalf("baseline does not decode: %v", err)
	}
	sig, _ := id.SignContext(metaContext, body)
	tampered := append([]byte{}, body...)
	tampered[len(tampered)-1] ^= 1 // the issue time's last byte
	otherKey := validBody(id)
	otherKey[9] = []byte(other.Public)
	tests := []struct {
		name      string
		in        []byte
		signature bool // the failure is the signature's
	}{
		{"empty", nil, false},
		{"garbage", []byte("not cbor at all"), false},
		{"null", []byte{0xf6}, false},
		{"array", encodeRaw(t, []int{1, 2, 3}), false},
		{"trailing bytes", append(append([]byte{}, good...), 0x00), false},
		{"truncated", good[:len(good)-3], false},
		{"too large", make([]byte, MaxMetaSize+1), false},
		{"unsigned version 1", encodeRaw(t, map[int]any{0: 1, 1: id.ID[:], 2: "203.0.113.7:7400"}), false},
		{"body not a map", signRaw(t, id, encodeRaw(t, []int{1})), false},
		{"body garbage", encodeRaw(t, map[int]any{1: []byte("xx"), 2: sig}), false},
		{"signed version 1", with(0, 1), false},
		{"no version", without(0), false},
		{"no key", without(9), false},
		{"short key", with(9, []byte(id.Public[:31])), false},
		{"no control", without(2), false},
		{"no gossip", without(10), false},
		{"gossip garbage", with(10, []byte{1, 2, 3}), false},
		{"gossip unspecified", with(10, []byte{0, 0, 0, 0, 0xe9, 0x1c}), false},
		{"no issue time", without(11), false},
		{"issue time overflow", with(11, uint64(1)<<63), false},
		{"version overflow", with(0, 256), false},
		{"negative load", with(7, -1), false},
		{"load over 100", with(7, 101), false},
		{"leaves overflow", with(5, 70000), false},
		{"uptime overflow", with(8, uint64(1)<<33), false},
		{"control wrong type", with(2, 7400), false},
		{"control invalid UTF-8", with(2, string([]byte{0xff, ':', '1'})), false},
		{"deep unknown field", with(99, []any{[]any{[]any{[]any{[]any{1}}}}}), false},
		{"big unknown array", with(99, make([]int, 17)), false},
		{"tagged", append([]byte{0xd8, 0x20}, good...), false},
		{"indefinite outer map", append(append([]byte{0xbf}, good[1:]...), 0xff), false},
		{"no signature", encodeRaw(t, map[int]any{1: body}), true},
		{"short signature", encodeRaw(t, map[int]any{1: body, 2: sig[:63]}), true},
		{"tampered body", encodeRaw(t, map[int]any{1: tampered, 2: sig}), true},
		{"signed by another key", signRaw(t, other, body), true},
		{"key of another node", signRaw(t, id, encodeRaw(t, otherKey)), true},
		{"plain Ed25519 signature", encodeRaw(t, map[int]any{1: body, 2: id.Sign(body)}), true},
		{"packet context", func() []byte {
			s, _ := id.SignContext(packetContext, body)
			return encodeRaw(t, map[int]any{1: body, 2: s})
		}(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeMeta(tt.in)
			if !errors.Is(err, ErrBadMeta) {
				t.Fatalf("DecodeMeta: got (%+v, %v), want ErrBadMeta", m, err)
			}
			if got := errors.Is(err, identity.ErrBadSignature); got != tt.signature {
				t.Errorf("signature failure = %v, want %v (%v)", got, tt.signature, err)
			}
		})
	}
}

// TestDecodeMetaIgnoresUnknownFields keeps the format open: a later version
// may add keys, which the signature covers, and this version must still read
// the ones it knows.
func TestDecodeMetaIgnoresUnknownFields(t *testing.T) {
	id := testIdentity(1)
	body := validBody(id)
	body[0], body[6] = 3, 5
	body[42], body["named"], body[43] = "future field", []int{1, 2}, map[int]int{1: 2}
	m, err := DecodeMeta(signRaw(t, id, encodeRaw(t, body)))
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != 3 || m.NodeID != id.ID || m.Slots != 5 || m.Gossip.String() != "203.0.113.7:7401" {
		t.Errorf("got %+v", m)
	}
}
