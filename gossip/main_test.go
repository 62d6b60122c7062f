package gossip

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves goroutines behind: every Ring is shut
// down by its test, and memberlist's listeners, timers and the event
// dispatcher must be gone by then.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
