package des

import (
	"math"
	"time"
)

// Time is a point on the virtual clock, or a span of it, in microseconds.
// Virtual time starts at 0 when a Sim is created and never goes backwards.
// A microsecond is finer than any latency the model needs and keeps a day
// (8.64e10 µs, about 2^36) far inside the supported horizon, MaxTime.
type Time int64

// Units of virtual time.
const (
	Microsecond Time = 1
	Millisecond      = 1000 * Microsecond
	Second           = 1000 * Millisecond
	Minute           = 60 * Second
	Hour             = 60 * Minute
)

// MaxTime is the latest instant an event may be scheduled at: 2^56−1 µs,
// about 2,283 years. The queue packs an event's time and kind into one
// 64-bit key (56 bits of time, 8 of kind) so that an event costs 16 bytes;
// scheduling beyond MaxTime panics rather than silently wrapping.
const MaxTime Time = 1<<timeBits - 1

// Duration converts t to a time.Duration, saturating at the limits of
// time.Duration (about ±292 years) instead of overflowing.
func (t Time) Duration() time.Duration {
	const limit = Time(math.MaxInt64 / int64(time.Microsecond))
	switch {
	case t > limit:
		return math.MaxInt64
	case t < -limit:
		return math.MinInt64
	}
	return time.Duration(t) * time.Microsecond
}

// Hours returns t in hours, the unit the simulator's reports use.
func (t Time) Hours() float64 { return float64(t) / float64(Hour) }

// String formats t like a time.Duration ("1h0m0.5s"), so that traces and
// panic messages read naturally.
func (t Time) String() string { return t.Duration().String() }

// FromDuration converts d to virtual time, truncating toward zero to whole
// microseconds.
func FromDuration(d time.Duration) Time { return Time(d / time.Microsecond) }
