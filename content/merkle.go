package content

import (
	"encoding/binary"

	"github.com/zeebo/blake3"
)

// Domain tags: the first byte of every hash input (see the package comment).
const (
	tagLeaf  = 0x00
	tagInner = 0x01
	tagID    = 0x02
)

// HashPiece returns the leaf hash of one piece: BLAKE3(0x00 || data).
func HashPiece(data []byte) [32]byte {
	h := blake3.New()
	return hashLeaf(h, data)
}

// hashLeaf computes a leaf hash with a caller-owned hasher, so that hashing a
// whole file reuses one hasher instead of allocating one per piece.
func hashLeaf(h *blake3.Hasher, data []byte) (sum [32]byte) {
	h.Reset()
	h.Write([]byte{tagLeaf})
	h.Write(data)
	h.Sum(sum[:0])
	return sum
}

// merkleRoot folds piece hashes into the root. It works on a copy so the
// caller's slice is left alone.
func merkleRoot(pieces [][32]byte) [32]byte {
	h := blake3.New()
	if len(pieces) == 0 {
		return hashLeaf(h, nil)
	}
	level := make([][32]byte, len(pieces))
	copy(level, pieces)
	var buf [1 + 2*32]byte
	buf[0] = tagInner
	for len(level) > 1 {
		next := level[:0]
		for i := 0; i+1 < len(level); i += 2 {
			copy(buf[1:], level[i][:])
			copy(buf[33:], level[i+1][:])
			h.Reset()
			h.Write(buf[:])
			var sum [32]byte
			h.Sum(sum[:0])
			next = append(next, sum)
		}
		if len(level)%2 == 1 {
			// The odd node is promoted unchanged.
			next = append(next, level[len(level)-1])
		}
		level = next
	}
	return level[0]
}

// idOf binds the root to the size and the piece size.
func idOf(size int64, pieceSize uint32, root [32]byte) ID {
	var buf [1 + 8 + 4 + 32]byte
	buf[0] = tagID
	binary.LittleEndian.PutUint64(buf[1:], uint64(size))
	binary.LittleEndian.PutUint32(buf[9:], pieceSize)
	copy(buf[13:], root[:])
	return ID(blake3.Sum256(buf[:]))
}
