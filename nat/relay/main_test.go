package relay

import (
	"testing"

	"github.com/canopy-p2p/canopy/internal/leaktest"
)

// TestMain fails the package's tests if they leave goroutines behind. The
// grace period matters since the split out of package nat: a package whose
// last test just closed pion clients now exits while their goroutines are
// still winding down, where before other tests ran meanwhile.
func TestMain(m *testing.M) { leaktest.Main(m) }
