package content

import (
	"encoding/hex"
	"fmt"
)

// IDLen is the length of a content ID in bytes.
const IDLen = 32

// ID names a file by its content: see the package comment for how it is
// derived. The zero ID names nothing.
type ID [IDLen]byte

// String returns the ID as 64 lower-case hexadecimal digits.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether the ID is unset.
func (id ID) IsZero() bool { return id == ID{} }

// MarshalText implements encoding.TextMarshaler with the String form.
func (id ID) MarshalText() ([]byte, error) {
	b := make([]byte, hex.EncodedLen(IDLen))
	hex.Encode(b, id[:])
	return b, nil
}

// UnmarshalText implements encoding.TextUnmarshaler; it accepts what ParseID
// accepts.
func (id *ID) UnmarshalText(b []byte) error {
	p, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}

// ParseID parses the 64 hexadecimal digits of an ID. Upper-case digits are
// accepted because people paste IDs from elsewhere; String always gives lower
// case. Errors wrap ErrBadID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != hex.EncodedLen(IDLen) {
		return ID{}, fmt.Errorf("%w: length %d, want %d", ErrBadID, len(s), hex.EncodedLen(IDLen))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return ID{}, fmt.Errorf("%w: %v", ErrBadID, err)
	}
	return id, nil
}
