package supernode

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that supernodes, once closed, leave no goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
