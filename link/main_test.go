package link

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that links, once closed, leave no goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
