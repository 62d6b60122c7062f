package sim

import (
	"testing"

	"github.com/canopy-p2p/canopy/choice"
	"github.com/canopy-p2p/canopy/promotion"
	"github.com/canopy-p2p/canopy/routing"
)

// TestDefaultsMatchNode fails when a bound the simulator models by default
// differs from the node's. The node's defaults are named constants of the
// pure packages (the simulator does not import the supernode or the leaf);
// supernode's own test checks that its DefaultConfig reads the same ones.
func TestDefaultsMatchNode(t *testing.T) {
	nw := DefaultScenario().Network
	view := routing.DefaultViewParams()
	cases := []struct {
		name      string
		sim, node any
	}{
		{"peer view (supernode.Config.View.PeerView)", nw.PeerView, view.PeerView},
		{"peer view refresh (supernode.Config.View.Refresh)", nw.PeerViewRefresh.Duration, view.Refresh},
		{"peer view rotation (supernode.Config.View.Rotate)", nw.PeerViewRotate, view.Rotate},
		{"inbound peer links (supernode.Config.View.MaxInbound)", nw.PeerInbound, view.MaxInbound},
		{"leaf slots (supernode.Config.MaxLeaves)", nw.LeafSlots, promotion.DefaultLeafSlots},
		// The leaf attaches to leaf.DefaultAttach = choice.DefaultK
		// supernodes and keeps at most leaf.DefaultMaxCandidates =
		// choice.DefaultMaxCandidates candidates (leaf's own test checks
		// both aliases).
		{"supernodes per leaf (leaf.Config.Attach)", nw.Choice.K, choice.DefaultK},
		{"choice rule (leaf.Config.Choice)", nw.Choice, choice.DefaultParams()},
		{"candidates per leaf (leaf.Config.MaxCandidates)", nw.Candidates, choice.DefaultMaxCandidates},
		{"routing rule (supernode.Config.Routing)", nw.Routing, routing.DefaultParams()},
	}
	for _, c := range cases {
		if c.sim != c.node {
			t.Errorf("%s: simulator default %v, node default %v", c.name, c.sim, c.node)
		}
	}
}
