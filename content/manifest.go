package content

import (
	"fmt"
	"math/bits"
)

// Piece size bounds. Pieces are the unit of verification and of transfer:
// small enough that a corrupt piece costs little to fetch again, large enough
// that the piece list of a big file stays small.
const (
	// DefaultPieceSize is the piece size to use unless there is a reason not
	// to. Files hashed with different piece sizes get different IDs, so
	// every node should use the same one for the same file.
	DefaultPieceSize = 256 << 10
	// MinPieceSize is the smallest piece size a manifest may declare.
	MinPieceSize = 16 << 10
	// MaxPieceSize is the largest piece size a manifest may declare.
	MaxPieceSize = 4 << 20
	// MaxPieces bounds the piece count of a manifest (128 MiB of piece
	// hashes), so that a manifest from a peer cannot demand unbounded memory.
	MaxPieces = 1 << 22
)

// Manifest describes a file: its size, how it is cut, and the hash of every
// piece. Its ID is derived from these fields alone. The fields are exported
// for serialization; a manifest from outside must pass Verify before use.
type Manifest struct {
	// Size is the file length in bytes.
	Size int64
	// PieceSize is the length of every piece but the last.
	PieceSize uint32
	// Pieces holds the leaf hash of each piece, in order.
	Pieces [][32]byte
}

// ValidPieceSize reports whether n is a piece size a manifest may declare: a
// power of two between MinPieceSize and MaxPieceSize. Powers of two keep
// piece boundaries aligned with disk blocks and make offsets exact.
func ValidPieceSize(n uint32) bool {
	return n >= MinPieceSize && n <= MaxPieceSize && bits.OnesCount32(n) == 1
}

// pieceCount returns how many pieces a file of size bytes has.
func pieceCount(size int64, pieceSize uint32) int64 {
	return (size + int64(pieceSize) - 1) / int64(pieceSize)
}

// Root returns the Merkle root over the piece hashes.
func (m *Manifest) Root() [32]byte { return merkleRoot(m.Pieces) }

// ID returns the content ID the manifest describes. It does not validate the
// manifest; use Verify for a manifest from outside.
func (m *Manifest) ID() ID { return idOf(m.Size, m.PieceSize, m.Root()) }

// Validate checks that the manifest is consistent in itself: the piece size
// is valid, the size is not negative, and there is exactly one piece hash per
// piece, with no more than MaxPieces. Errors wrap ErrBadManifest.
func (m *Manifest) Validate() error {
	if !ValidPieceSize(m.PieceSize) {
		return fmt.Errorf("%w: piece size %d", ErrBadManifest, m.PieceSize)
	}
	if m.Size < 0 {
		return fmt.Errorf("%w: negative size %d", ErrBadManifest, m.Size)
	}
	// Checked before pieceCount so the addition in it cannot overflow.
	if m.Size > int64(MaxPieces)*int64(m.PieceSize) {
		return fmt.Errorf("%w: size %d needs more than %d pieces", ErrBadManifest, m.Size, MaxPieces)
	}
	if want := pieceCount(m.Size, m.PieceSize); int64(len(m.Pieces)) != want {
		return fmt.Errorf("%w: %d piece hashes, size %d needs %d", ErrBadManifest, len(m.Pieces), m.Size, want)
	}
	return nil
}

// Verify checks that the manifest is valid and has the given ID. Errors wrap
// ErrBadManifest or ErrManifestMismatch.
func (m *Manifest) Verify(id ID) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if got := m.ID(); got != id {
		return fmt.Errorf("%w: got %s, want %s", ErrManifestMismatch, got, id)
	}
	return nil
}

// PieceCount returns the number of pieces.
func (m *Manifest) PieceCount() int { return len(m.Pieces) }

// PieceOffset returns the offset of piece i in the file.
func (m *Manifest) PieceOffset(i int) int64 { return int64(i) * int64(m.PieceSize) }

// PieceLen returns the length of piece i: PieceSize for all but the last,
// which holds the rest. It returns 0 when i is out of range.
func (m *Manifest) PieceLen(i int) int {
	if i < 0 || i >= len(m.Pieces) {
		return 0
	}
	rest := m.Size - m.PieceOffset(i)
	if rest < int64(m.PieceSize) {
		return int(rest)
	}
	return int(m.PieceSize)
}

// VerifyPiece checks that data is piece i of the file: right length and right
// hash. Errors wrap ErrBadPiece. The manifest itself is trusted here; it must
// have passed Verify first.
func (m *Manifest) VerifyPiece(i int, data []byte) error {
	if i < 0 || i >= len(m.Pieces) {
		return fmt.Errorf("%w: index %d out of range [0,%d)", ErrBadPiece, i, len(m.Pieces))
	}
	if want := m.PieceLen(i); len(data) != want {
		return fmt.Errorf("%w: piece %d has %d bytes, want %d", ErrBadPiece, i, len(data), want)
	}
	if HashPiece(data) != m.Pieces[i] {
		return fmt.Errorf("%w: piece %d hash mismatch", ErrBadPiece, i)
	}
	return nil
}
