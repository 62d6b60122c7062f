package node_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/demo"
	"github.com/canopy-p2p/canopy/node"
	"github.com/canopy-p2p/canopy/promotion"
)

// TestPolicyFile checks that a node loads a policy file written the way a
// simulator sweep writes it, reports it, and refuses a broken one.
func TestPolicyFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "policy.toml")
	p := promotion.DefaultParams()
	p.MinUptime *= 2
	if err := promotion.Save(good, promotion.File{Version: promotion.FileVersion, Source: "sweep test", Params: p}); err != nil {
		t.Fatal(err)
	}
	cfg := demo.NodeOptions(dir, "n", zap.NewNop())
	cfg.Consent, cfg.PolicyFile = promotion.ConsentAlways, good
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st := n.Status(); !strings.Contains(st.Policy, "sweep test") {
		t.Fatalf("status policy %q", st.Policy)
	}
	n.Close()

	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("version = 1\n[params]\nmin_uptiem = \"1h\"\n"), 0o644)
	cfg = demo.NodeOptions(dir, "m", zap.NewNop())
	cfg.Consent, cfg.PolicyFile = promotion.ConsentAlways, bad
	if n, err := node.Start(context.Background(), cfg); err == nil {
		n.Close()
		t.Fatal("a policy file with an unknown key was accepted")
	}
}
