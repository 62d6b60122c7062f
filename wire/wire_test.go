package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"

	"github.com/canopy-p2p/canopy/identity"
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
		TypeHello: &Hello{Role: RoleLeaf, Software: "canopy/x", Control: "127.0.0.1:1", Candidate: true, Supernodes: []PeerInfo{{Control: "127.0.0.1:2"}},
			Successors: []PeerInfo{{Control: "127.0.0.1:9"}}},
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
		TypeStepIn:   &StepIn{Reason: "the last supernode is stopping"},
		// People (people.go).
		TypeParcel:            &Parcel{ID: MsgID{1}, To: identity.NodeID{2}, Via: []identity.NodeID{{3}}, Store: true, Sealed: []byte{2, 1, 2, 3}},
		TypeParcelResult:      &ParcelResult{ID: MsgID{1}, To: identity.NodeID{2}, State: ParcelRefused, Reason: "recipient's store is full"},
		TypeMailAck:           &MailAck{IDs: []MsgID{{1}, {2}}, Via: []identity.NodeID{{3}}},
		TypeMailFetch:         &MailFetch{Via: []identity.NodeID{{3}}},
		TypePresencePublish:   &PresencePublish{Record: PresenceRecord{Status: StatusAway, Text: "lunch", Seq: 4}, Allowed: []identity.NodeID{{5}}, Discoverable: true},
		TypePresenceSubscribe: &PresenceSubscribe{Targets: []PresenceTarget{{Node: identity.NodeID{6}, Via: []identity.NodeID{{7}}}}},
		TypePresenceNotify:    &PresenceNotify{Node: identity.NodeID{6}, Record: &PresenceRecord{Status: StatusBusy}},
		TypeLocate:            &Locate{Node: identity.NodeID{6}},
		// Browsing and the network view (browse.go).
		TypeListRequest:    &ListRequest{After: "Music\x00a.flac", Max: 100},
		TypeListing:        &Listing{Folders: []ListFolder{{Name: "Music"}}, Entries: []ListEntry{{Path: "a.flac", Size: 3}}, Next: "n"},
		TypeNetworkRequest: &NetworkRequest{},
		TypeNetworkInfo:    &NetworkInfo{Members: []NetworkMember{{Control: "127.0.0.1:8", Leaves: 2, Software: "canopy/x"}}, Supernodes: 1, Leaves: 2, Files: 9},
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
	case TypeStepIn:
		return new(StepIn)
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
	case TypeListRequest:
		return new(ListRequest)
	case TypeListing:
		return new(Listing)
	case TypeNetworkRequest:
		return new(NetworkRequest)
	case TypeNetworkInfo:
		return new(NetworkInfo)
	case TypeParcel:
		return new(Parcel)
	case TypeParcelResult:
		return new(ParcelResult)
	case TypeMailAck:
		return new(MailAck)
	case TypeMailFetch:
		return new(MailFetch)
	case TypePresencePublish:
		return new(PresencePublish)
	case TypePresenceSubscribe:
		return new(PresenceSubscribe)
	case TypePresenceNotify:
		return new(PresenceNotify)
	case TypeLocate:
		return new(Locate)
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
		f.Add(append(hdr[:], s...), uint16(0))
		f.Add(append(hdr[:], s...), uint16(64))
	}
	// Headers that claim more than follows, up to and past MaxEnvelope.
	for _, claim := range []uint32{FrameChunk + 1, MaxEnvelope, MaxEnvelope + 1, 1<<32 - 1} {
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], claim)
		f.Add(append(hdr[:], 1, 2, 3), uint16(0))
	}
	f.Fuzz(func(t *testing.T, b []byte, limit uint16) {
		r := bytes.NewReader(b)
		for {
			rest := b[len(b)-r.Len():]
			e, err := ReadFrameMax(r, int(limit))
			if err != nil {
				return
			}
			// A frame read in steps is the frame read whole.
			n := int(binary.BigEndian.Uint32(rest))
			if limit > 0 && n > int(limit) {
				t.Fatalf("a frame of %d bytes passed a limit of %d", n, limit)
			}
			whole, err := Unmarshal(rest[4 : 4+n])
			if err != nil || whole.Type != e.Type || whole.ID != e.ID || !bytes.Equal(whole.Payload, e.Payload) {
				t.Fatalf("ReadFrame gave %+v, Unmarshal of the same bytes %+v (%v)", e, whole, err)
			}
			if limit > 0 && len(e.Payload) > int(limit) {
				t.Fatalf("a payload of %d bytes passed a limit of %d", len(e.Payload), limit)
			}
		}
	})
}

// allocatedPerCall is the heap, in bytes, one call of f allocates, on
// average over runs calls.
func allocatedPerCall(runs int, f func()) uint64 {
	f() // warm up: the zstd decoder, lazily built once per process
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// TestReadFrameAllocatesAsDataArrives: a header that claims MaxEnvelope and
// is followed by nothing (or by a little) costs what arrived, not the claim.
// Before frames were read in steps, each such header cost MaxEnvelope.
func TestReadFrameAllocatesAsDataArrives(t *testing.T) {
	frame := func(claim uint32, body int) []byte {
		b := make([]byte, 4+body)
		binary.BigEndian.PutUint32(b, claim)
		return b
	}
	for _, tc := range []struct {
		name  string
		body  int
		bound uint64
	}{
		{"header alone", 0, FrameChunk + 1024},
		{"a few bytes", 100, FrameChunk + 1024},
		{"300 KiB of a claimed MiB", 300 << 10, 300<<10 + FrameChunk + 1024},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := frame(MaxEnvelope, tc.body)
			got := allocatedPerCall(20, func() {
				if _, err := ReadFrame(bytes.NewReader(in)); !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("truncated frame: %v, want ErrUnexpectedEOF", err)
				}
			})
			if got > tc.bound {
				t.Errorf("a header claiming %d bytes followed by %d allocated %d bytes per read, bound %d", MaxEnvelope, tc.body, got, tc.bound)
			}
			t.Logf("%s: %d bytes allocated per read", tc.name, got)
		})
	}
}

// TestReadFrameInSteps reads large frames one byte per Read call, so that
// every growth step of the body buffer is taken.
func TestReadFrameInSteps(t *testing.T) {
	for _, size := range []int{0, 1, FrameChunk - HeaderLen, FrameChunk, 3*FrameChunk + 7, MaxPayload} {
		p := make([]byte, size)
		for i := range p {
			p[i] = byte(i*7 + i/251) // not compressible enough to shrink much
		}
		e := Envelope{Type: TypePieceData, ID: NewMsgID(), Payload: p}
		var buf bytes.Buffer
		if err := WriteFrame(&buf, e); err != nil {
			t.Fatal(err)
		}
		got, err := ReadFrame(iotest.OneByteReader(&buf))
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if got.ID != e.ID || !bytes.Equal(got.Payload, p) {
			t.Fatalf("%d bytes: the frame changed on the way", size)
		}
	}
}

// TestReadFrameMax: the hello bound refuses a long frame at its header, and
// a short compressed frame that would decompress beyond it (a 900 KB
// software string costs about 100 bytes on the wire).
func TestReadFrameMax(t *testing.T) {
	hello := func(software string) []byte {
		e, err := New(TypeHello, &Hello{Role: RoleLeaf, Software: software})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := WriteFrame(&buf, e); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	if _, err := ReadFrameMax(bytes.NewReader(hello("canopy/0.1.0")), MaxHelloEnvelope); err != nil {
		t.Fatalf("a plain hello: %v", err)
	}
	bomb := hello(strings.Repeat("x", 900_000))
	if len(bomb) > 1024 {
		t.Fatalf("the 900 KB hello takes %d bytes on the wire; the test wants a small one", len(bomb))
	}
	if _, err := ReadFrameMax(bytes.NewReader(bomb), MaxHelloEnvelope); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a hello decompressing to 900 KB under a 64 KiB bound: %v, want ErrTooLarge", err)
	}
	if _, err := ReadFrame(bytes.NewReader(bomb)); err != nil {
		t.Fatalf("the same frame without the hello bound: %v", err)
	}
	long := make([]byte, 4+MaxHelloEnvelope+1)
	binary.BigEndian.PutUint32(long, MaxHelloEnvelope+1)
	if _, err := ReadFrameMax(bytes.NewReader(long), MaxHelloEnvelope); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a frame over the bound: %v, want ErrTooLarge", err)
	}
}

func TestHelloBounded(t *testing.T) {
	long := strings.Repeat("a", MaxAddrLen+1)
	in := Hello{Role: RoleLeaf, Software: strings.Repeat("s", 900_000) + "\n", Control: long, Gossip: "127.0.0.1:7374",
		Supernodes: []PeerInfo{{Control: "127.0.0.1:1"}, {Control: long}, {Control: "127.0.0.1:2"}},
		Successors: []PeerInfo{{Control: long}, {Control: "127.0.0.1:3"}}}
	got := in.Bounded()
	if len(got.Software) > MaxSoftwareLen || !strings.HasPrefix(got.Software, "sss") {
		t.Errorf("software %q (%d bytes)", got.Software, len(got.Software))
	}
	if got.Control != "" || got.Gossip != "127.0.0.1:7374" {
		t.Errorf("addresses %q %q: the over-long one must go, the other stay", got.Control, got.Gossip)
	}
	if len(got.Supernodes) != 2 || got.Supernodes[0].Control != "127.0.0.1:1" || got.Supernodes[1].Control != "127.0.0.1:2" {
		t.Errorf("supernodes %+v", got.Supernodes)
	}
	if len(got.Successors) != 1 || got.Successors[0].Control != "127.0.0.1:3" {
		t.Errorf("successors %+v", got.Successors)
	}
	if in.Supernodes[1].Control != long || in.Successors[0].Control != long {
		t.Error("Bounded changed the caller's slice")
	}
}

func TestAllTypesHaveBodies(t *testing.T) {
	for typ := range typeNames {
		if bodyFor(typ) == nil {
			t.Errorf("%s has no body type in bodyFor", typ)
		}
	}
}

// TestCutName: a long name is cut on a character boundary, keeping a short
// extension; a name that fits is untouched.
func TestCutName(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  int
		want string
	}{
		{"song.mp3", 20, "song.mp3"},
		{"abcdefghij.flac", 10, "abcde.flac"},
		{"日本語日本語.txt", 12, "日本.txt"}, // a third character would not fit before the extension
		{"abcdefghij", 4, "abcd"},
		{"x.abcdefghijklmnopqrstuvwxyz", 8, "x.abcdef"}, // an extension too long to keep
		{"ab.mp3", 4, "ab.m"},                           // one that would fill the bound
	} {
		got := CutName(tc.name, tc.max)
		if got != tc.want || len(got) > tc.max || !utf8.ValidString(got) {
			t.Errorf("CutName(%q, %d) = %q, want %q", tc.name, tc.max, got, tc.want)
		}
	}
}
