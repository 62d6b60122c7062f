package gossip

import (
	"net/netip"
	"testing"
	"time"
)

// FuzzDecodeMeta feeds DecodeMeta arbitrary bytes, seeded with real
// encodings. Whatever decodes must be signed by the key it names: when that
// is the seeds' key, signing the decoded Meta again (Ed25519 and the encoding
// are deterministic) must give a record that decodes to the same Meta, within
// the size limit.
func FuzzDecodeMeta(f *testing.F) {
	id := testIdentity(1)
	g := netip.MustParseAddrPort("127.0.0.1:2")
	seeds := []Meta{
		sampleMeta(),
		{Gossip: g, Issued: sampleIssued, Control: "127.0.0.1:1"},
		{Gossip: netip.MustParseAddrPort("[2001:db8::1]:7401"), Issued: sampleIssued, Control: "[2001:db8::1]:7400", Software: "canopy/0.1.0", Load: 100},
		{Version: 3, Gossip: g, Issued: time.UnixMilli(1).UTC(), Control: "super.example.org:443", Leaves: 65535, Uptime: 1<<32 - 1},
	}
	for _, m := range seeds {
		b, err := EncodeMeta(m, id)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			return
		}
		if m.Key != [32]byte(id.Public) {
			t.Fatalf("decoded a record signed by a key the fuzzer does not hold: %+v", m)
		}
		re, err := EncodeMeta(m, id)
		if err != nil {
			t.Fatalf("decoded meta does not re-encode: %v (%+v)", err, m)
		}
		if len(re) > MaxMetaSize {
			t.Fatalf("re-encoding is %d bytes", len(re))
		}
		m2, err := DecodeMeta(re)
		if err != nil || m2 != m {
			t.Fatalf("re-encoding decodes to (%+v, %v), want %+v", m2, err, m)
		}
	})
}
