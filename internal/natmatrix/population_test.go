package natmatrix

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/canopy-p2p/canopy/nat"
)

// The population the matrix is weighed with is nat.Population, the one mix
// the simulator uses too; where each share comes from is stated there.

// The marks docs/field-numbers.md gives for the share of connections that
// end up direct in deployed systems.
const (
	libp2pDirect    = 0.70 // DCUtR hole punching success in the wild, arXiv 2510.27500
	tailscaleDirect = 0.90 // "over 90%" direct, Tailscale blog
)

// pairKey names an unordered pair of kinds.
type pairKey struct{ a, b nat.Kind }

func keyOf(a, b nat.Kind) pairKey {
	if a > b {
		a, b = b, a
	}
	return pairKey{a, b}
}

// populationShare returns the probability that two peers drawn at random,
// independently, from mix connect directly, given direct(a, b) for every
// pair of kinds; and the probability mass of pairs direct has no answer for
// (a pair that failed or did not run), which is counted as not direct.
func populationShare(mix map[nat.Kind]float64, direct func(a, b nat.Kind) (bool, bool)) (share, unknown float64) {
	for a, wa := range mix {
		for b, wb := range mix {
			d, known := direct(a, b)
			switch {
			case !known:
				unknown += wa * wb
			case d:
				share += wa * wb
			}
		}
	}
	return share, unknown
}

func defaultMix() map[nat.Kind]float64 {
	m := map[nat.Kind]float64{}
	for _, p := range nat.Population() {
		m[p.Kind] = p.Share
	}
	return m
}

// mixTable renders nat.Population for the test log.
func mixTable() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "kind\tshare\twhy")
	for _, p := range nat.Population() {
		fmt.Fprintf(w, "%s\t%.0f%%\t%s\n", p.Kind, 100*p.Share, p.Why)
	}
	w.Flush()
	return b.String()
}

// TestPopulationMix checks the mix adds up and names every kind, and logs
// the direct share nat.DirectPossible alone predicts for it (no lab needed).
func TestPopulationMix(t *testing.T) {
	mix := defaultMix()
	sum := 0.0
	for _, k := range nat.Kinds() {
		w, ok := mix[k]
		if !ok {
			t.Errorf("the population mix has no share for %s", k)
		}
		sum += w
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("the population mix adds up to %.4f, want 1", sum)
	}
	inbound := mix[nat.Public] + mix[nat.FullCone]
	if math.Abs(inbound-0.27) > 1e-9 {
		t.Errorf("kinds that accept inbound have %.2f, want 0.27 (~73%% LowID cannot)", inbound)
	}
	share, unknown := populationShare(mix, func(a, b nat.Kind) (bool, bool) {
		d, _ := nat.DirectPossible(a.Behaviour(), b.Behaviour())
		return d, true
	})
	if unknown != 0 {
		t.Fatalf("unknown mass %v", unknown)
	}
	t.Logf("population mix:\n%sdirect share predicted by nat.DirectPossible: %.1f%% (libp2p ~%.0f%%, Tailscale ~%.0f%%)",
		mixTable(), 100*share, 100*libp2pDirect, 100*tailscaleDirect)
}
