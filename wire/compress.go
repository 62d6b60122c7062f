package wire

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// The zstd encoder and decoder are safe for concurrent EncodeAll/DecodeAll and
// costly to build, so one of each serves every link in the process. They are
// created on first use and never change afterwards.
var (
	zOnce sync.Once
	zEnc  *zstd.Encoder
	zDec  *zstd.Decoder
)

// maxEncoders bounds the zstd encoder states, a few MiB each at most.
const maxEncoders = 8

func zinit() {
	var err error
	zEnc, err = zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		// EncodeAll takes one of the encoder's concurrent states for
		// each call, and waits when all are taken: with one, every link
		// of the process compressed through a single lane, and a
		// supernode's answer to one leaf waited behind the large frames
		// it was compressing for another (BenchmarkFloodIsolation). One
		// state per processor, up to maxEncoders: each holds up to a
		// window of history, allocated on first use.
		zstd.WithEncoderConcurrency(min(runtime.GOMAXPROCS(0), maxEncoders)),
		// Payloads are at most 1 MiB; a window as large as the payload is enough.
		zstd.WithWindowSize(MaxPayload))
	if err != nil {
		panic(fmt.Sprintf("wire: zstd encoder: %v", err))
	}
	zDec, err = zstd.NewReader(nil,
		// The decoded size of one payload may never exceed MaxPayload, whatever
		// the frame header claims: this is the cap on decompression bombs.
		zstd.WithDecoderMaxMemory(MaxPayload),
		zstd.WithDecoderMaxWindow(MaxPayload),
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		panic(fmt.Sprintf("wire: zstd decoder: %v", err))
	}
}

func compress(dst, src []byte) []byte {
	zOnce.Do(zinit)
	return zEnc.EncodeAll(src, dst)
}

// decompress decodes a zstd payload of at most limit bytes (≤ MaxPayload).
func decompress(src []byte, limit int) ([]byte, error) {
	zOnce.Do(zinit)
	// Size the output by the frame's declared content size (EncodeAll always
	// writes it) so a 60 KiB message costs 60 KiB, not a 1 MiB buffer. The
	// declared size is only a hint: WithDecodeAllCapLimit makes DecodeAll stop
	// at cap(dst), so a frame that lies about its size fails instead of growing.
	capacity := limit
	var h zstd.Header
	if err := h.Decode(src); err == nil && h.HasFCS {
		if h.FrameContentSize > uint64(limit) {
			return nil, fmt.Errorf("%w: compressed payload declares %d bytes, limit %d", ErrTooLarge, h.FrameContentSize, limit)
		}
		capacity = int(h.FrameContentSize)
	}
	out, err := zDec.DecodeAll(src, make([]byte, 0, capacity))
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) && capacity == limit {
		return nil, fmt.Errorf("%w: decompressed payload exceeds %d bytes", ErrTooLarge, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: zstd payload: %v", ErrMalformed, err)
	}
	if len(out) > limit {
		return nil, fmt.Errorf("%w: decompressed payload exceeds %d bytes", ErrTooLarge, limit)
	}
	if capacity == limit {
		// Trim the 1 MiB buffer to what was used so long-lived messages don't pin it.
		out = append([]byte(nil), out...)
	}
	return out, nil
}
