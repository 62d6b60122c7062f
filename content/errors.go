package content

import "errors"

var (
	// ErrBadID reports text that is not a content ID: 64 hexadecimal digits.
	ErrBadID = errors.New("content: bad id")

	// ErrBadManifest reports a manifest that is inconsistent in itself: a piece
	// size out of bounds, a negative size, or a piece count that does not
	// match the size.
	ErrBadManifest = errors.New("content: bad manifest")

	// ErrManifestMismatch reports a manifest that is valid but does not hash
	// to the content ID it was expected to have.
	ErrManifestMismatch = errors.New("content: manifest does not match id")

	// ErrBadPiece reports piece data that does not match the manifest: wrong
	// hash, wrong length, or an index outside the file.
	ErrBadPiece = errors.New("content: bad piece")

	// ErrBadPieceSize reports a piece size that is not a power of two between
	// MinPieceSize and MaxPieceSize.
	ErrBadPieceSize = errors.New("content: bad piece size")

	// ErrTooLarge reports data that would need more than MaxPieces pieces at
	// the requested piece size.
	ErrTooLarge = errors.New("content: too many pieces")
)
