// Package testwait waits in tests for a condition that other goroutines make
// true: a poll with a deadline, so that a condition that never holds fails the
// test with a message instead of hanging it until the test binary's timeout.
package testwait

import (
	"fmt"
	"testing"
	"time"
)

// Polling starts at firstInterval and doubles up to maxInterval: a condition
// that holds almost at once is seen almost at once, and one that takes
// seconds is not checked hundreds of times a second.
const (
	firstInterval = time.Millisecond
	maxInterval   = 50 * time.Millisecond
)

// Until polls cond until it returns true. If it has not by the time timeout
// has passed, Until fails the test with t.Fatalf and the message format and
// args say, so it must be called from the test's goroutine. cond is checked
// once more after the deadline, so a slow machine that wakes late does not
// fail a condition that holds.
func Until(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if err := For(timeout, cond); err != nil {
		t.Fatalf("%s (%v)", fmt.Sprintf(format, args...), err)
	}
}

// For polls cond like Until but returns an error instead of failing the test
// when timeout passes first: for goroutines other than the test's, and for
// callers whose message needs what cond saw last.
func For(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	interval := firstInterval
	for !cond() {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("not within %v", timeout)
		}
		time.Sleep(min(interval, left))
		interval = min(2*interval, maxInterval)
	}
	return nil
}
