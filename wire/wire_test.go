package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		body any
		typ  Type
	}{
		{"hello", &Hello{Role: RoleLeaf, Software: "canopy/test"}, TypeHello},
		{"query", &Query{Words: "free software song", Limit: 10}, TypeQuery},
		{"big compressible", &IndexUpdate{Reset: true, Add: manyFiles(2000), Rev: 7}, TypeIndexUpdate},
		{"piece", &PieceData{Index: 3, Offset: 65536, Data: bytes.Repeat([]byte{1, 2, 3}, 1000)}, TypePieceData},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(tc.typ, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			e.TTL, e.Hops = 2, 1
			b, err := Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			if len(e.Payload) > 4*CompressThreshold && b[2]&flagCompressed == 0 {
				t.Errorf("large compressible payload (%d bytes) was not compressed", len(e.Payload))
			}
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			if got.Type != e.Type || got.ID != e.ID || got.TTL != 2 || got.Hops != 1 || !bytes.Equal(got.Payload, e.Payload) {
				t.Fatalf("round trip changed the envelope: %+v", got)
			}
		})
	}
}

func manyFiles(n int) []IndexFile {
	out := make([]IndexFile, n)
	for i := range out {
		out[i] = IndexFile{Name: "Some Artist - Track " + strings.Repeat("x", i%7) + ".mp3", Size: int64(i) * 1000}
		out[i].ID[0] = byte(i)
	}
	return out
}

func TestUnmarshalRejects(t *testing.T) {
	good, _ := Marshal(Envelope{Type: TypePing, Payload: []byte{0xa0}})
	bomb := make([]byte, HeaderLen)
	bomb[0], bomb[1], bomb[2] = Version, byte(TypeQuery), flagCompressed
	enc, _ := zstd.NewWriter(nil)
	bomb = enc.EncodeAll(make([]byte, 8*MaxPayload), bomb)
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"short", good[:10], ErrMalformed},
		{"version", append([]byte{9}, good[1:]...), ErrVersion},
		{"flags", append(append([]byte{}, good[:2]...), append([]byte{0x80}, good[3:]...)...), ErrMalformed},
		{"bad zstd", append(append([]byte{}, good[:2]...), append([]byte{flagCompressed}, good[3:]...)...), ErrMalformed},
		{"decompression bomb", bomb, nil},
		{"oversized", make([]byte, MaxEnvelope+1), ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Unmarshal(tc.in)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	e, _ := New(TypeBye, &Bye{Reason: "done"})
	if err := WriteFrame(&buf, e); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFrame(&buf)
	if err != nil || got.ID != e.ID {
		t.Fatalf("ReadFrame: %v %+v", err, got)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], MaxEnvelope+1)
	if _, err := ReadFrame(bytes.NewReader(hdr[:])); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized frame: %v", err)
	}
	binary.BigEndian.PutUint32(hdr[:], 100)
	if _, err := ReadFrame(bytes.NewReader(append(hdr[:], 1, 2, 3))); err == nil {
		t.Fatal("truncated frame accepted")
	}
}

func TestDecodeBounds(t *testing.T) {
	// A CBOR array header claiming more elements than MaxListLen.
	e := Envelope{Type: TypeIndexUpdate, Payload: []byte{0xa1, 0x02, 0x9a, 0x00, 0x10, 0x00, 0x00}}
	var u IndexUpdate
	if err := e.Decode(&u); !errors.Is(err, ErrMalformed) {
		t.Fatalf("huge array: %v", err)
	}
	// Duplicate map keys.
	e.Payload = []byte{0xa2, 0x04, 0x01, 0x04, 0x02}
	if err := e.Decode(&u); !errors.Is(err, ErrMalformed) {
		t.Fatalf("duplicate keys: %v", err)
	}
}

// seeds returns real frames of every message type.
func seeds(tb testing.TB) [][]byte {
	bodies := map[Type]any{
		TypeHello:       &Hello{Role: RoleLeaf, Software: "canopy/x", Control: "127.0.0.1:1", Candidate: true, Supernodes: []PeerInfo{{Control: "127.0.0.1:2"}}},
		TypeWelcome:     &Welcome{Role: RoleSupernode, Supernodes: []PeerInfo{{Control: "127.0.0.1:3"}}},
		TypeIndexUpdate: &IndexUpdate{Reset: true, Add: manyFiles(50), Rev: 1},
		TypeQueryHit:    &QueryHit{Hits: []Hit{{Name: "a", Size: 1, Sources: []Source{{}}}}},
		TypeSignal:      &Signal{Kind: SignalOffer, Data: "v=0"},
		TypeManifest:    &Manifest{Size: 10, PieceSize: 1 << 18, PieceCount: 1, Hashes: make([]byte, 32)},
		TypePieceData:   &PieceData{Data: []byte("abc")},
		TypeGuidance: &Guidance{Supernodes: 3, Leaves: 20, FreeSlots: 500, LoadPermille: 40, Needed: true, Why: "min-supernodes",
			Peers: []PeerInfo{{Control: "127.0.0.1:4", Load: 10, Slots: 190, Known: true}}, Successors: []PeerInfo{{Control: "127.0.0.1:5"}}},
		TypeDialBack:       &DialBack{Control: "127.0.0.1:6"},
		TypeDialBackResult: &DialBackResult{Addr: "127.0.0.1:6", Error: "refused"},
		TypeICEServers: &ICEServers{Discovery: "192.0.2.1:3479", Servers: []ICEServer{{URLs: []string{"turn:192.0.2.1:3478?transport=udp"},
			Username: "1700000000:abc", Credential: "x", Expires: 1700000000}}},
		TypeHandover: &Handover{Reason: "demoting", Supernodes: []PeerInfo{{Control: "127.0.0.1:7"}}},
	}
	var out [][]byte
	// A supernode's "slow down" answer, beside the hits.
	slow, err := New(TypeQueryHit, &QueryHit{RetryAfterMs: 180})
	if err != nil {
		tb.Fatal(err)
	}
	if b, err := Marshal(slow); err == nil {
		out = append(out, b)
	}
	for typ, body := range bodies {
		e, err := New(typ, body)
		if err != nil {
			tb.Fatal(err)
		}
		b, err := Marshal(e)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// bodyFor returns a fresh value of the body type registered for t.
func bodyFor(t Type) any {
	switch t {
	case TypeHello:
		return new(Hello)
	case TypeWelcome:
		return new(Welcome)
	case TypeRefuse:
		return new(Refuse)
	case TypeIndexUpdate:
		return new(IndexUpdate)
	case TypeIndexAck:
		return new(IndexAck)
	case TypeQuery:
		return new(Query)
	case TypeQueryHit:
		return new(QueryHit)
	case TypeSignal:
		return new(Signal)
	case TypePing:
		return new(Ping)
	case TypePong:
		return new(Pong)
	case TypeBye:
		return new(Bye)
	case TypeGuidance:
		return new(Guidance)
	case TypeDialBack:
		return new(DialBack)
	case TypeDialBackResult:
		return new(DialBackResult)
	case TypeHandover:
		return new(Handover)
	case TypeICEServers:
		return new(ICEServers)
	case TypeManifestRequest:
		return new(ManifestRequest)
	case TypeManifest:
		return new(Manifest)
	case TypePieceRequest:
		return new(PieceRequest)
	case TypePieceData:
		return new(PieceData)
	case TypeTransferError:
		return new(TransferError)
	}
	return nil
}

func FuzzUnmarshal(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Unmarshal(b)
		if err != nil {
			return
		}
		if len(e.Payload) > MaxPayload {
			t.Fatalf("payload of %d bytes passed the limit", len(e.Payload))
		}
		if body := bodyFor(e.Type); body != nil {
			_ = e.Decode(body) // must not panic or allocate without bound
		}
		again, err := Marshal(e)
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		e2, err := Unmarshal(again)
		if err != nil || !bytes.Equal(e2.Payload, e.Payload) {
			t.Fatalf("re-unmarshal: %v", err)
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	for _, s := range seeds(f) {
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(len(s)))
		f.Add(append(hdr[:], s...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for {
			if _, err := ReadFrame(r); err != nil {
				return
			}
		}
	})
}

func TestAllTypesHaveBodies(t *testing.T) {
	for typ := range typeNames {
		if bodyFor(typ) == nil {
			t.Errorf("%s has no body type in bodyFor", typ)
		}
	}
}
