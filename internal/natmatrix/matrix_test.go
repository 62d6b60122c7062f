package natmatrix

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/internal/natlab"
	"github.com/canopy-p2p/canopy/nat"
)

// Time limits. The lab's links are veth pairs inside one machine, so every
// step is fast when it works; the limits are there to turn a hang into a
// clear failure on a loaded CI machine.
const (
	startupTimeout  = 60 * time.Second // all nodes up, attached, files indexed
	discoverTimeout = 60 * time.Second // NAT discovery reported by every leaf (it starts ~30 s after attaching)
	searchTimeout   = 20 * time.Second // a search finds the source's file
	getTimeout      = 60 * time.Second // one 8 MiB download, ICE included
	pollEvery       = 300 * time.Millisecond
)

// The ports of the supernodes' RFC 5780 STUN service (the TURN relay keeps
// its default, 3478).
const stunPort, stunAltPort = 3479, 3480

// relayRate is the supernodes' per-leaf relay quota (--relay-rate).
const relayRate = "2gbit"

// pairResult is one cell of the matrix.
type pairResult struct {
	src, dst   *node // dst downloads src's file
	expect     bool  // nat.DirectPossible's verdict for the two kinds
	why        string
	conn       api.Connection // the download's connection to src
	seconds    float64        // download duration the node reported
	err        error
	hasConnRep bool // the done event carried a connection report for src
	// unexpectedDirect is set when the pair went direct although
	// nat.DirectPossible says it cannot.
	unexpectedDirect bool
}

func (r pairResult) ok() bool { return r.err == nil }

// luckyDirect reports whether r went direct where the NATs should not allow
// it, with a symmetric NAT on either side: the one case a random port can
// explain.
func (r pairResult) luckyDirect() bool {
	return r.unexpectedDirect && (r.src.host.Kind == nat.Symmetric || r.dst.host.Kind == nat.Symmetric)
}

func TestMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("natmatrix: the NAT matrix runs 16 canopy nodes in a NAT lab for a few minutes; skipped under -short")
	}
	began := time.Now()
	// The work directory is created before the lab so that its removal
	// runs after the lab's cleanup (cleanups run last-in first-out), when
	// no node is left writing into it.
	work := t.TempDir()
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
	ctx, cancel := context.WithCancel(context.Background())
	if dl, ok := t.Deadline(); ok {
		ctx, cancel = context.WithDeadline(context.Background(), dl.Add(-15*time.Second))
	}
	t.Cleanup(cancel)

	bin := buildCanopy(t, work)
	t.Logf("built canopy in %v", time.Since(began).Round(time.Millisecond))

	// Two supernodes on the internet; sn2 joins through sn1. Each runs
	// the TURN relay (which answers STUN too) on its default port, and an
	// RFC 5780 STUN service on its two addresses, so that the leaves learn
	// their NAT's filtering as well as its mapping.
	sn1Host, sn2Host := lab.Public("sn1", 2), lab.Public("sn2", 2)
	snArgs := func(h *natlab.Host, join ...*natlab.Host) []string {
		a := []string{"--supernode", "always", "--listen", fmt.Sprintf("0.0.0.0:%d", controlPort),
			"--advertise", control(h),
			"--stun", netip.AddrPortFrom(h.Addrs[0], stunPort).String(),
			"--stun-alt", netip.AddrPortFrom(h.Addrs[1], stunAltPort).String(),
			// The default relay quota (256 kB/s per leaf) would make each
			// relayed 8 MiB download take half a minute; quotas have their
			// own tests, the matrix measures what the relay can carry.
			"--relay-rate", relayRate}
		for _, j := range join {
			a = append(a, "--join", control(j))
		}
		return a
	}
	sn1 := startNode(t, ctx, bin, work, sn1Host, snArgs(sn1Host)...)
	sn2 := startNode(t, ctx, bin, work, sn2Host, snArgs(sn2Host, sn1Host)...)
	supernodes := []*node{sn1, sn2}

	// Two leaves per kind: X-a meets every other kind, X-b only X-a.
	kinds := matrixKinds(t)
	leaves := map[nat.Kind][2]*node{}
	var allLeaves []*node
	for _, k := range kinds {
		var pair [2]*node
		for i, suffix := range []string{"a", "b"} {
			h := lab.Home(k.String()+"-"+suffix, k)
			share := filepath.Join(work, h.Name, "share")
			file, err := writeShare(share, h.Name)
			if err != nil {
				t.Fatal(err)
			}
			n := startNode(t, ctx, bin, work, h, "--supernode", "never", "--listen", fmt.Sprintf("0.0.0.0:%d", controlPort),
				"--join", control(sn1Host), "--join", control(sn2Host), "--share", share)
			n.file = file
			pair[i] = n
			allLeaves = append(allLeaves, n)
		}
		leaves[k] = pair
	}
	t.Logf("lab built and %d nodes started in %v", len(supernodes)+len(allLeaves), time.Since(began).Round(time.Millisecond))

	// Ready: the supernodes see each other in their ring; every leaf is
	// attached to both supernodes and both hold its file in their index.
	waitAll(t, ctx, "supernodes form a ring of two", startupTimeout, supernodes, func(n *node, st api.Status) (bool, string) {
		linked := 0
		for _, m := range st.Ring {
			if m.Linked || m.Self {
				linked++
			}
		}
		return st.Role == "supernode" && linked >= 2, fmt.Sprintf("role %s, ring %+v", st.Role, st.Ring)
	})
	waitAll(t, ctx, "leaves attached to both supernodes with their file indexed", startupTimeout, allLeaves, func(n *node, st api.Status) (bool, string) {
		indexed := 0
		for _, a := range st.Supernodes {
			if a.Files >= 1 {
				indexed++
			}
		}
		return st.SharedFiles == 1 && indexed >= 2, fmt.Sprintf("shares %d files, attachments %+v", st.SharedFiles, st.Supernodes)
	})
	t.Logf("all nodes ready after %v", time.Since(began).Round(time.Millisecond))

	// NAT discovery, run by every leaf against the supernodes' RFC 5780
	// STUN services, must report the behaviour the lab built.
	nats := waitNAT(t, ctx, allLeaves)
	t.Logf("leaves (NAT discovery as reported by canopy status --json):\n%s", leafTable(allLeaves, nats))
	for _, n := range allLeaves {
		if err := discoveredAsBuilt(n.host.Kind, nats[n]); err != nil {
			t.Errorf("%s: NAT discovery does not match the lab: %v", n.name, err)
		}
	}

	// The matrix, one download at a time.
	var results []pairResult
	for i, ka := range kinds {
		for _, kb := range kinds[i:] {
			src, dst := leaves[ka][0], leaves[kb][0]
			if ka == kb {
				src, dst = leaves[ka][1], leaves[ka][0]
			}
			r := runPair(t, ctx, src, dst, "out")
			if r.luckyDirect() {
				// A symmetric NAT draws a random public port for every
				// new flow, and the draw can land on the very port the
				// other side is already sending to (a few chances in
				// 65,000 per flow): then a real NAT lets the pair
				// through as well. A lab that is wrong lets it through
				// again, with fresh sockets and fresh draws.
				t.Logf("%s -> %s went direct against the odds (%s/%s); once more with new flows", src.name, dst.name, r.conn.Local, r.conn.Remote)
				r = runPair(t, ctx, src, dst, "out-again")
			}
			if r.err != nil {
				t.Errorf("%s -> %s: %v\n--- %s log (downloader) ---\n%s\n--- %s log (source) ---\n%s%s%s",
					src.name, dst.name, r.err, dst.name, dst.logTail(40), src.name, src.logTail(40),
					conntrack(ctx, dst.host, src.host), conntrack(ctx, src.host, dst.host))
			}
			results = append(results, r)
		}
	}
	t.Logf("NAT matrix (%d pairs; downloader gets an 8 MiB file from source):\n%s", len(results), matrixTable(results))
	logShares(t, results)
	t.Logf("total %v", time.Since(began).Round(time.Millisecond))
}

// runPair has dst find src's file by its unique word, download it and
// verify it, and checks the path against nat.DirectPossible.
func runPair(t *testing.T, ctx context.Context, src, dst *node, outDir string) pairResult {
	t.Helper()
	r := pairResult{src: src, dst: dst}
	r.expect, r.why = nat.DirectPossible(behaviour(src.host), behaviour(dst.host))
	for _, n := range []*node{src, dst} {
		if err := n.alive(); err != nil {
			r.err = err
			return r
		}
	}

	// Search until the file shows up with src among its sources.
	var hit api.Hit
	var found bool
	var lastErr error
	deadline := time.Now().Add(searchTimeout)
	for !found && time.Now().Before(deadline) && ctx.Err() == nil {
		hits, err := dst.search(ctx, src.file.word)
		lastErr = err
		for _, h := range hits {
			if h.Name == src.file.name && slices.Contains(h.SourceNodes, src.id) {
				hit, found = h, true
			}
		}
		if !found && err == nil {
			lastErr = fmt.Errorf("search %q: %d hits, none is %s from %s: %+v", src.file.word, len(hits), src.file.name, short(src.id), hits)
		}
		if !found && err != nil {
			select { // a failing command returns at once: do not spin
			case <-time.After(pollEvery):
			case <-ctx.Done():
			}
		}
	}
	if !found && lastErr == nil {
		lastErr = fmt.Errorf("out of time: %v", context.Cause(ctx))
	}
	if !found {
		r.err = fmt.Errorf("search did not find the file within %v: %v", searchTimeout, lastErr)
		return r
	}

	out := filepath.Join(dst.dir, outDir, src.name)
	if err := os.MkdirAll(out, 0o755); err != nil {
		r.err = err
		return r
	}
	done, err := dst.get(ctx, getTimeout, hit.ID, out)
	if err != nil {
		r.err = err
		return r
	}
	r.seconds = done.Seconds
	path := done.Path
	if path == "" {
		path = filepath.Join(out, src.file.name)
	}
	if err := src.file.verify(path); err != nil {
		r.err = fmt.Errorf("downloaded file is wrong: %v", err)
		return r
	}
	for _, c := range done.Connections {
		if c.Source == src.id {
			r.conn, r.hasConnRep = c, true
		}
	}
	switch {
	case !r.hasConnRep:
		r.err = fmt.Errorf("the done event reports no connection to the source %s: %+v", short(src.id), done.Connections)
	case r.expect && r.conn.Path != "direct":
		r.err = fmt.Errorf("path %q (%s/%s), but the NATs allow a direct connection: %s", r.conn.Path, r.conn.Local, r.conn.Remote, r.why)
	case !r.expect && r.conn.Path != "relayed":
		r.unexpectedDirect = true
		r.err = fmt.Errorf("path %q (%s/%s), but the NATs should not allow a direct connection: %s", r.conn.Path, r.conn.Local, r.conn.Remote, r.why)
	}
	return r
}

// conntrack returns the UDP conntrack entries of h's NAT routers that
// involve peer's public address: what the NATs made of the hole punching
// (e.g. a mapping whose port changed because an earlier inbound packet took
// the tuple). Empty for a public host.
func conntrack(ctx context.Context, h, peer *natlab.Host) string {
	var b strings.Builder
	for _, r := range []*natlab.Router{h.Router, h.Carrier} {
		if r == nil {
			continue
		}
		out, err := r.Command(ctx, "cat", "/proc/net/nf_conntrack").Output()
		if err != nil {
			fmt.Fprintf(&b, "\n--- conntrack of %s's router %s: %v", h.Name, r.NS, err)
			continue
		}
		fmt.Fprintf(&b, "\n--- UDP conntrack of %s's router (WAN %s) with %s ---", h.Name, r.WAN, peer.Public)
		for line := range strings.Lines(string(out)) {
			if strings.Contains(line, " udp ") && strings.Contains(line, "="+peer.Public.String()+" ") {
				b.WriteString("\n" + strings.TrimSpace(line))
			}
		}
	}
	return b.String()
}

// keepLogs copies every node's log to the directory CANOPY_NATMATRIX_LOGDIR
// names, if set, when the test has failed: the work directory is removed at
// the end of the test.
func keepLogs(t *testing.T, work string) {
	dir := os.Getenv("CANOPY_NATMATRIX_LOGDIR")
	if dir == "" {
		return
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		logs, _ := filepath.Glob(filepath.Join(work, "*", "node.log"))
		for _, l := range logs {
			b, err := os.ReadFile(l)
			if err == nil {
				err = os.MkdirAll(dir, 0o755)
			}
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, filepath.Base(filepath.Dir(l))+".log"), b, 0o644)
			}
			if err != nil {
				t.Logf("CANOPY_NATMATRIX_LOGDIR: %v", err)
			}
		}
		t.Logf("node logs copied to %s", dir)
	})
}

// matrixKinds returns the kinds of the matrix: nat.Kinds(), or those
// CANOPY_NATMATRIX_KINDS names (comma-separated, e.g.
// "port-restricted-cone,cgnat"), to look into a few cells.
func matrixKinds(t *testing.T) []nat.Kind {
	t.Helper()
	env := os.Getenv("CANOPY_NATMATRIX_KINDS")
	if env == "" {
		return nat.Kinds()
	}
	var kinds []nat.Kind
	for _, name := range strings.Split(env, ",") {
		k, err := nat.ParseKind(strings.TrimSpace(name))
		if err != nil {
			t.Fatalf("CANOPY_NATMATRIX_KINDS: %v", err)
		}
		kinds = append(kinds, k)
	}
	t.Logf("CANOPY_NATMATRIX_KINDS: only %v", kinds)
	return kinds
}

// behaviour is the nat.Behaviour the lab built for h: the ground truth of
// nat.Kind.Behaviour, with h's addresses.
func behaviour(h *natlab.Host) nat.Behaviour {
	b := h.Kind.Behaviour()
	b.Public = netip.AddrPortFrom(h.Public, controlPort)
	b.Local = netip.AddrPortFrom(h.Addr, controlPort)
	return b
}

// control is the control address of a public host's node.
func control(h *natlab.Host) string {
	return netip.AddrPortFrom(h.Addr, controlPort).String()
}

// buildCanopy builds cmd/canopy of the module this package belongs to, or
// returns the binary CANOPY_NATMATRIX_BIN names (to test a build of another
// tree, or to skip the build when iterating).
func buildCanopy(t *testing.T, work string) string {
	t.Helper()
	if bin := os.Getenv("CANOPY_NATMATRIX_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("natmatrix: CANOPY_NATMATRIX_BIN: %v", err)
		}
		return bin
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("natmatrix: the go tool is needed to build cmd/canopy: %v", err)
	}
	// The package is internal/natmatrix, two levels below the module root.
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("natmatrix: no module root at %s: %v", root, err)
	}
	bin := filepath.Join(work, "canopy")
	cmd := exec.Command(goTool, "build", "-o", bin, "./cmd/canopy")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("natmatrix: go build ./cmd/canopy: %v\n%s", err, out)
	}
	return bin
}

// waitAll polls `canopy status` of every node until ready holds for each,
// and fails the test, with each unready node's last state and log, when
// timeout passes first. It also records each node's ID.
func waitAll(t *testing.T, ctx context.Context, what string, timeout time.Duration, nodes []*node, ready func(*node, api.Status) (bool, string)) {
	t.Helper()
	pending := slices.Clone(nodes)
	last := map[*node]string{}
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		var still []*node
		for _, n := range pending {
			if err := n.alive(); err != nil {
				t.Fatalf("waiting until %s: %v\n--- %s log ---\n%s", what, err, n.name, n.logTail(40))
			}
			st, err := n.status(ctx)
			if err != nil {
				last[n] = err.Error()
				still = append(still, n)
				continue
			}
			n.id = st.ID
			ok, state := ready(n, st)
			if !ok {
				last[n] = state
				still = append(still, n)
			}
		}
		pending = still
		if len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			var b strings.Builder
			for _, n := range pending {
				fmt.Fprintf(&b, "\n--- %s (%s): %s\n%s", n.name, n.host, last[n], n.logTail(25))
			}
			t.Fatalf("%d of %d nodes not ready after %v (waiting until %s):%s", len(pending), len(nodes), timeout, what, b.String())
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
}

// waitNAT waits, up to discoverTimeout, until every leaf reports a finished
// NAT discovery in its status, and returns what each reported (nil for a
// leaf that reported nothing: an older binary without the field).
func waitNAT(t *testing.T, ctx context.Context, leaves []*node) map[*node]*api.NAT {
	t.Helper()
	got := map[*node]*api.NAT{}
	deadline := time.Now().Add(discoverTimeout)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		pending := 0
		for _, n := range leaves {
			if r := got[n]; r != nil && !r.CheckedAt.IsZero() {
				continue
			}
			st, err := n.status(ctx)
			if err != nil {
				pending++
				continue
			}
			got[n] = st.NAT
			if st.NAT == nil || st.NAT.CheckedAt.IsZero() {
				pending++
			}
		}
		if pending == 0 {
			return got
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Errorf("%d of %d leaves report no finished NAT discovery after %v", pending, len(leaves), discoverTimeout)
			return got
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
}

// discoveredAsBuilt checks a leaf's NAT discovery against the kind of NAT
// the lab built for it. A CGNAT (a port-restricted home NAT behind a
// port-restricted carrier NAT) behaves, seen from outside, as one
// port-restricted cone, which is what discovery must say.
func discoveredAsBuilt(k nat.Kind, got *api.NAT) error {
	if got == nil || got.CheckedAt.IsZero() {
		return fmt.Errorf("no discovery reported")
	}
	switch {
	case k.BlocksUDP():
		if got.Kind != "UDP blocked" {
			return fmt.Errorf("UDP is blocked, discovery says %q", got.Kind)
		}
	case !k.NATed():
		if got.Kind != "public/no NAT" {
			return fmt.Errorf("a public host, discovery says %q", got.Kind)
		}
	default:
		if got.Mapping != k.Mapping().String() || got.Filtering != k.Filtering().String() {
			return fmt.Errorf("built %s / %s, discovered %s / %s (%s)", k.Mapping(), k.Filtering(), got.Mapping, got.Filtering, got.Kind)
		}
	}
	return nil
}

// leafTable shows each leaf's lab kind and what its NAT discovery found.
func leafTable(leaves []*node, nats map[*node]*api.NAT) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "leaf\tnode\tlab address\tlab kind (mapping / filtering)\tdiscovered kind\tmapping / filtering\tpublic\treachability")
	for _, n := range leaves {
		k := n.host.Kind
		labKind := fmt.Sprintf("%s (%s / %s)", k, k.Mapping(), k.Filtering())
		if k.BlocksUDP() {
			labKind = k.String() + " (UDP dropped)"
		}
		addr := n.host.Addr.String()
		if k.NATed() {
			addr += " behind " + n.host.Public.String()
		}
		disc, mf, pub, reach := "-", "-", "-", "-"
		if r := nats[n]; r != nil {
			disc, mf, pub, reach = r.Kind, r.Mapping+" / "+r.Filtering, r.Public, r.Reachability.Verdict
			if r.Error != "" {
				disc += " (error: " + r.Error + ")"
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.name, short(n.id), addr, labKind, disc, mf, pub, reach)
	}
	w.Flush()
	return b.String()
}

// matrixTable renders the matrix results.
func matrixTable(results []pairResult) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	// Times and rates are the downloader's: "time s" is the whole download,
	// connect included; "Mbit/s" is over that time and "after connect" over
	// the time after the data channel opened.
	fmt.Fprintln(w, "source\tdownloader\texpected\tpath\tcandidates (local/remote)\tconnect ms\ttime s\tMbit/s\tafter connect\tresult")
	for _, r := range results {
		expect := "relayed"
		if r.expect {
			expect = "direct"
		}
		path, cands, connect, secs, rate, after := "-", "-", "-", "-", "-", "-"
		if r.hasConnRep {
			path = r.conn.Path
			cands = r.conn.Local + "/" + r.conn.Remote
			connect = fmt.Sprintf("%.0f", r.conn.ConnectMS)
		}
		if r.seconds > 0 {
			secs = fmt.Sprintf("%.2f", r.seconds)
			rate = fmt.Sprintf("%.0f", fileSize*8/r.seconds/1e6)
			if d := r.seconds - r.conn.ConnectMS/1000; r.hasConnRep && d > 0 {
				after = fmt.Sprintf("%.0f", fileSize*8/d/1e6)
			}
		}
		result := "ok"
		if r.err != nil {
			result = "FAIL: " + firstLine(r.err.Error(), 100)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.src.host.Kind, r.dst.host.Kind, expect, path, cands, connect, secs, rate, after, result)
	}
	w.Flush()
	return b.String()
}

// logShares logs the direct share of the matrix itself and the share it
// implies for the population of population_test.go, next to the marks of
// libp2p and Tailscale.
func logShares(t *testing.T, results []pairResult) {
	t.Helper()
	measured := map[pairKey]bool{}
	predicted := map[pairKey]bool{}
	direct, okPairs := 0, 0
	for _, r := range results {
		k := keyOf(r.src.host.Kind, r.dst.host.Kind)
		predicted[k] = r.expect
		if r.hasConnRep {
			measured[k] = r.conn.Path == "direct"
		}
		if r.ok() {
			okPairs++
		}
		if r.hasConnRep && r.conn.Path == "direct" {
			direct++
		}
	}
	lookup := func(m map[pairKey]bool) func(a, b nat.Kind) (bool, bool) {
		return func(a, b nat.Kind) (bool, bool) {
			d, ok := m[keyOf(a, b)]
			return d, ok
		}
	}
	mix := defaultMix()
	share, unknown := populationShare(mix, lookup(measured))
	want, _ := populationShare(mix, lookup(predicted))
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d pairs passed; %d of %d pairs connected directly (%.0f%% of the matrix's cells)\n",
		okPairs, len(results), direct, len(results), 100*float64(direct)/float64(len(results)))
	fmt.Fprintf(&b, "population mix (nat.Population, which gives its sources and assumptions):\n%s", mixTable())
	fmt.Fprintf(&b, "direct-connection share for random pairs of that population: %.1f%% measured", 100*share)
	if unknown > 0 {
		fmt.Fprintf(&b, " (%.1f%% of pairs have no measurement and count as not direct)", 100*unknown)
	}
	fmt.Fprintf(&b, ", %.1f%% predicted by nat.DirectPossible; so %.1f%% of random pairs need the relay (callstats: ~22%% of WebRTC calls needed TURN)\n", 100*want, 100*(1-want))
	fmt.Fprintf(&b, "marks: libp2p hole punching in the wild ~%.0f%% direct, Tailscale ~%.0f%% direct; both relay the rest, as Canopy must (every pair must connect: %s did)",
		100*libp2pDirect, 100*tailscaleDirect, pct(float64(okPairs)/float64(len(results))))
	t.Log(b.String())
}

func pct(f float64) string {
	if math.IsNaN(f) {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*f)
}

func short(id string) string {
	if len(id) > 10 {
		return id[:10]
	}
	if id == "" {
		return "?"
	}
	return id
}

func firstLine(s string, max int) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}
