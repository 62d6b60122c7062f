package node_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/demo"
	"github.com/canopy-p2p/canopy/node"
	"github.com/canopy-p2p/canopy/promotion"
)

// TestDemotionHandsLeavesOver: a supernode that stops qualifying (here its
// user withdraws consent) hands its leaf to another supernode before it
// leaves the ring, and the leaf is never without a supernode in between.
func TestDemotionHandsLeavesOver(t *testing.T) {
	dir := t.TempDir()
	p := emulationPolicy()
	start := func(name string, consent promotion.Consent, join []string) *node.Node {
		cfg := demo.NodeOptions(dir, name, testLog(t))
		cfg.Policy, cfg.Consent, cfg.Join = &p, consent, join
		cfg.RoleInterval = 100 * time.Millisecond
		cfg.GuidanceInterval = time.Second
		n, err := node.Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	b := start("b", promotion.ConsentAlways, nil)
	a := start("a", promotion.ConsentAlways, []string{b.Control()})
	leafCfg := func() *node.Node {
		cfg := demo.NodeOptions(dir, "leaf", testLog(t))
		cfg.Policy, cfg.Consent, cfg.Join, cfg.Attach = &p, promotion.ConsentNever, []string{a.Control()}, 1
		sh := filepath.Join(dir, "leaf", "shared")
		if err := os.MkdirAll(sh, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sh, "handed over.txt"), []byte("still here"), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg.Shares = []string{sh}
		n, err := node.Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	l := leafCfg()
	waitFor(t, "leaf indexed on a, ring of two", 20*time.Second, func() (bool, string) {
		atts := l.Leaf().Attachments()
		ok := len(atts) == 1 && atts[0].ID == a.ID() && atts[0].Files == 1 && len(b.Supernode().Members()) == 2
		return ok, "not yet"
	})

	if err := a.SetConsent(promotion.ConsentNever); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a demoted", 20*time.Second, func() (bool, string) {
		sw := a.Switches()
		return a.Role() == node.RoleLeaf && sw[len(sw)-1].To == "leaf", a.Role()
	})
	sw := a.Switches()
	last := sw[len(sw)-1]
	if last.To != "leaf" || !strings.Contains(last.Reason, "never") {
		t.Errorf("last switch %+v: want a demotion explained by consent never", last)
	}
	if n := l.Leaf().Orphanings(); n != 0 {
		t.Fatalf("the leaf was left without a supernode %d times during the handover", n)
	}
	atts := l.Leaf().Attachments()
	if len(atts) != 1 || atts[0].ID != b.ID() {
		t.Fatalf("after the handover the leaf holds %+v; want b", atts)
	}
	waitFor(t, "a gone from the ring", 20*time.Second, func() (bool, string) {
		return len(b.Supernode().Members()) == 1, "a still a member"
	})
	waitFor(t, "search through b", 10*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res, err := a.Leaf().Search(ctx, "handed over", 1, nil)
		return err == nil && len(res) == 1, "no hit"
	})
	if st := a.Status(); st.Promotion == nil || st.Promotion.Consent != "never" || len(st.Promotion.Checks) == 0 {
		t.Errorf("status does not explain the decision: %+v", st.Promotion)
	}
}

// testLog logs to stderr when CANOPY_EMULATION_LOG is set, else nowhere.
func testLog(t *testing.T) *zap.Logger {
	if os.Getenv("CANOPY_EMULATION_LOG") == "" {
		return zap.NewNop()
	}
	l, _ := zap.NewDevelopment()
	return l
}
