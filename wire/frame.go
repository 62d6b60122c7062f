package wire

import (
	"encoding/binary"
	"fmt"
	"io"
)

// FrameChunk is the step in which ReadFrame gives memory to a frame's body:
// what a peer can make this side hold beyond what it has sent. Most control
// frames (hellos, queries, pings, signals) are smaller and are read into one
// buffer of their own size; 64 KiB is four TLS records of 16 KiB, and 17
// steps read the largest frame.
const FrameChunk = 64 << 10

// ReadFrame reads one length-prefixed envelope from a byte stream and decodes it.
// A length above MaxEnvelope is rejected before anything is allocated for it.
func ReadFrame(r io.Reader) (Envelope, error) { return ReadFrameMax(r, MaxEnvelope) }

// ReadFrameMax reads one length-prefixed envelope of at most limit bytes on
// the wire and at most limit bytes of payload once decompressed (limit ≤ 0 or
// above MaxEnvelope: MaxEnvelope and MaxPayload). It is for frames whose type
// is known to be small, such as the hello that opens a control link.
//
// The body is read in steps, and memory is given to it only as it arrives,
// FrameChunk at a time, so that a header that claims a megabyte and is
// followed by nothing costs FrameChunk, not the megabyte (3,000 such
// connections took a node's heap to 3.1 GB when the claim was believed).
func ReadFrameMax(r io.Reader, limit int) (Envelope, error) {
	if limit <= 0 || limit > MaxEnvelope {
		limit = MaxEnvelope
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Envelope{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(limit) {
		return Envelope{}, fmt.Errorf("%w: frame length %d, limit %d", ErrTooLarge, n, limit)
	}
	buf, err := readBody(r, int(n))
	if err != nil {
		return Envelope{}, err
	}
	return unmarshal(buf, min(limit, MaxPayload), true)
}

// readBody reads exactly n bytes in chunks of at most FrameChunk, each
// allocated once the one before it is full, and joins them when all have
// arrived. While the body arrives it holds at most FrameChunk more than has
// arrived; a frame of one chunk is not copied, a larger one once.
func readBody(r io.Reader, n int) ([]byte, error) {
	var chunks [][]byte
	for left := n; ; {
		chunk := make([]byte, min(left, FrameChunk))
		if _, err := io.ReadFull(r, chunk); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		left -= len(chunk)
		if left == 0 && chunks == nil {
			return chunk, nil
		}
		chunks = append(chunks, chunk)
		if left == 0 {
			break
		}
	}
	body := make([]byte, 0, n)
	for _, c := range chunks {
		body = append(body, c...)
	}
	return body, nil
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
