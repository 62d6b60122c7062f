package content

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zeebo/blake3"
)

// refRoot is an independent, recursive statement of the version 1 tree: the
// left subtree takes the largest power of two strictly below n leaves. With
// left-to-right pairing and odd-node promotion, that is the same tree.
func refRoot(leaves [][32]byte) [32]byte {
	switch len(leaves) {
	case 0:
		return blake3.Sum256([]byte{0x00})
	case 1:
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	l, r := refRoot(leaves[:k]), refRoot(leaves[k:])
	return blake3.Sum256(append(append([]byte{0x01}, l[:]...), r[:]...))
}

// refManifest hashes data with a straightforward reading of the format.
func refManifest(data []byte, pieceSize int) (ID, [][32]byte) {
	var leaves [][32]byte
	for off := 0; off < len(data); off += pieceSize {
		end := min(off+pieceSize, len(data))
		leaves = append(leaves, blake3.Sum256(append([]byte{0x00}, data[off:end]...)))
	}
	root := refRoot(leaves)
	in := []byte{0x02}
	in = binary.LittleEndian.AppendUint64(in, uint64(len(data)))
	in = binary.LittleEndian.AppendUint32(in, uint32(pieceSize))
	in = append(in, root[:]...)
	return ID(blake3.Sum256(in)), leaves
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestHash(t *testing.T) {
	const ps = MinPieceSize
	tests := []struct {
		name   string
		size   int
		pieces int
	}{
		{"empty", 0, 0},
		{"one byte", 1, 1},
		{"one piece exactly", ps, 1},
		{"exact multiple", 4 * ps, 4},
		{"one byte over", 4*ps + 1, 5},
		{"one byte under", 4*ps - 1, 4},
		{"three pieces", 3 * ps, 3},
		{"five pieces", 5*ps - 100, 5},
		{"seven pieces", 7 * ps, 7},
		{"nine pieces", 8*ps + 1, 9},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := randomBytes(tc.size, uint64(i))
			m, err := Hash(bytes.NewReader(data), ps)
			if err != nil {
				t.Fatal(err)
			}
			if m.Size != int64(tc.size) || m.PieceCount() != tc.pieces {
				t.Fatalf("size %d pieces %d, want %d and %d", m.Size, m.PieceCount(), tc.size, tc.pieces)
			}
			wantID, wantLeaves := refManifest(data, ps)
			if got := m.ID(); got != wantID {
				t.Fatalf("ID %s, reference %s", got, wantID)
			}
			for j := range wantLeaves {
				if m.Pieces[j] != wantLeaves[j] {
					t.Fatalf("piece %d hash differs from reference", j)
				}
			}
			if err := m.Verify(wantID); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			var total int64
			for j := range m.PieceCount() {
				if m.PieceOffset(j) != total {
					t.Fatalf("piece %d offset %d, want %d", j, m.PieceOffset(j), total)
				}
				piece := data[total : total+int64(m.PieceLen(j))]
				if err := m.VerifyPiece(j, piece); err != nil {
					t.Fatalf("VerifyPiece(%d): %v", j, err)
				}
				total += int64(m.PieceLen(j))
			}
			if total != m.Size {
				t.Fatalf("piece lengths add to %d, want %d", total, m.Size)
			}
		})
	}
}

// TestVectors pins IDs of version 1 so an accidental change to the format
// (which would rename every file on the network) fails loudly.
func TestVectors(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		ps   uint32
		want string
	}{
		{"empty", nil, DefaultPieceSize, "fb27c8606c6182c65f9b4ddd1d305fb35cb01d361a2f4c2f38b7404ce4f84d52"},
		{"abc", []byte("abc"), DefaultPieceSize, "718068cb8de529d7c6a94dd67ad4716988446166522ed5fcf6a8b777f99e0eda"},
		{"three pieces", bytes.Repeat([]byte{0xA5}, 2*MinPieceSize+1), MinPieceSize, "0e045b3952ec8218e4bf0ccf3dbb9f1e8e1ce5f5d7d9e163ca3ed78000fc357b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Hash(bytes.NewReader(tc.data), tc.ps)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.ID().String(); got != tc.want {
				t.Fatalf("ID %s, want %s", got, tc.want)
			}
		})
	}
}

func TestEmptyRoot(t *testing.T) {
	m, err := Hash(strings.NewReader(""), 0)
	if err != nil {
		t.Fatal(err)
	}
	if m.PieceSize != DefaultPieceSize || len(m.Pieces) != 0 {
		t.Fatalf("got piece size %d, %d pieces", m.PieceSize, len(m.Pieces))
	}
	if m.Root() != blake3.Sum256([]byte{0x00}) {
		t.Fatal("empty root is not BLAKE3(0x00)")
	}
}

func TestHashPieceSize(t *testing.T) {
	for _, ps := range []uint32{1, MinPieceSize - 1, MinPieceSize + 1, 3 * MinPieceSize, MaxPieceSize * 2} {
		if _, err := Hash(strings.NewReader("x"), ps); !errors.Is(err, ErrBadPieceSize) {
			t.Errorf("piece size %d: err %v, want ErrBadPieceSize", ps, err)
		}
	}
	for _, ps := range []uint32{MinPieceSize, DefaultPieceSize, MaxPieceSize} {
		if _, err := Hash(strings.NewReader("x"), ps); err != nil {
			t.Errorf("piece size %d: %v", ps, err)
		}
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.ErrClosedPipe
	}
	k := min(len(p), r.n)
	r.n -= k
	return k, nil
}

func TestHashReadError(t *testing.T) {
	_, err := Hash(&failingReader{n: MinPieceSize + 3}, MinPieceSize)
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("err %v, want the reader's error", err)
	}
}

func TestHashFile(t *testing.T) {
	data := randomBytes(3*MinPieceSize+17, 7)
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := HashFile(path, MinPieceSize)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := refManifest(data, MinPieceSize)
	if m.ID() != want {
		t.Fatalf("ID %s, want %s", m.ID(), want)
	}
	if _, err := HashFile(filepath.Join(t.TempDir(), "missing"), 0); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: err %v", err)
	}
}

func TestTamperPiece(t *testing.T) {
	const ps = MinPieceSize
	data := randomBytes(5*ps-9, 3)
	m, err := Hash(bytes.NewReader(data), ps)
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.PieceCount() {
		piece := bytes.Clone(data[m.PieceOffset(i) : m.PieceOffset(i)+int64(m.PieceLen(i))])
		for _, at := range []int{0, len(piece) / 2, len(piece) - 1} {
			piece[at] ^= 0x01
			if err := m.VerifyPiece(i, piece); !errors.Is(err, ErrBadPiece) {
				t.Fatalf("piece %d flipped at %d: err %v, want ErrBadPiece", i, at, err)
			}
			piece[at] ^= 0x01
		}
		if err := m.VerifyPiece(i, piece[:len(piece)-1]); !errors.Is(err, ErrBadPiece) {
			t.Fatalf("piece %d short: err %v", i, err)
		}
		if err := m.VerifyPiece(i, append(piece, 0)); !errors.Is(err, ErrBadPiece) {
			t.Fatalf("piece %d long: err %v", i, err)
		}
	}
	for _, i := range []int{-1, m.PieceCount()} {
		if err := m.VerifyPiece(i, nil); !errors.Is(err, ErrBadPiece) {
			t.Fatalf("index %d: err %v", i, err)
		}
	}
}

func TestTamperManifest(t *testing.T) {
	const ps = MinPieceSize
	data := randomBytes(7*ps-1, 4)
	orig, err := Hash(bytes.NewReader(data), ps)
	if err != nil {
		t.Fatal(err)
	}
	id := orig.ID()
	clone := func() Manifest {
		m := orig
		m.Pieces = append([][32]byte(nil), orig.Pieces...)
		return m
	}
	tests := []struct {
		name   string
		modify func(*Manifest)
		want   error
	}{
		{"size one less", func(m *Manifest) { m.Size-- }, ErrManifestMismatch},
		{"size one more", func(m *Manifest) { m.Size++ }, ErrManifestMismatch},
		{"size of fewer pieces", func(m *Manifest) { m.Size -= ps }, ErrBadManifest},
		{"negative size", func(m *Manifest) { m.Size = -1 }, ErrBadManifest},
		{"piece size", func(m *Manifest) { m.PieceSize *= 2 }, ErrBadManifest},
		{"bad piece size", func(m *Manifest) { m.PieceSize = ps + 1 }, ErrBadManifest},
		{"first piece", func(m *Manifest) { m.Pieces[0][0] ^= 1 }, ErrManifestMismatch},
		{"last piece", func(m *Manifest) { m.Pieces[6][31] ^= 1 }, ErrManifestMismatch},
		{"odd promoted piece", func(m *Manifest) { m.Pieces[6] = m.Pieces[5] }, ErrManifestMismatch},
		{"swapped pieces", func(m *Manifest) { m.Pieces[1], m.Pieces[2] = m.Pieces[2], m.Pieces[1] }, ErrManifestMismatch},
		{"dropped piece", func(m *Manifest) { m.Pieces = m.Pieces[:6] }, ErrBadManifest},
		{"extra piece", func(m *Manifest) { m.Pieces = append(m.Pieces, [32]byte{}) }, ErrBadManifest},
		{"huge size", func(m *Manifest) { m.Size = 1 << 62 }, ErrBadManifest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := clone()
			tc.modify(&m)
			if err := m.Verify(id); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	m := clone()
	if err := m.Verify(ID{}); !errors.Is(err, ErrManifestMismatch) {
		t.Fatalf("wrong id: err %v", err)
	}
}

func TestParseID(t *testing.T) {
	id := ID(blake3.Sum256([]byte("x")))
	s := id.String()
	if len(s) != 64 || strings.ToLower(s) != s {
		t.Fatalf("String %q is not 64 lower-case hex digits", s)
	}
	for _, in := range []string{s, strings.ToUpper(s)} {
		got, err := ParseID(in)
		if err != nil || got != id {
			t.Fatalf("ParseID(%q) = %v, %v", in, got, err)
		}
	}
	text, err := id.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	var back ID
	if err := back.UnmarshalText(text); err != nil || back != id {
		t.Fatalf("text round trip: %v %v", back, err)
	}
	if !(ID{}).IsZero() || id.IsZero() {
		t.Fatal("IsZero")
	}
	for _, bad := range []string{"", s[:63], s + "0", s[:63] + "g", " " + s[1:], s[:62] + "\u00e9"} {
		if _, err := ParseID(bad); !errors.Is(err, ErrBadID) {
			t.Errorf("ParseID(%q): err %v, want ErrBadID", bad, err)
		}
		if err := back.UnmarshalText([]byte(bad)); !errors.Is(err, ErrBadID) {
			t.Errorf("UnmarshalText(%q): err %v, want ErrBadID", bad, err)
		}
	}
}

func FuzzParseID(f *testing.F) {
	f.Add(ID(blake3.Sum256(nil)).String())
	f.Add(strings.Repeat("F", 64))
	f.Add("")
	f.Add(strings.Repeat("0", 63) + "z")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			if !errors.Is(err, ErrBadID) {
				t.Fatalf("error %v does not wrap ErrBadID", err)
			}
			return
		}
		if !strings.EqualFold(id.String(), s) {
			t.Fatalf("ParseID(%q) = %s", s, id)
		}
		again, err := ParseID(id.String())
		if err != nil || again != id {
			t.Fatalf("round trip of %s: %v %v", id, again, err)
		}
	})
}

func BenchmarkHash(b *testing.B) {
	data := randomBytes(64<<20, 9)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Hash(bytes.NewReader(data), DefaultPieceSize); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHashVsSHA256 hashes the same 64 MiB with Hash and with one
// SHA-256 stream (the standard library's, hardware-accelerated where the CPU
// has SHA extensions), alternating, and reports Hash's speed as a ratio.
func BenchmarkHashVsSHA256(b *testing.B) {
	data := randomBytes(64<<20, 11)
	var merkle, plain time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := Hash(bytes.NewReader(data), DefaultPieceSize); err != nil {
			b.Fatal(err)
		}
		merkle += time.Since(start)
		start = time.Now()
		sha256.Sum256(data)
		plain += time.Since(start)
	}
	mbs := func(d time.Duration) float64 { return float64(b.N) * float64(len(data)) / d.Seconds() / 1e6 }
	b.ReportMetric(mbs(merkle), "blake3-merkle-MB/s")
	b.ReportMetric(mbs(plain), "sha256-MB/s")
	b.ReportMetric(plain.Seconds()/merkle.Seconds(), "speedup")
}

// BenchmarkHashPiece gives the per-piece cost alone, as the baseline that
// BenchmarkHash's throughput is read against.
func BenchmarkHashPiece(b *testing.B) {
	data := randomBytes(DefaultPieceSize, 10)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		HashPiece(data)
	}
}
