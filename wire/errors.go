package wire

import "errors"

var (
	// ErrMalformed is returned for input that does not decode.
	ErrMalformed = errors.New("wire: malformed message")
	// ErrTooLarge is returned for a frame or payload above its limit.
	ErrTooLarge = errors.New("wire: message too large")
	// ErrVersion is returned for an envelope of a version this code does not speak.
	ErrVersion = errors.New("wire: unsupported version")
)
