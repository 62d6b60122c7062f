package promotion_test

import (
	"fmt"
	"time"

	"github.com/canopy-p2p/canopy/promotion"
)

func ExampleDecision_Explain() {
	p := promotion.DefaultParams()
	in := promotion.Input{
		Role:          promotion.RoleLeaf,
		Reachable:     true,
		ReachKnown:    true,
		Uptime:        12 * time.Minute,
		AvgUptime:     4 * time.Hour,
		UpBandwidth:   2 << 20,
		DownBandwidth: 10 << 20,
		CPUHeadroom:   0.7,
		MemHeadroom:   0.4,
		FreeFDs:       60000,
		SinceSwitch:   1 << 62,
		Demotions:     0,
		Ring:          promotion.RingView{Known: true, Supernodes: 40, Leaves: 3800, FreeSlots: 4200, Load: 0.475},
	}
	d := promotion.Decide(p, in)
	fmt.Println(d.Summary(p, in))
	for _, line := range d.Explain(p, in) {
		fmt.Println(line)
	}
	// Output:
	// stay a leaf: up 12 min; a supernode needs 1 h of uptime first
	// ✓ you allow this node to become a supernode when it qualifies (--supernode auto)
	// ✓ reachable from outside (confirmed by dial-backs)
	// ✗ up 12 min; a supernode needs 1 h of uptime first
	// ✓ past sessions average 4 h (a supernode needs 3 h)
	// ✓ bandwidth 2.0 MiB/s up, 10.0 MiB/s down (a supernode needs 128 KiB/s up, 256 KiB/s down)
	// ✓ 70% CPU idle (needs 50%)
	// ✓ 40% memory free (needs 20%)
	// ✓ 60000 file descriptors free (needs 512)
	// ✓ no recent role change (at least 30 min between changes)
	// ✓ never demoted, so no back-off
	// ✓ the network needs another supernode: 95 leaf links per supernode, load 95% of the target 100 (promotes at 90%)
	// ✓ won the promotion draw (50% per check), which spreads candidates' promotions over time
}
