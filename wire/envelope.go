// Package wire is Canopy's protocol: one message envelope that travels unchanged
// over every carrier (TLS control links and WebRTC data channels; gossip so far
// carries only the supernodes' metadata record), the payload types it carries,
// and bounded decoders for all of them.
//
// An envelope on the wire (version 1) is a fixed 21-byte header and a payload:
//
//	offset size field
//	0      1    version (1)
//	1      1    type
//	2      1    flags (bit 0: payload is zstd-compressed)
//	3      1    TTL: hops the message may still travel
//	4      1    hops: hops it has travelled
//	5      16   message ID, random, for de-duplication and tracing
//	21     ...  payload: CBOR (RFC 8949), possibly zstd-compressed
//
// On a byte stream each envelope is preceded by its length as a 4-byte big-endian
// integer (see ReadFrame); on a message carrier (a data channel) one message is
// one envelope.
package wire

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// Version is the envelope format this code speaks.
const Version = 1

// HeaderLen is the size of the fixed envelope header.
const HeaderLen = 21

// Limits. They bound what any peer can make us allocate for one message.
const (
	// MaxPayload is the largest payload after decompression. Index uploads and
	// hit batches are split to stay below it.
	MaxPayload = 1 << 20
	// MaxEnvelope is the largest envelope on the wire (compressed payload + header).
	MaxEnvelope = MaxPayload + HeaderLen
	// CompressThreshold is the payload size above which Marshal tries zstd.
	// Below it compression rarely pays for its CPU time and frame overhead.
	CompressThreshold = 512
	// DefaultTTL is the hop budget of a new query: the origin supernode and one
	// more hop across the ring reach every supernode of a fully meshed ring.
	DefaultTTL = 2
	// MaxTTL caps the TTL a peer may ask for, so a crafted query cannot circulate.
	MaxTTL = 4
)

const flagCompressed = 1 << 0

// MsgID is a message's random 16-byte ID.
type MsgID [16]byte

// NewMsgID returns a random message ID.
func NewMsgID() MsgID {
	var id MsgID
	if _, err := rand.Read(id[:]); err != nil {
		// crypto/rand does not fail on supported platforms (Go 1.24+ panics
		// inside Read instead); keep the check for clarity.
		panic(fmt.Sprintf("wire: crypto/rand: %v", err))
	}
	return id
}

// String returns the ID in hex.
func (id MsgID) String() string { return hex.EncodeToString(id[:]) }

// Envelope is one protocol message.
type Envelope struct {
	Type Type
	ID   MsgID
	TTL  uint8
	Hops uint8
	// Payload is the CBOR encoding of the message body, uncompressed.
	Payload []byte
}

// New builds an envelope of type t with a fresh ID around body, which must be the
// Go type registered for t (see Type).
func New(t Type, body any) (Envelope, error) {
	p, err := encMode.Marshal(body)
	if err != nil {
		return Envelope{}, fmt.Errorf("wire: encode %s: %w", t, err)
	}
	if len(p) > MaxPayload {
		return Envelope{}, fmt.Errorf("%w: %s payload is %d bytes", ErrTooLarge, t, len(p))
	}
	return Envelope{Type: t, ID: NewMsgID(), Payload: p}, nil
}

// Decode decodes the payload into body, with the bounded decoder.
func (e Envelope) Decode(body any) error {
	if err := decMode.Unmarshal(e.Payload, body); err != nil {
		return fmt.Errorf("%w: %s payload: %v", ErrMalformed, e.Type, err)
	}
	return nil
}

// Marshal encodes the envelope, compressing the payload with zstd when it is
// larger than CompressThreshold and compression makes it smaller.
func Marshal(e Envelope) ([]byte, error) {
	if len(e.Payload) > MaxPayload {
		return nil, fmt.Errorf("%w: payload is %d bytes", ErrTooLarge, len(e.Payload))
	}
	out := make([]byte, HeaderLen, HeaderLen+len(e.Payload))
	out[0] = Version
	out[1] = byte(e.Type)
	out[3] = e.TTL
	out[4] = e.Hops
	copy(out[5:21], e.ID[:])
	if len(e.Payload) > CompressThreshold {
		c := compress(out, e.Payload)
		if len(c)-HeaderLen < len(e.Payload) {
			c[2] = flagCompressed
			return c, nil
		}
	}
	return append(out, e.Payload...), nil
}

// Unmarshal decodes one envelope. It never allocates more than MaxPayload for
// the payload, whatever the input claims. The envelope does not share memory
// with b.
func Unmarshal(b []byte) (Envelope, error) { return unmarshal(b, MaxPayload, false) }

// unmarshal decodes one envelope whose payload may be at most maxPayload
// bytes once decompressed. With own, b belongs to the caller no longer (a
// frame buffer ReadFrame allocated for it) and an uncompressed payload is
// used in place rather than copied.
func unmarshal(b []byte, maxPayload int, own bool) (Envelope, error) {
	var e Envelope
	if len(b) < HeaderLen {
		return e, fmt.Errorf("%w: %d bytes is shorter than a header", ErrMalformed, len(b))
	}
	if len(b) > MaxEnvelope {
		return e, fmt.Errorf("%w: envelope is %d bytes", ErrTooLarge, len(b))
	}
	if b[0] != Version {
		return e, fmt.Errorf("%w: version %d", ErrVersion, b[0])
	}
	flags := b[2]
	if flags&^flagCompressed != 0 {
		return e, fmt.Errorf("%w: unknown flags %#x", ErrMalformed, flags)
	}
	e.Type = Type(b[1])
	e.TTL = b[3]
	e.Hops = b[4]
	copy(e.ID[:], b[5:21])
	payload := b[HeaderLen:len(b):len(b)]
	switch {
	case flags&flagCompressed != 0:
		p, err := decompress(payload, maxPayload)
		if err != nil {
			return Envelope{}, err
		}
		e.Payload = p
	case len(payload) > maxPayload:
		return Envelope{}, fmt.Errorf("%w: payload is %d bytes, limit %d", ErrTooLarge, len(payload), maxPayload)
	case own:
		e.Payload = payload
	default:
		e.Payload = append([]byte(nil), payload...)
	}
	return e, nil
}
