package supernode

import (
	"testing"

	"github.com/canopy-p2p/canopy/promotion"
	"github.com/canopy-p2p/canopy/routing"
)

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
	var c Config
	c.fill()
	if c.View != routing.DefaultViewParams() {
		t.Errorf("a zero View fills to %+v", c.View)
	}
}
