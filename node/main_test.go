package node_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that nodes, once closed, leave no goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
