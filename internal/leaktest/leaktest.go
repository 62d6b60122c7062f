// Package leaktest is a TestMain that fails a test binary whose tests leave
// goroutines behind. It gives goroutines a grace period to end first:
// memberlist's Shutdown does not wait for a probe already in flight (up to
// about two seconds), which goleak's own short retry loop does not cover.
package leaktest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Grace is how long goroutines may take to end after the last test.
const Grace = 5 * time.Second

// Main runs the tests and then checks for leaked goroutines; use it as
//
//	func TestMain(m *testing.M) { leaktest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := Find(Grace); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines leaked: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Find polls goleak until no unexpected goroutine is left or grace runs out,
// and returns goleak's report of what is left.
func Find(grace time.Duration) error {
	deadline := time.Now().Add(grace)
	for {
		err := goleak.Find()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
