package downloads

import (
	"bytes"
	"errors"
	"testing"
)

func TestPieceSet(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 1000} {
		p := newPieceSet(n)
		for i := 0; i < n; i += 3 {
			p.set(i)
		}
		if n > 1 {
			p.clear(0)
		}
		q, err := unmarshalPieceSet(p.marshal())
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if q.n != n || !bytes.Equal(q.bits, p.bits) || q.count() != p.count() {
			t.Fatalf("n=%d: round trip %+v, want %+v", n, q, p)
		}
		b := q.bools()
		for i := range n {
			if b[i] != p.has(i) {
				t.Fatalf("n=%d: bools[%d] = %v", n, i, b[i])
			}
		}
	}
}

func TestPieceSetRefuses(t *testing.T) {
	good := newPieceSet(10)
	good.set(9)
	enc := good.marshal()
	for name, b := range map[string][]byte{
		"empty":        nil,
		"version":      append([]byte{2}, enc[1:]...),
		"no count":     {recordVersion},
		"short bitmap": enc[:len(enc)-1],
		"long bitmap":  append(append([]byte(nil), enc...), 0),
		"bit past end": {recordVersion, 10, 0, 0x04},
		"too many":     {recordVersion, 0x80, 0x80, 0x80, 0x80, 0x10},
	} {
		if _, err := unmarshalPieceSet(b); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: %v, want ErrBadRecord", name, err)
		}
	}
}

// FuzzPieceSet: the decoder never panics, and what it accepts encodes back
// to the same bytes (one encoding per set: a damaged record cannot pass as
// another).
func FuzzPieceSet(f *testing.F) {
	p := newPieceSet(13)
	p.set(12)
	f.Add(p.marshal())
	f.Add(newPieceSet(0).marshal())
	f.Add([]byte{recordVersion, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := unmarshalPieceSet(b)
		if err != nil {
			return
		}
		if !bytes.Equal(q.marshal(), b) {
			t.Fatalf("%x decodes and encodes back as %x", b, q.marshal())
		}
		if q.count() > q.n {
			t.Fatalf("%d of %d set", q.count(), q.n)
		}
	})
}
