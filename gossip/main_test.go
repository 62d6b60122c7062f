package gossip

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// leakGrace is how long goroutines may outlive the tests. memberlist's
// Shutdown stops its schedulers but does not wait for a probe already in
// flight, which ends on its own after at most a probe interval plus a TCP
// timeout (1 s each in the local profile). goleak's own retries give up after
// about half a second, too soon for that, so the check is repeated until this
// grace period has passed; a real leak outlives it.
const leakGrace = 5 * time.Second

// TestMain checks that no test leaves goroutines behind: every Ring is shut
// down by its test, and memberlist's listeners, timers and the event
// dispatcher must be gone soon after.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := findLeaks(leakGrace); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func findLeaks(grace time.Duration) error {
	deadline := time.Now().Add(grace)
	for {
		err := goleak.Find()
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}
