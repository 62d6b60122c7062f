// Package loglimit paces log lines that a peer can cause at will: a refusal
// logged every time would let a stranger write the log as fast as it can
// send (200 oversized hellos once wrote 171 MB of log in 1.4 s). A Limiter
// lets one line per key through every interval and counts the ones it held
// back, so the next line can say how many were not written.
package loglimit

import (
	"sync"
	"time"
)

// Limiter lets one line per key through every Every. Keys must come from a
// small, fixed set (refusal reasons, not addresses): the Limiter keeps one
// entry per key it has seen. The zero value with Every set is ready; it is
// safe for concurrent use.
type Limiter[K comparable] struct {
	// Every is the least time between two lines of one key.
	Every time.Duration

	mu   sync.Mutex
	last map[K]time.Time
	held map[K]uint64
}

// New returns a Limiter that lets one line per key through every every.
func New[K comparable](every time.Duration) *Limiter[K] { return &Limiter[K]{Every: every} }

// Allow reports whether a line for key k may be written at now, and, when it
// may, how many lines for k were held back since the last one written.
func (l *Limiter[K]) Allow(k K, now time.Time) (ok bool, held uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.held = make(map[K]time.Time), make(map[K]uint64)
	}
	if last, seen := l.last[k]; seen && now.Sub(last) < l.Every {
		l.held[k]++
		return false, 0
	}
	held = l.held[k]
	l.last[k], l.held[k] = now, 0
	return true, held
}
