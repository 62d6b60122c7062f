package supernode

import (
	"errors"
	"testing"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/configtest"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/promotion"
	"github.com/canopy-p2p/canopy/routing"
)

// DefaultConfig lacks only Creds and Control, which have no default.
func TestDefaultConfigValidates(t *testing.T) {
	c := DefaultConfig()
	err := c.Validate()
	if !errors.Is(err, ErrConfig) {
		t.Errorf("DefaultConfig without Creds and Control: Validate() = %v, want an ErrConfig", err)
	}
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if c.Creds, err = link.NewCredentials(id); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("DefaultConfig without Control: Validate() = %v, want an ErrConfig", err)
	}
	c.Control = "127.0.0.1:7373"
	if err := c.Validate(); err != nil {
		t.Errorf("DefaultConfig with Creds and Control: Validate() = %v", err)
	}
}

// The zero Config means the defaults (the Logger aside).
func TestZeroConfigWithDefaultsIsDefaultConfig(t *testing.T) {
	configtest.ZeroMeansDefault(t, Config{}.withDefaults(), DefaultConfig())
}

// TestDefaultsAreTheSimulators checks that the supernode's defaults read the
// named constants the simulator's defaults are checked against
// (sim.TestDefaultsMatchNode), so neither can drift alone.
func TestDefaultsAreTheSimulators(t *testing.T) {
	d := DefaultConfig()
	if d.MaxLeaves != promotion.DefaultLeafSlots || DefaultMaxLeaves != promotion.DefaultLeafSlots {
		t.Errorf("leaf slots %d, the simulator's %d", d.MaxLeaves, promotion.DefaultLeafSlots)
	}
	if d.View != routing.DefaultViewParams() {
		t.Errorf("view %+v, the simulator's %+v", d.View, routing.DefaultViewParams())
	}
	if d.Routing != routing.DefaultParams() {
		t.Errorf("routing %+v, the simulator's %+v", d.Routing, routing.DefaultParams())
	}
	c := Config{}.withDefaults()
	if c.View != routing.DefaultViewParams() {
		t.Errorf("a zero View fills to %+v", c.View)
	}
}
