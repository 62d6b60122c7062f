package webui_test

import (
	"testing"

	"github.com/canopy-p2p/canopy/internal/leaktest"
)

// TestMain fails the package's tests if they leave goroutines behind.
func TestMain(m *testing.M) { leaktest.Main(m) }
