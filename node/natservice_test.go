package node_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/demo"
	"github.com/canopy-p2p/canopy/node"
	"github.com/canopy-p2p/canopy/promotion"
)

// TestSupernodeServesSTUNAndTURN: a supernode runs a TURN relay (which also
// answers STUN), hands its leaves per-leaf credentials, and a leaf discovers
// its NAT behaviour against it — on loopback, "no NAT".
func TestSupernodeServesSTUNAndTURN(t *testing.T) {
	dir := t.TempDir()
	start := func(name string, consent promotion.Consent, join []string) *node.Node {
		cfg := demo.NodeOptions(dir, name, testLog(t))
		cfg.Consent, cfg.Join, cfg.TURN = consent, join, "127.0.0.1:0"
		n, err := node.Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	sn := start("sn", promotion.ConsentAlways, nil)
	l := start("leaf", promotion.ConsentNever, []string{sn.Control()})
	waitFor(t, "ICE servers from the supernode", 10*time.Second, func() (bool, string) {
		var stun, turn bool
		for _, s := range l.Leaf().ICEServers() {
			for _, u := range s.URLs {
				stun = stun || strings.HasPrefix(u, "stun:127.0.0.1:")
				turn = turn || (strings.HasPrefix(u, "turn:127.0.0.1:") && s.Username != "")
			}
		}
		return stun && turn, "not yet"
	})
	res := l.NATCheck(context.Background())
	if res.Kind != "public/no NAT" || !strings.HasPrefix(res.Public, "127.0.0.1:") || res.Error != "" {
		t.Fatalf("NAT check on loopback: %+v", res)
	}
	if st := l.Status(); st.NAT == nil || st.NAT.Kind != res.Kind || st.NAT.Reachability.Verdict == "" {
		t.Fatalf("status does not carry the NAT check: %+v", st.NAT)
	}
}
