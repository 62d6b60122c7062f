package demo

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that a whole network of nodes, once closed, leaves no
// goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
