package leaf

import (
	"errors"
	"testing"

	"github.com/canopy-p2p/canopy/choice"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/configtest"
	"github.com/canopy-p2p/canopy/link"
)

// DefaultConfig has no Creds, which have no default, so it validates once
// they are set.
func TestDefaultConfigValidates(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("DefaultConfig without Creds: Validate() = %v, want an ErrConfig", err)
	}
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if c.Creds, err = link.NewCredentials(id); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("DefaultConfig with Creds: Validate() = %v", err)
	}
}

// The zero Config means the defaults (the Logger aside).
func TestZeroConfigWithDefaultsIsDefaultConfig(t *testing.T) {
	configtest.ZeroMeansDefault(t, Config{}.withDefaults(), DefaultConfig())
}

// Choice.K follows Attach, whatever Choice says.
func TestChoiceKIsAttach(t *testing.T) {
	c := Config{Attach: 5}.withDefaults()
	if c.Choice.K != 5 {
		t.Errorf("Choice.K = %d, want Attach 5", c.Choice.K)
	}
}

// TestDefaultsAreTheSimulators checks that the leaf's bounds read the named
// constants the simulator's defaults are checked against
// (sim.TestDefaultsMatchNode), so neither can drift alone.
func TestDefaultsAreTheSimulators(t *testing.T) {
	d := DefaultConfig()
	if d.Attach != choice.DefaultK || d.Choice.K != choice.DefaultK {
		t.Errorf("attach %d, choice K %d; the simulator's k is %d", d.Attach, d.Choice.K, choice.DefaultK)
	}
	if d.MaxCandidates != choice.DefaultMaxCandidates {
		t.Errorf("candidate cap %d, the simulator's %d", d.MaxCandidates, choice.DefaultMaxCandidates)
	}
	if c := (Config{}).withDefaults(); c.MaxCandidates != choice.DefaultMaxCandidates {
		t.Errorf("a zero MaxCandidates fills to %d", c.MaxCandidates)
	}
}
