package node_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/demo"
	"github.com/canopy-p2p/canopy/leaf"
	"github.com/canopy-p2p/canopy/node"
	"github.com/canopy-p2p/canopy/promotion"
)

// startDefaultNetwork starts count nodes on loopback as `canopy up
// --supernode auto` runs them: the built-in promotion policy, the default
// role, reachability, guidance and dial-back intervals, no declared
// bandwidth. Only what a test must change differs: loopback addresses, no
// port mapping, no local API, no TURN relay (demo.NodeOptions). Node 0
// starts alone and founds the network; the rest join through it. Each
// shares one file named like the emulation's, so that searchesWork applies.
func startDefaultNetwork(t *testing.T, count int) []*emuNode {
	t.Helper()
	dir := t.TempDir()
	log := zap.NewNop()
	if os.Getenv("CANOPY_EMULATION_LOG") != "" {
		log, _ = zap.NewDevelopment()
	}
	var nodes []*emuNode
	t.Cleanup(func() {
		// Leaves first, so that a supernode closing last has nobody to hand
		// the network over to and stops at once.
		for _, leavesFirst := range []bool{true, false} {
			for _, n := range nodes {
				if !n.dead && (n.Role() == node.RoleLeaf) == leavesFirst {
					n.dead = true
					n.Close()
				}
			}
		}
	})
	for i := range count {
		name := fmt.Sprintf("d%02d", i)
		cfg := demo.NodeOptions(dir, name, log)
		if i > 0 {
			cfg.Join = []string{nodes[0].Control()}
		}
		nodes = append(nodes, startEmuNode(t, dir, name, i, cfg))
	}
	return nodes
}

// TestRecoveryAtDefaults: five `auto` nodes on loopback with the default
// policy and intervals, whose only supernode goes 10 s after the others
// attached, have a new supernode that answers searches for every live
// node's file within 60 s of a graceful stop (which hands the network over
// to a successor before it leaves) and within 90 s of a crash (the
// emergency election, with reachability evidence from the orphaned leaves
// dialling the successors, since no supernode is left to dial them back).
// Real time: each case takes one to two minutes.
func TestRecoveryAtDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("real-time recovery at the default intervals: skipped with -short")
	}
	for _, tc := range []struct {
		name  string
		crash bool
		limit time.Duration
	}{
		{"graceful stop", false, 60 * time.Second},
		{"crash", true, 90 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := startDefaultNetwork(t, 5)
			first := nodes[0]
			if first.Role() != node.RoleSupernode {
				t.Fatalf("the first node is a %s, want the supernode of a new network", first.Role())
			}
			waitFor(t, "the other four attached", 30*time.Second, func() (bool, string) {
				for _, n := range nodes[1:] {
					if n.Role() != node.RoleLeaf || len(n.Leaf().Attachments()) == 0 {
						return false, fmt.Sprintf("%s is a %s with %d attachments", n.name, n.Role(), len(n.Leaf().Attachments()))
					}
				}
				return true, ""
			})
			time.Sleep(10 * time.Second)

			gone := time.Now()
			first.dead = true
			if tc.crash {
				if err := first.Kill(); err != nil {
					t.Logf("kill: %v", err)
				}
			} else {
				if err := first.Close(); err != nil {
					t.Logf("close: %v", err)
				}
				// The successor promoted before the last supernode left.
				if sns := supernodes(nodes); len(sns) == 0 {
					t.Errorf("the last supernode stopped (in %v) without a successor in its place:\n%s",
						time.Since(gone).Round(10*time.Millisecond), decisions(nodes, promotion.DefaultParams()))
				}
			}
			stopped := time.Since(gone)

			var elected time.Duration
			var searcher *emuNode
			waitFor(t, "a new supernode answering searches", tc.limit, func() (bool, string) {
				sns := supernodes(nodes)
				if len(sns) == 0 {
					return false, "no supernode; " + decisions(nodes, promotion.DefaultParams())
				}
				if elected == 0 {
					elected = time.Since(gone)
				}
				searcher = nil
				for _, n := range nodes {
					if !n.dead && n.Role() == node.RoleLeaf {
						searcher = n
						break
					}
				}
				if searcher == nil {
					return false, fmt.Sprintf("%d supernodes and no leaf to search from", len(sns))
				}
				return searchesWork(searcher, nodes)
			})
			t.Logf("%s of the only supernode 10 s after the others attached (took %v): a new supernode after %v, every live file found from %s after %v (limit %v); %d supernodes now",
				tc.name, stopped.Round(10*time.Millisecond), elected.Round(10*time.Millisecond), searcher.name,
				(time.Since(gone)).Round(10*time.Millisecond), tc.limit, len(supernodes(nodes)))
			for _, n := range nodes {
				if n.dead {
					continue
				}
				st := n.Leaf().StepInStats()
				t.Logf("%s: %s, %d switches, inbound evidence %+v, step-ins %+v", n.name, n.Role(), len(n.Switches()), n.InboundStats(), st)
			}
		})
	}
}

// TestGracefulStopOfTheLastSupernode is the graceful case of
// TestRecoveryAtDefaults on the emulation's scaled clocks, quick enough for
// every run: when the last supernode closes, a successor is a supernode
// before Close returns, every leaf is attached to it, and the successor's
// status explains why it promoted.
func TestGracefulStopOfTheLastSupernode(t *testing.T) {
	p := emulationPolicy()
	dir := t.TempDir()
	var nodes []*emuNode
	t.Cleanup(func() {
		for _, leavesFirst := range []bool{true, false} {
			for _, n := range nodes {
				if !n.dead && (n.Role() == node.RoleLeaf) == leavesFirst {
					n.dead = true
					n.Close()
				}
			}
		}
	})
	for i := range 3 {
		cfg := demo.NodeOptions(dir, fmt.Sprintf("g%d", i), testLog(t))
		cfg.Policy = &p
		cfg.RoleInterval = 500 * time.Millisecond
		cfg.GuidanceInterval = time.Second
		if i > 0 {
			cfg.Join = []string{nodes[0].Control()}
		}
		n, err := node.Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, &emuNode{Node: n, name: cfg.DataDir})
	}
	last, leaves := nodes[0], nodes[1:]
	waitFor(t, "both leaves named successors", 20*time.Second, func() (bool, string) {
		for _, n := range leaves {
			if got := len(n.Leaf().Successors()); got != 2 {
				return false, fmt.Sprintf("a leaf knows %d successors", got)
			}
		}
		return true, ""
	})
	last.dead = true
	if err := last.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	sns := supernodes(nodes)
	if len(sns) != 1 {
		t.Fatalf("%d supernodes after the last one stopped, want its successor:\n%s", len(sns), decisions(nodes, p))
	}
	succ := sns[0]
	// Its switch log (canopy status) says why it promoted; its last
	// decision is already a supernode's.
	if sw := succ.Switches(); len(sw) != 1 || !strings.Contains(sw[0].Reason, "asked this node to take its place") {
		t.Errorf("the successor's switch log does not explain the step-in: %+v", sw)
	}
	waitFor(t, "every leaf attached to the successor", 10*time.Second, func() (bool, string) {
		for _, n := range leaves {
			atts := n.Leaf().Attachments()
			if len(atts) == 0 || !slices.ContainsFunc(atts, func(a leaf.Attachment) bool { return a.ID == succ.ID() }) {
				return false, fmt.Sprintf("%d attachments, none to the successor", len(atts))
			}
		}
		return true, ""
	})
	// Nobody was orphaned on the way: the leaves moved before the old
	// supernode left.
	for _, n := range leaves {
		if o := n.Leaf().Orphanings(); o != 0 {
			t.Errorf("a leaf was orphaned %d times during the hand-over", o)
		}
	}
}
