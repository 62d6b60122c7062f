package node_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/demo"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/nat/relay"
	"github.com/canopy-p2p/canopy/node"
	"github.com/canopy-p2p/canopy/promotion"
)

// get sends GET path to n's API with token ("" for none) and returns the
// status and the body.
func get(t *testing.T, n *node.Node, path, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+n.APIAddr()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, b
}

// scrape reads n's /metrics with token, as Prometheus does, and parses it
// with Prometheus's own text parser.
func scrape(t *testing.T, n *node.Node, token string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, n, node.MetricsPath, token)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %q", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return fams
}

// gather reads n's registry directly, for nodes without an API.
func gather(t *testing.T, n *node.Node) map[string]*dto.MetricFamily {
	t.Helper()
	fs, err := n.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*dto.MetricFamily, len(fs))
	for _, f := range fs {
		out[f.GetName()] = f
	}
	return out
}

// value is the value of the series of family name whose labels include
// labels (name=value pairs); ok is false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
series:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue series
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func mustValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := value(fams, name, labels...)
	if !ok {
		t.Fatalf("no series %s%v", name, labels)
	}
	return v
}

// TestMetricsScrape scrapes a real leaf's /metrics over loopback: with the
// token it is the Prometheus text format with every family an operator
// needs; without it, or with a wrong one, it is refused, and each refusal
// shows in its counter at the next scrape. A stranger failing its TLS
// handshake on the control port shows in the link refusals.
func TestMetricsScrape(t *testing.T) {
	n, tok := startAPINode(t, nil)
	fams := scrape(t, n, tok)
	for _, name := range []string{
		"canopy_role", "canopy_attached_supernodes", "canopy_pending_connections", "canopy_shared_files",
		"canopy_promotions_total", "canopy_demotions_total",
		"canopy_link_refusals_total", "canopy_api_refusals_total", "canopy_gossip_refusals_total",
		"canopy_relay_refusals_total", "canopy_transfer_refusals_total", "canopy_index_refusals_total",
		"canopy_supernode_refusals_total", "canopy_stun_refusals_total", "canopy_people_refusals_total",
		"canopy_role_refusals_total",
		"canopy_supernode_leaves", "canopy_ring_members", "canopy_index_entries", "canopy_index_owners", "canopy_index_bytes",
		"canopy_searches_total", "canopy_search_results_total", "canopy_search_first_hit_seconds",
		"canopy_transfers_active", "canopy_transfer_bytes_total", "canopy_transfer_pieces_total",
		"canopy_download_jobs", "canopy_nat_info", "canopy_reachability", "canopy_relay_allocations",
		"go_goroutines", "process_open_fds",
	} {
		if fams[name] == nil {
			t.Errorf("no family %s", name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"canopy_role", []string{"role", "leaf"}, 1},
		{"canopy_role", []string{"role", "supernode"}, 0},
		{"canopy_reachability", []string{"verdict", "unknown"}, 1},
		{"canopy_nat_info", []string{"kind", "unknown"}, 1},
		{"canopy_transfer_bytes_total", []string{"direction", "down", "path", "relayed"}, 0},
		{"canopy_download_jobs", []string{"state", "queued"}, 0},
		{"canopy_ring_members", nil, 0},
	} {
		if got := mustValue(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if f := fams["canopy_transfer_bytes_total"]; f.GetType() != dto.MetricType_COUNTER {
		t.Errorf("canopy_transfer_bytes_total is a %v", f.GetType())
	}

	// Without the token, and with a wrong one: 401, and counted.
	noToken := mustValue(t, fams, "canopy_api_refusals_total", "reason", "no_token")
	wrong := mustValue(t, fams, "canopy_api_refusals_total", "reason", "wrong_token")
	if code, body := get(t, n, node.MetricsPath, ""); code != http.StatusUnauthorized || bytes.Contains(body, []byte("canopy_")) {
		t.Fatalf("/metrics without the token: %d %q", code, body)
	}
	if code, _ := get(t, n, node.MetricsPath, strings.Repeat("0", len(tok))); code != http.StatusUnauthorized {
		t.Fatalf("/metrics with a wrong token: %d", code)
	}
	fams = scrape(t, n, tok)
	if got := mustValue(t, fams, "canopy_api_refusals_total", "reason", "no_token"); got != noToken+1 {
		t.Errorf("no_token refusals %v, want %v", got, noToken+1)
	}
	if got := mustValue(t, fams, "canopy_api_refusals_total", "reason", "wrong_token"); got != wrong+1 {
		t.Errorf("wrong_token refusals %v, want %v", got, wrong+1)
	}

	// A stranger whose TLS handshake fails (it speaks plain text).
	before := mustValue(t, fams, "canopy_link_refusals_total", "reason", "handshake")
	c, err := net.Dial("tcp", n.Control())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	_, _ = io.Copy(io.Discard, c) // the node closes it
	c.Close()
	testwait.Until(t, 10*time.Second, func() bool {
		v, _ := value(scrape(t, n, tok), "canopy_link_refusals_total", "reason", "handshake")
		return v == before+1
	}, "the failed handshake was not counted")

	// A search with no supernode to send it to.
	if _, err := api.NewClient(n.APIAddr(), tok).Search(context.Background(), api.SearchRequest{Words: "nothing", TimeoutMS: 200}); err == nil {
		t.Fatal("a search without supernodes succeeded")
	}
	fams = scrape(t, n, tok)
	if got := mustValue(t, fams, "canopy_searches_total", "result", "no_supernode"); got != 1 {
		t.Errorf("searches without a supernode: %v, want 1", got)
	}
	if got := mustValue(t, fams, "canopy_search_first_hit_seconds"); got != 0 {
		t.Errorf("first-hit observations %v, want none", got)
	}
}

// TestMetricsPerNode: two nodes in one process have registries of their
// own, so a refusal of one is not counted by the other; one registry
// cannot serve two nodes, and a closed node leaves its registry.
func TestMetricsPerNode(t *testing.T) {
	a, tokA := startAPINode(t, nil)
	b, tokB := startAPINode(t, nil)
	for range 3 {
		get(t, a, node.MetricsPath, "")
	}
	if got := mustValue(t, scrape(t, a, tokA), "canopy_api_refusals_total", "reason", "no_token"); got != 3 {
		t.Errorf("a: %v refusals, want 3", got)
	}
	if got := mustValue(t, scrape(t, b, tokB), "canopy_api_refusals_total", "reason", "no_token"); got != 0 {
		t.Errorf("b: %v refusals, want 0 (a's were counted by b)", got)
	}

	reg := prometheus.NewRegistry()
	c, _ := startAPINode(t, func(cfg *node.Config) { cfg.Metrics = reg })
	if _, ok := value(gather(t, c), "canopy_role", "role", "leaf"); !ok {
		t.Fatal("the injected registry holds no canopy_role")
	}
	cfg := demo.NodeOptions(t.TempDir(), "second", testLog(t))
	cfg.Consent, cfg.RoleInterval, cfg.Metrics = promotion.ConsentNever, node.NoRoleLoop, reg
	if d, err := node.Start(context.Background(), cfg); err == nil {
		d.Close()
		t.Fatal("a second node started on the same registry")
	} else if !strings.Contains(err.Error(), "registry of its own") {
		t.Errorf("second node on one registry: %v", err)
	}
	c.Close()
	fs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if strings.HasPrefix(f.GetName(), "canopy_") {
			t.Fatalf("a closed node left %s in its registry", f.GetName())
		}
	}
}

// TestPProf: the profiles are not served unless asked for; when they are,
// only with the token.
func TestPProf(t *testing.T) {
	off, tokOff := startAPINode(t, nil)
	if code, _ := get(t, off, node.PProfPath, tokOff); code != http.StatusNotFound {
		t.Errorf("pprof off: %d, want 404", code)
	}
	on, tok := startAPINode(t, func(c *node.Config) { c.PProf = true })
	if code, body := get(t, on, node.PProfPath, tok); code != http.StatusOK || !bytes.Contains(body, []byte("goroutine")) {
		t.Errorf("pprof index: %d %q", code, body)
	}
	if code, body := get(t, on, node.PProfPath+"goroutine?debug=1", tok); code != http.StatusOK || !bytes.Contains(body, []byte("goroutine profile")) {
		t.Errorf("goroutine profile: %d %.200q", code, body)
	}
	if code, body := get(t, on, node.PProfPath+"heap", tok); code != http.StatusOK || len(body) == 0 {
		t.Errorf("heap profile: %d, %d bytes", code, len(body))
	}
	for _, p := range []string{"", "heap", "cmdline", "profile?seconds=1"} {
		if code, _ := get(t, on, node.PProfPath+p, ""); code != http.StatusUnauthorized {
			t.Errorf("pprof %q without the token: %d, want 401", p, code)
		}
	}
}

// TestMetricsNetwork: on a loopback network with default timers, a search
// and a download show on each side: the searcher's searches, hits and
// first-hit latency, the downloaded bytes by path and the pieces verified,
// the uploader's uploaded bytes, and the supernode's leaves, ring, index
// and the queries it answered.
func TestMetricsNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	song := bytes.Repeat([]byte("a measured song "), 50_000) // 800,000 bytes: 4 pieces
	files := []map[string][]byte{{}, {"Measured Song.bin": song}}
	net, err := demo.Start(ctx, t.TempDir(), 1, 2, files, "127.0.0.1:0", testLog(t))
	if net != nil {
		defer net.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := net.WaitSettled(ctx); err != nil {
		t.Fatal(err)
	}
	me, sharer, sn := net.Leaves[0], net.Leaves[1], net.Supernodes[0]
	tok, err := api.ReadTokenFile(filepath.Dir(me.APITokenFile()))
	if err != nil {
		t.Fatal(err)
	}
	c := api.NewClient(me.APIAddr(), tok)
	res, err := c.Search(ctx, api.SearchRequest{Words: "measured song", TimeoutMS: 2000, Limit: 1})
	if err != nil || len(res.Hits) != 1 {
		t.Fatalf("search: %v %+v", err, res)
	}
	ev, err := c.Get(ctx, api.GetRequest{ID: res.Hits[0].ID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(ev.Path); err != nil || !bytes.Equal(got, song) {
		t.Fatalf("downloaded file differs (%v)", err)
	}

	size := float64(len(song))
	fams := scrape(t, me, tok)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"canopy_searches_total", []string{"result", "hits"}, 1},
		{"canopy_search_results_total", nil, 1},
		{"canopy_search_first_hit_seconds", nil, 1},
		{"canopy_transfer_bytes_total", []string{"direction", "down", "path", "direct"}, size},
		{"canopy_transfer_bytes_total", []string{"direction", "down", "path", "relayed"}, 0},
		{"canopy_transfer_pieces_total", []string{"result", "verified"}, 4},
		{"canopy_transfer_pieces_total", []string{"result", "failed"}, 0},
		{"canopy_transfer_connections_total", []string{"path", "direct"}, 1},
		{"canopy_transfers_active", []string{"direction", "down"}, 0},
		{"canopy_attached_supernodes", nil, 1},
	} {
		if got := mustValue(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("searcher: %s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	testwait.Until(t, 10*time.Second, func() bool {
		v, _ := value(gather(t, sharer), "canopy_transfer_bytes_total", "direction", "up", "path", "direct")
		return v == size
	}, "the sharer's uploaded bytes were not counted")

	fams = gather(t, sn)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"canopy_role", []string{"role", "supernode"}, 1},
		{"canopy_promotions_total", nil, 1},
		{"canopy_supernode_leaves", nil, 3}, // the two leaves and its own leaf side
		{"canopy_ring_members", nil, 1},
		{"canopy_index_entries", nil, 1},
	} {
		if got := mustValue(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("supernode: %s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if q := mustValue(t, fams, "canopy_supernode_queries_total", "from", "leaf"); q < 1 {
		t.Errorf("supernode: %v queries from leaves, want at least 1", q)
	}
	if b := mustValue(t, fams, "canopy_index_bytes"); b <= 0 {
		t.Errorf("supernode: index bytes %v", b)
	}
}

// TestMetricsAcrossDemotion: a supernode's counters outlive its role. A
// gossip refusal counted while it was a supernode is still counted after
// it demotes (a counter that went down would read as a reset), and the
// demotion and the decision behind it are counted.
func TestMetricsAcrossDemotion(t *testing.T) {
	p := emulationPolicy()
	n, tok := startAPINode(t, func(c *node.Config) {
		c.Consent, c.Policy, c.RoleInterval = promotion.ConsentAlways, &p, 100*time.Millisecond
		// Its own leaf side, attached to it, has nowhere to go: the
		// handover can only time out.
		c.HandoverTimeout = time.Second
	})
	if n.Role() != node.RoleSupernode {
		t.Fatalf("role %s", n.Role())
	}
	var gossip string
	for _, m := range n.Status().Ring {
		if m.Self {
			gossip = m.Gossip
		}
	}
	// A datagram too short to be a gossip packet.
	u, err := net.Dial("udp", gossip)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, err := u.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, func() bool {
		v, _ := value(scrape(t, n, tok), "canopy_gossip_refusals_total", "reason", "packet_malformed")
		return v == 1
	}, "the malformed gossip packet was not counted")

	if err := n.SetConsent(promotion.ConsentNever); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 20*time.Second, func() bool { return n.Role() == node.RoleLeaf }, "no demotion")
	// Right after the role ends and once it is closed, the count stays.
	testwait.Until(t, 10*time.Second, func() bool {
		fams := scrape(t, n, tok)
		if v := mustValue(t, fams, "canopy_gossip_refusals_total", "reason", "packet_malformed"); v != 1 {
			t.Fatalf("after the demotion the gossip refusals read %v, want 1", v)
		}
		return mustValue(t, fams, "canopy_demotions_total") == 1
	}, "the demotion was not counted")
	fams := scrape(t, n, tok)
	if v := mustValue(t, fams, "canopy_role_decisions_total", "action", "demote", "check", "consent"); v != 1 {
		t.Errorf("demote decisions by consent: %v, want 1", v)
	}
	if v := mustValue(t, fams, "canopy_role", "role", "leaf"); v != 1 {
		t.Errorf("role leaf %v", v)
	}
}

// TestPromtoolCheckMetrics lints a real scrape with Prometheus's own
// promtool (Debian package prometheus): names, units, help. It is skipped
// where promtool is missing, except in CI, which installs it.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is missing; CI must install Debian's prometheus package")
		}
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	n, tok := startAPINode(t, func(c *node.Config) { c.Consent = promotion.ConsentAlways })
	code, body := get(t, n, node.MetricsPath, tok)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	if len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics has something to say:\n%s", out)
	}
}

// TestMetricsRelayRefusal: a supernode's TURN relay refusal shows in its
// metrics by reason. One address opening more TURN-over-TCP connections
// than it may hold unauthenticated (relay.DefaultMaxPendingTCPPerAddr) has
// the extra ones refused.
func TestMetricsRelayRefusal(t *testing.T) {
	turnAddr := freeTURNAddr(t)
	n, tok := startAPINode(t, func(c *node.Config) { c.Consent, c.TURN = promotion.ConsentAlways, turnAddr })
	fams := scrape(t, n, tok)
	if v := mustValue(t, fams, "canopy_relay_refusals_total", "reason", "tcp_per_addr"); v != 0 {
		t.Fatalf("tcp_per_addr refusals before: %v", v)
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range relay.DefaultMaxPendingTCPPerAddr + 2 {
		c, err := net.Dial("tcp", turnAddr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	testwait.Until(t, 10*time.Second, func() bool {
		v, _ := value(scrape(t, n, tok), "canopy_relay_refusals_total", "reason", "tcp_per_addr")
		return v == 2
	}, "the relay's refusals were not counted")
	if v := mustValue(t, scrape(t, n, tok), "canopy_relay_pending_tcp_connections"); v != float64(relay.DefaultMaxPendingTCPPerAddr) {
		t.Errorf("pending TURN TCP connections %v, want %d", v, relay.DefaultMaxPendingTCPPerAddr)
	}
}

// freeTURNAddr returns a loopback address whose port is free for TCP and
// UDP both, as a TURN relay listens on both.
func freeTURNAddr(t *testing.T) string {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err == nil {
			pc.Close()
			return addr
		}
	}
	t.Fatal("no port free for TCP and UDP")
	return ""
}
