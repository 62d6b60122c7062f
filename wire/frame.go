package wire

import (
	"encoding/binary"
	"fmt"
	"io"
)

// ReadFrame reads one length-prefixed envelope from a byte stream and decodes it.
// A length above MaxEnvelope is rejected before anything is allocated for it.
func ReadFrame(r io.Reader) (Envelope, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Envelope{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxEnvelope {
		return Envelope{}, fmt.Errorf("%w: frame length %d", ErrTooLarge, n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Envelope{}, err
	}
	return Unmarshal(buf)
}

// WriteFrame encodes e and writes it with its length prefix in one Write call.
func WriteFrame(w io.Writer, e Envelope) error {
	b, err := Marshal(e)
	if err != nil {
		return err
	}
	out := make([]byte, 4, 4+len(b))
	binary.BigEndian.PutUint32(out, uint32(len(b)))
	out = append(out, b...)
	_, err = w.Write(out)
	return err
}
