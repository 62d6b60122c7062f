package gossip

import (
	"errors"
	"strings"
	"testing"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/fxamacker/cbor/v2"
)

func testID(b byte) identity.NodeID {
	var id identity.NodeID
	for i := range id {
		id[i] = b + byte(i)
	}
	return id
}

func sampleMeta() Meta {
	return Meta{
		Version:  MetaVersion,
		NodeID:   testID(1),
		Control:  "203.0.113.7:7400",
		Software: "canopy/0.1.0",
		Proto:    1,
		Leaves:   412,
		Slots:    88,
		Load:     37,
		Uptime:   86400,
	}
}

func TestMetaRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		meta Meta
	}{
		{"sample", sampleMeta()},
		{"zero counters", Meta{Version: 1, NodeID: testID(2), Control: "127.0.0.1:1"}},
		{"ipv6", Meta{Version: 1, NodeID: testID(3), Control: "[2001:db8::1]:7400", Software: "canopy/9.9.9"}},
		{"dns name", Meta{Version: 1, NodeID: testID(4), Control: "super-1.example.org:443", Load: 100}},
		{"maxima", Meta{Version: 255, NodeID: testID(5), Control: "h:65535", Proto: 255, Leaves: 65535, Slots: 65535, Load: 100, Uptime: 1<<32 - 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := EncodeMeta(tt.meta)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeMeta(b)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.meta {
				t.Errorf("round trip changed meta:\n got %+v\nwant %+v", got, tt.meta)
			}
		})
	}
}

func TestEncodeMetaDefaultsVersion(t *testing.T) {
	m := sampleMeta()
	m.Version = 0
	b, err := EncodeMeta(m)
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
	a, _ := EncodeMeta(sampleMeta())
	b, _ := EncodeMeta(sampleMeta())
	if string(a) != string(b) {
		t.Fatal("same meta encoded differently")
	}
	t.Logf("sample meta encodes to %d bytes", len(a))
}

// TestMetaWorstCaseFits shows that every Meta that passes validation fits in
// memberlist's limit, so EncodeMeta never hands memberlist metadata it would
// panic on.
func TestMetaWorstCaseFits(t *testing.T) {
	host := strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("b", 61) // 253 bytes
	m := Meta{
		Version:  255,
		NodeID:   testID(9),
		Control:  host + ":65535",
		Software: strings.Repeat("~", maxSoftwareLen),
		Proto:    255, Leaves: 65535, Slots: 65535, Load: 100, Uptime: 1<<32 - 1,
	}
	b, err := EncodeMeta(m)
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
		{"zero node ID", func(m *Meta) { m.NodeID = identity.NodeID{} }},
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := sampleMeta()
			tt.mutate(&m)
			if _, err := EncodeMeta(m); !errors.Is(err, ErrBadMeta) {
				t.Fatalf("EncodeMeta: got %v, want ErrBadMeta", err)
			}
		})
	}
}

// encodeRaw encodes v without EncodeMeta's checks, to build inputs it would
// refuse. Keys are sorted so that tests can splice the bytes.
func encodeRaw(t *testing.T, v any) []byte {
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

func TestDecodeMetaRejects(t *testing.T) {
	id := testID(1)
	valid := func() map[int]any {
		return map[int]any{0: 1, 1: id[:], 2: "203.0.113.7:7400"}
	}
	with := func(k int, v any) []byte {
		m := valid()
		m[k] = v
		return encodeRaw(t, m)
	}
	without := func(k int) []byte {
		m := valid()
		delete(m, k)
		return encodeRaw(t, m)
	}
	good := encodeRaw(t, valid())
	if _, err := DecodeMeta(good); err != nil {
		t.Fatalf("baseline does not decode: %v", err)
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"garbage", []byte("not cbor at all")},
		{"null", []byte{0xf6}},
		{"array", encodeRaw(t, []int{1, 2, 3})},
		{"trailing bytes", append(append([]byte{}, good...), 0x00)},
		{"truncated", good[:len(good)-3]},
		{"too large", make([]byte, MaxMetaSize+1)},
		{"no version", without(0)},
		{"no node ID", without(1)},
		{"no control", without(2)},
		{"short node ID", with(1, id[:31])},
		{"long node ID", with(1, append(id[:], 0))},
		{"node ID as string", with(1, id.String())},
		{"zero node ID", with(1, make([]byte, 32))},
		{"version overflow", with(0, 256)},
		{"negative load", with(7, -1)},
		{"load over 100", with(7, 101)},
		{"leaves overflow", with(5, 70000)},
		{"uptime overflow", with(8, uint64(1)<<33)},
		{"control wrong type", with(2, 7400)},
		{"control invalid UTF-8", with(2, string([]byte{0xff, ':', '1'}))},
		{"deep unknown field", with(99, []any{[]any{[]any{[]any{[]any{1}}}}})},
		{"big unknown array", with(99, make([]int, 17))},
		// Map {0:1, 0:1, ...}: key 0 twice.
		{"duplicate key", append([]byte{0xa4, 0x00, 0x01, 0x00, 0x01}, good[1+2:]...)},
		// Indefinite-length map with the same content.
		{"indefinite map", append(append([]byte{0xbf}, good[1:]...), 0xff)},
		{"tagged", append([]byte{0xd8, 0x20}, good...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeMeta(tt.in)
			if !errors.Is(err, ErrBadMeta) {
				t.Fatalf("DecodeMeta: got (%+v, %v), want ErrBadMeta", m, err)
			}
		})
	}
}

// TestDecodeMetaIgnoresUnknownFields keeps the format open: a later version
// may add keys, and this version must still read the ones it knows.
func TestDecodeMetaIgnoresUnknownFields(t *testing.T) {
	id := testID(1)
	b := encodeRaw(t, map[any]any{
		0: 2, 1: id[:], 2: "203.0.113.7:7400", 6: 5,
		42: "future field", "named": []int{1, 2}, 43: map[int]int{1: 2},
	})
	m, err := DecodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != 2 || m.NodeID != id || m.Slots != 5 {
		t.Errorf("got %+v", m)
	}
}
