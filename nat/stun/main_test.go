package stun

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if they leave goroutines behind, as it
// did when this code was part of package nat.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
