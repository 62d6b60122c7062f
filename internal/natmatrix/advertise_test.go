package natmatrix

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/internal/natlab"
	"github.com/canopy-p2p/canopy/nat"
)

// TestAdvertiseBehindUPnP: a node at home behind a router with UPnP-IGD
// and NAT-PMP (the lab's miniupnpd) becomes a supernode and advertises the
// router's mapping, not its private address: the public supernode it joins
// through verifies it there and gossips with it through the mapped gossip
// port, a leaf on the internet attaches to it at that address alone, and
// downloads, found through it, a file from a leaf behind another NAT.
func TestAdvertiseBehindUPnP(t *testing.T) {
	if testing.Short() {
		t.Skip("natmatrix: runs four canopy nodes in a NAT lab; skipped under -short")
	}
	began := time.Now()
	work := t.TempDir() // before the lab: removed after the lab's cleanup
	keepLogs(t, work)
	var lab *natlab.Lab
	t.Cleanup(func() {
		if lab != nil {
			if err := lab.Leaked(); err != nil {
				t.Error(err)
			}
		}
	})
	lab = natlab.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	if dl, ok := t.Deadline(); ok {
		ctx, cancel = context.WithDeadline(context.Background(), dl.Add(-15*time.Second))
	}
	t.Cleanup(cancel)
	bin := buildCanopy(t, work)

	listen := fmt.Sprintf("0.0.0.0:%d", controlPort)
	sn1Host := lab.Public("sn1", 1)
	homeHost := lab.Home("home", nat.PortRestrictedCone, natlab.WithUPnP())
	farHost := lab.Home("far", nat.PortRestrictedCone)
	pubHost := lab.Public("pub", 1)

	// sn1 derives its address (its host's own, public); home maps its
	// ports with the router before it starts its supernode role.
	sn1 := startNode(t, ctx, bin, work, sn1Host, "--supernode", "always", "--listen", listen)
	home := startNode(t, ctx, bin, work, homeHost, "--supernode", "always", "--listen", listen, "--join", control(sn1Host))
	farShare := filepath.Join(work, farHost.Name, "share")
	file, err := writeShare(farShare, farHost.Name)
	if err != nil {
		t.Fatal(err)
	}
	far := startNode(t, ctx, bin, work, farHost, "--supernode", "never", "--listen", listen,
		"--join", control(sn1Host), "--attach", "1", "--share", farShare)
	far.file = file

	// What others can reach: the router's public address, on the mapped
	// ports (miniupnpd grants the ports asked for, the local ones).
	want := netip.AddrPortFrom(homeHost.Public, controlPort).String()
	wantGossip := netip.AddrPortFrom(homeHost.Public, controlPort+1).String()
	private := netip.AddrPortFrom(homeHost.Addr, controlPort).String()
	waitAll(t, ctx, "home is a supernode advertising the router's mapping", startupTimeout, []*node{home}, func(n *node, st api.Status) (bool, string) {
		for _, m := range st.Ring {
			if m.Self {
				return st.Role == "supernode" && m.Control == want && m.Gossip == wantGossip, fmt.Sprintf("role %s, own entry %+v, port mapping %s", st.Role, m, portMap(st))
			}
		}
		return false, fmt.Sprintf("role %s, not in its own ring yet, port mapping %s", st.Role, portMap(st))
	})
	waitAll(t, ctx, "sn1 lists home, verified at the mapped address, in its ring", startupTimeout, []*node{sn1}, func(n *node, st api.Status) (bool, string) {
		for _, m := range st.Ring {
			if m.ID == home.id {
				if m.Control == private {
					t.Fatalf("sn1 lists home at its private address %s", private)
				}
				return m.Control == want && m.Linked, fmt.Sprintf("home listed as %+v", m)
			}
		}
		return false, fmt.Sprintf("ring %+v", st.Ring)
	})
	waitAll(t, ctx, "far attached to sn1 with its file indexed", startupTimeout, []*node{far}, func(n *node, st api.Status) (bool, string) {
		return len(st.Supernodes) == 1 && st.Supernodes[0].Files == 1, fmt.Sprintf("attachments %+v", st.Supernodes)
	})

	// A leaf on the internet that knows nothing but home's advertised
	// address, and keeps to one supernode: everything it finds comes
	// through home.
	pub := startNode(t, ctx, bin, work, pubHost, "--supernode", "never", "--listen", listen, "--join", want, "--attach", "1")
	waitAll(t, ctx, "pub attached to home at the advertised address", startupTimeout, []*node{pub}, func(n *node, st api.Status) (bool, string) {
		return len(st.Supernodes) == 1 && st.Supernodes[0].ID == home.id && st.Supernodes[0].Control == want,
			fmt.Sprintf("attachments %+v", st.Supernodes)
	})
	r := runPair(t, ctx, far, pub, "out")
	if r.err != nil {
		t.Fatalf("pub downloading from far through home: %v\n--- home log ---\n%s\n--- pub log ---\n%s\n--- far log ---\n%s",
			r.err, home.logTail(30), pub.logTail(30), far.logTail(30))
	}
	t.Logf("home advertised %s (gossip %s); pub got far's file %s in %.1f s (%s); total %v",
		want, wantGossip, r.conn.Path, r.seconds, r.conn.Remote, time.Since(began).Round(time.Millisecond))
}

// portMap is the port mapping line of a status, for failure messages.
func portMap(st api.Status) string {
	if st.NAT == nil {
		return "(not reported)"
	}
	return st.NAT.PortMap
}
