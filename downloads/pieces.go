package downloads

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/canopy-p2p/canopy/content"
)

// pieceSet is the record of a job's verified pieces: one bit per piece.
type pieceSet struct {
	n    int
	bits []byte
}

func newPieceSet(n int) pieceSet { return pieceSet{n: n, bits: make([]byte, (n+7)/8)} }

func (p pieceSet) has(i int) bool { return p.bits[i/8]&(1<<(i%8)) != 0 }
func (p pieceSet) set(i int)      { p.bits[i/8] |= 1 << (i % 8) }
func (p pieceSet) clear(i int)    { p.bits[i/8] &^= 1 << (i % 8) }

// count returns how many pieces are set.
func (p pieceSet) count() int {
	c := 0
	for _, b := range p.bits {
		c += bits.OnesCount8(b)
	}
	return c
}

// bools returns the set as transfer.Resume.Held wants it.
func (p pieceSet) bools() []bool {
	out := make([]bool, p.n)
	for i := range out {
		out[i] = p.has(i)
	}
	return out
}

// recordVersion is the first byte of an encoded pieceSet.
const recordVersion = 1

// marshal encodes the set: the version, the piece count as a uvarint, and
// the bitmap, least significant bit first.
func (p pieceSet) marshal() []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(p.bits))
	b = append(b, recordVersion)
	b = binary.AppendUvarint(b, uint64(p.n))
	return append(b, p.bits...)
}

// unmarshalPieceSet decodes a record written by marshal. It refuses a piece
// count above content.MaxPieces, a bitmap of the wrong length, and set bits
// past the count, so that a damaged row is found rather than trusted.
func unmarshalPieceSet(b []byte) (pieceSet, error) {
	if len(b) == 0 || b[0] != recordVersion {
		return pieceSet{}, fmt.Errorf("%w: unknown version", ErrBadRecord)
	}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || k != len(binary.AppendUvarint(nil, n)) {
		// Only the shortest encoding: one record per set.
		return pieceSet{}, fmt.Errorf("%w: bad piece count", ErrBadRecord)
	}
	if n > content.MaxPieces {
		return pieceSet{}, fmt.Errorf("%w: %d pieces, more than %d", ErrBadRecord, n, content.MaxPieces)
	}
	rest := b[1+k:]
	want := (int(n) + 7) / 8
	if len(rest) != want {
		return pieceSet{}, fmt.Errorf("%w: %d bitmap bytes for %d pieces", ErrBadRecord, len(rest), n)
	}
	if n%8 != 0 && rest[want-1]>>(n%8) != 0 {
		return pieceSet{}, fmt.Errorf("%w: pieces past the last one marked", ErrBadRecord)
	}
	return pieceSet{n: int(n), bits: append([]byte(nil), rest...)}, nil
}
