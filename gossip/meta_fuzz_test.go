package gossip

import (
	"testing"
)

// FuzzDecodeMeta feeds DecodeMeta arbitrary bytes, seeded with real
// encodings. Whatever decodes must re-encode within the size limit and decode
// back to the same Meta.
func FuzzDecodeMeta(f *testing.F) {
	seeds := []Meta{
		sampleMeta(),
		{Version: 1, NodeID: testID(2), Control: "127.0.0.1:1"},
		{Version: 1, NodeID: testID(3), Control: "[2001:db8::1]:7400", Software: "canopy/0.1.0", Load: 100},
		{Version: 3, NodeID: testID(4), Control: "super.example.org:443", Leaves: 65535, Uptime: 1<<32 - 1},
	}
	for _, m := range seeds {
		b, err := EncodeMeta(m)
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
		re, err := EncodeMeta(m)
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
