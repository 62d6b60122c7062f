package transfer

import (
	"context"

	"golang.org/x/time/rate"
)

// A bandwidth limit (Config.UpLimit, Config.DownLimit) is one token bucket
// for the whole engine, shared by every session in that direction, so that
// the user's setting caps the node's transfers together however many run.
// Uploads wait before each block they send; downloads wait after each
// message they take from a data channel, which holds the channel's reader
// and so, through SCTP's receive window, slows the sender instead of
// buffering what it sends.

// limitBurstSeconds is how much of a second's allowance may go at once: a
// tenth keeps the rate even at the scale of a round trip, and the bucket is
// never smaller than one block (see newLimiter).
const limitBurstSeconds = 0.1

// newLimiter returns a limiter for bytesPerSecond, or nil for no limit
// (zero or less).
func newLimiter(bytesPerSecond float64) *rate.Limiter {
	if bytesPerSecond <= 0 {
		return nil
	}
	burst := max(int(bytesPerSecond*limitBurstSeconds), blockSize+blockOverhead)
	return rate.NewLimiter(rate.Limit(bytesPerSecond), burst)
}

// blockOverhead bounds the envelope around one block of piece data.
const blockOverhead = 256

// waitBytes waits until lim allows n bytes (at once if lim is nil), taking
// them in bursts when n is larger than one.
func waitBytes(ctx context.Context, lim *rate.Limiter, n int) error {
	if lim == nil {
		return nil
	}
	for n > 0 {
		take := min(n, lim.Burst())
		if err := lim.WaitN(ctx, take); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		n -= take
	}
	return nil
}
