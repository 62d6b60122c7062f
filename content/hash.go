package content

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/zeebo/blake3"
)

// Hash reads r to the end and returns the manifest of what it read. A
// pieceSize of 0 means DefaultPieceSize. It reads sequentially into one
// piece-sized buffer and reuses one hasher, so memory stays at one piece plus
// the piece list whatever the length. Errors from r are returned wrapped;
// more than MaxPieces pieces gives ErrTooLarge.
func Hash(r io.Reader, pieceSize uint32) (Manifest, error) {
	return hash(r, pieceSize, 0)
}

// hash is Hash with a hint of the expected size, used to allocate the piece
// list once instead of growing it.
func hash(r io.Reader, pieceSize uint32, sizeHint int64) (Manifest, error) {
	if pieceSize == 0 {
		pieceSize = DefaultPieceSize
	}
	if !ValidPieceSize(pieceSize) {
		return Manifest{}, fmt.Errorf("%w: %d", ErrBadPieceSize, pieceSize)
	}
	m := Manifest{PieceSize: pieceSize}
	if sizeHint > 0 && sizeHint <= int64(MaxPieces)*int64(pieceSize) {
		m.Pieces = make([][32]byte, 0, pieceCount(sizeHint, pieceSize))
	}
	buf := make([]byte, pieceSize)
	h := blake3.New()
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if len(m.Pieces) == MaxPieces {
				return Manifest{}, fmt.Errorf("%w: more than %d pieces of %d bytes", ErrTooLarge, MaxPieces, pieceSize)
			}
			m.Pieces = append(m.Pieces, hashLeaf(h, buf[:n]))
			m.Size += int64(n)
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return m, nil
		default:
			return Manifest{}, fmt.Errorf("content: read at offset %d: %w", m.Size, err)
		}
	}
}

// HashFile returns the manifest of the file at path; see Hash. When the file
// is large enough for the piece count to be known up front, the piece list is
// allocated once.
func HashFile(path string, pieceSize uint32) (Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return Manifest{}, fmt.Errorf("content: hash file: %w", err)
	}
	defer f.Close()
	var sizeHint int64
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		sizeHint = fi.Size()
	}
	m, err := hash(f, pieceSize, sizeHint)
	if err != nil {
		return Manifest{}, fmt.Errorf("content: hash file %s: %w", path, err)
	}
	return m, nil
}
