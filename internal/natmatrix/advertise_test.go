package natmatrix

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
// Its STUN/TURN services are announced at the router's address too, on
// the TURN port the router maps: the internet leaf's NAT discovery gets a
// binding answer there, and a leaf whose network blocks UDP, attached to
// home alone, downloads through home's relay (TURN over TCP, relayed
// addresses on the router's address). And a leaf behind a symmetric NAT,
// attached to home alone, downloads from that UDP-blocked leaf: the only
// relay candidates are home's, and the symmetric NAT's packets reach the
// relayed address from a port home's relay never sent to, so they pass the
// router only because home restricts its relay to ports it has mapped.
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
	blkHost := lab.Home("blk", nat.UDPBlocked)
	symHost := lab.Home("sym", nat.Symmetric)

	// sn1 derives its address (its host's own, public); home maps its
	// ports with the router before it starts its supernode role.
	sn1 := startNode(t, ctx, bin, work, sn1Host, "--supernode", "always", "--listen", listen)
	// A relay rate well above the 8 MiB file's, so that the relayed
	// download below takes a few seconds rather than the default quota's 32.
	home := startNode(t, ctx, bin, work, homeHost, "--supernode", "always", "--listen", listen, "--join", control(sn1Host),
		"--relay-rate", "100mbit")
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

	// pub's only supernode is home, so the one discovery server it has is
	// the one home announced: a STUN binding from the internet to the
	// router's mapping of home's TURN port must answer (on the private
	// address nothing would).
	wantSTUN := netip.AddrPortFrom(homeHost.Public, turnPort).String()
	nc, err := natcheck(ctx, pub)
	if err != nil {
		t.Fatal(err)
	}
	answered := "test I: " + wantSTUN + " answered"
	if !slices.ContainsFunc(nc.Evidence, func(e string) bool { return strings.HasPrefix(e, answered) }) ||
		!strings.HasPrefix(nc.Public, pubHost.Public.String()+":") {
		t.Fatalf("pub's NAT discovery against home's announced STUN %s: kind %s, public %s, error %q, evidence %q\n--- home log ---\n%s",
			wantSTUN, nc.Kind, nc.Public, nc.Error, nc.Evidence, home.logTail(30))
	}

	// A leaf whose network blocks UDP can only reach a relay over TCP, and
	// knows only home: its download from far goes through home's relay,
	// at the router's mapping of the TURN port (TCP), with relayed
	// addresses on the router's address. runPair checks the path is
	// relayed.
	blkShare := filepath.Join(work, blkHost.Name, "share")
	blkFile, err := writeShare(blkShare, blkHost.Name)
	if err != nil {
		t.Fatal(err)
	}
	blk := startNode(t, ctx, bin, work, blkHost, "--supernode", "never", "--listen", listen, "--join", want, "--attach", "1",
		"--share", blkShare)
	blk.file = blkFile
	waitAll(t, ctx, "blk attached to home at the advertised address", startupTimeout, []*node{blk}, func(n *node, st api.Status) (bool, string) {
		return len(st.Supernodes) == 1 && st.Supernodes[0].ID == home.id, fmt.Sprintf("attachments %+v", st.Supernodes)
	})
	rb := runPair(t, ctx, far, blk, "out")
	if rb.err != nil {
		t.Fatalf("blk (UDP blocked) downloading from far through home's relay: %v\n--- home log ---\n%s\n--- blk log ---\n%s\n--- far log ---\n%s",
			rb.err, home.logTail(30), blk.logTail(30), far.logTail(30))
	}
	if rb.conn.Local != "relay" {
		t.Fatalf("blk's side of the connection is %q, want a relay candidate (home's TURN): %+v", rb.conn.Local, rb.conn)
	}

	// The symmetric leaf knows only home, and blk's only candidates are
	// home's relay (over TCP): the path is relayed through home, and blk's
	// end of it is a relayed address on a mapped port of home's router.
	sym := startNode(t, ctx, bin, work, symHost, "--supernode", "never", "--listen", listen, "--join", want, "--attach", "1")
	waitAll(t, ctx, "sym attached to home, blk's file indexed there", startupTimeout, []*node{sym, blk}, func(n *node, st api.Status) (bool, string) {
		ok := len(st.Supernodes) == 1 && st.Supernodes[0].ID == home.id
		if n == blk {
			ok = ok && st.Supernodes[0].Files == 1
		}
		return ok, fmt.Sprintf("attachments %+v", st.Supernodes)
	})
	rs := runPair(t, ctx, blk, sym, "out")
	if rs.err != nil {
		t.Fatalf("sym (symmetric NAT) downloading from blk through home's relay: %v\n--- home log ---\n%s\n--- sym log ---\n%s\n--- blk log ---\n%s%s",
			rs.err, home.logTail(40), sym.logTail(30), blk.logTail(30), conntrack(ctx, homeHost, symHost))
	}
	if rs.conn.Remote != "relay" {
		t.Fatalf("blk's side of the connection is %q, want its relay candidate on home: %+v", rs.conn.Remote, rs.conn)
	}
	if !home.logContains("TURN relay restricted to the mapped ports") {
		t.Fatalf("home's relay did not restrict itself to mapped ports\n--- home log ---\n%s", home.logTail(60))
	}
	t.Logf("home advertised %s (gossip %s, STUN/TURN %s); pub got far's file %s in %.1f s (%s); blk got it %s in %.1f s (%s/%s); sym got blk's %s in %.1f s (%s/%s); total %v",
		want, wantGossip, wantSTUN, r.conn.Path, r.seconds, r.conn.Remote, rb.conn.Path, rb.seconds, rb.conn.Local, rb.conn.Remote,
		rs.conn.Path, rs.seconds, rs.conn.Local, rs.conn.Remote, time.Since(began).Round(time.Millisecond))
}

// turnPort is the default TURN port every supernode of the lab listens on
// (canopy up --turn 0.0.0.0:3478).
const turnPort = 3478

// natcheck runs `canopy natcheck --json` on n: a NAT discovery now,
// against the STUN services of n's supernodes.
func natcheck(ctx context.Context, n *node) (api.NAT, error) {
	var nc api.NAT
	out, err := n.run(ctx, 40*time.Second, "natcheck", "--json")
	if err != nil {
		return nc, err
	}
	if err := json.Unmarshal(out, &nc); err != nil {
		return nc, fmt.Errorf("%s: canopy natcheck --json: %v: %q", n.name, err, out)
	}
	return nc, nil
}

// portMap is the port mapping line of a status, for failure messages.
func portMap(st api.Status) string {
	if st.NAT == nil {
		return "(not reported)"
	}
	return st.NAT.PortMap
}

// logContains reports whether n's log holds s.
func (n *node) logContains(s string) bool {
	b, err := os.ReadFile(n.log)
	return err == nil && strings.Contains(string(b), s)
}
