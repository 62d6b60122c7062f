package natmatrix

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/canopy-p2p/canopy/nat"
	"github.com/canopy-p2p/canopy/nat/natlab"
)

// The population the matrix is weighed with: what share of peers sits
// behind each kind of NAT the lab builds. /work/shared/FIELD-NUMBERS.md
// gives two figures; the split inside each group is this test's assumption,
// stated here so that the direct share it implies can be argued with:
//
//   - ~73% of peers cannot accept inbound connections ("LowID" clients of an
//     eD2k server, 2026; a user report). So public + full cone, the kinds
//     that accept unsolicited inbound packets, get the other 27%.
//   - CGNAT is in ~13% of non-cellular networks (IMC 2016, secondary).
//
// Within the 27% that accept inbound: public/no NAT 10% (hosts with a
// public address: servers, campus and some ISP links), full cone 17% (home
// routers with a port mapping from UPnP-IGD/NAT-PMP or a manual forward, the
// mapped port of which behaves endpoint-independently both ways).
// Within the 73% that cannot, besides CGNAT's 13%: port-restricted cone 42%
// (the default of Linux-based home routers: masquerade with conntrack), symmetric
// 10%, restricted cone 5%, UDP blocked 3% (corporate and guest networks).
// FIELD-NUMBERS.md has no figure for these four; the cross-check is its
// "~22% of WebRTC calls needed TURN" (callstats, 2015), which the mix's
// predicted relay share should be near (it is logged).
var populationMix = []struct {
	kind   natlab.Kind
	share  float64
	reason string
}{
	{natlab.Public, 0.10, "accepts inbound (27% HighID, FIELD-NUMBERS): public address"},
	{natlab.FullCone, 0.17, "accepts inbound (27% HighID): home router with a port mapping"},
	{natlab.RestrictedCone, 0.05, "cannot accept inbound (73% LowID): assumption"},
	{natlab.PortRestrictedCone, 0.42, "cannot accept inbound: the common Linux home router (assumption)"},
	{natlab.Symmetric, 0.10, "cannot accept inbound: assumption"},
	{natlab.CGNAT, 0.13, "CGNAT in ~13% of non-cellular networks (IMC 2016)"},
	{natlab.UDPBlocked, 0.03, "cannot accept inbound: corporate/guest networks (assumption)"},
}

// The marks FIELD-NUMBERS.md gives for the share of connections that end up
// direct in deployed systems.
const (
	libp2pDirect    = 0.70 // DCUtR hole punching success in the wild, arXiv 2510.27500
	tailscaleDirect = 0.90 // "over 90%" direct, Tailscale blog
)

// pairKey names an unordered pair of kinds.
type pairKey struct{ a, b natlab.Kind }

func keyOf(a, b natlab.Kind) pairKey {
	if a > b {
		a, b = b, a
	}
	return pairKey{a, b}
}

// populationShare returns the probability that two peers drawn at random,
// independently, from mix connect directly, given direct(a, b) for every
// pair of kinds; and the probability mass of pairs direct has no answer for
// (a pair that failed or did not run), which is counted as not direct.
func populationShare(mix map[natlab.Kind]float64, direct func(a, b natlab.Kind) (bool, bool)) (share, unknown float64) {
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

func defaultMix() map[natlab.Kind]float64 {
	m := map[natlab.Kind]float64{}
	for _, p := range populationMix {
		m[p.kind] = p.share
	}
	return m
}

// mixTable renders populationMix for the test log.
func mixTable() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "kind\tshare\twhy")
	for _, p := range populationMix {
		fmt.Fprintf(w, "%s\t%.0f%%\t%s\n", p.kind, 100*p.share, p.reason)
	}
	w.Flush()
	return b.String()
}

// TestPopulationMix checks the mix adds up and names every kind, and logs
// the direct share nat.DirectPossible alone predicts for it (no lab needed).
func TestPopulationMix(t *testing.T) {
	mix := defaultMix()
	sum := 0.0
	for _, k := range natlab.Kinds() {
		w, ok := mix[k]
		if !ok {
			t.Errorf("the population mix has no share for %s", k)
		}
		sum += w
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("the population mix adds up to %.4f, want 1", sum)
	}
	inbound := mix[natlab.Public] + mix[natlab.FullCone]
	if math.Abs(inbound-0.27) > 1e-9 {
		t.Errorf("kinds that accept inbound have %.2f, want 0.27 (FIELD-NUMBERS: ~73%% cannot)", inbound)
	}
	share, unknown := populationShare(mix, func(a, b natlab.Kind) (bool, bool) {
		d, _ := nat.DirectPossible(labBehaviour(a), labBehaviour(b))
		return d, true
	})
	if unknown != 0 {
		t.Fatalf("unknown mass %v", unknown)
	}
	t.Logf("population mix:\n%sdirect share predicted by nat.DirectPossible: %.1f%% (libp2p ~%.0f%%, Tailscale ~%.0f%%)",
		mixTable(), 100*share, 100*libp2pDirect, 100*tailscaleDirect)
}
