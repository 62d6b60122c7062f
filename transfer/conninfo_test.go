package transfer

import (
	"context"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/nat/ice"
	"github.com/canopy-p2p/canopy/nat/relay"
	"github.com/canopy-p2p/canopy/wire"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// checkConnInfo fails unless ci reports path with the candidate types
// local and remote, loopback addresses and a connect time within took.
func checkConnInfo(t *testing.T, who string, ci ConnInfo, path, local, remote string, took time.Duration) {
	t.Helper()
	if ci.Path != path || ci.LocalType != local || ci.RemoteType != remote {
		t.Errorf("%s: conn %+v, want %s over %s/%s", who, ci, path, local, remote)
	}
	for _, a := range []string{ci.LocalAddr, ci.RemoteAddr} {
		ap, err := netip.ParseAddrPort(a)
		if err != nil || !ap.Addr().IsLoopback() || ap.Port() == 0 {
			t.Errorf("%s: address %q is not a loopback host:port (%v)", who, a, err)
		}
	}
	if ci.ConnectTime <= 0 || ci.ConnectTime > took {
		t.Errorf("%s: connect time %v, want in (0, %v]", who, ci.ConnectTime, took)
	}
}

// uploadConnLog returns the fields of the uploader's one "upload connected"
// line.
func uploadConnLog(t *testing.T, logs *observer.ObservedLogs) map[string]any {
	t.Helper()
	lines := logs.FilterMessage("upload connected").All()
	if len(lines) != 1 || lines[0].Level != zapcore.InfoLevel {
		t.Fatalf("upload connected logged %d times: %+v", len(lines), lines)
	}
	return lines[0].ContextMap()
}

func TestConnInfoDirect(t *testing.T) {
	n := newTestNet()
	src := newMapSource()
	id := src.share(t, randomFile(t, t.TempDir(), "f.bin", 1<<20))
	core, logs := observer.New(zap.InfoLevel)
	up := newTestEngine(t, n, testEngineOpts{source: src, logger: zap.New(core)})
	down := newTestEngine(t, n, testEngineOpts{})

	res, err := down.Download(context.Background(), Request{
		Content: id, OutDir: t.TempDir(), Sources: []wire.Source{up.asSource()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sources) != 1 {
		t.Fatalf("sources %+v", res.Sources)
	}
	// Loopback-only gathering has nothing but host candidates, and the
	// descriptions carry all of them, so neither side learns a peer-reflexive one.
	checkConnInfo(t, "download", res.Sources[0].Conn, PathDirect, "host", "host", res.Duration)

	f := uploadConnLog(t, logs)
	if f["path"] != PathDirect || f["local_type"] != "host" || f["remote_type"] != "host" ||
		f["local_addr"] != res.Sources[0].Conn.RemoteAddr || f["remote_addr"] != res.Sources[0].Conn.LocalAddr {
		t.Errorf("uploader logged %v, downloader saw %+v", f, res.Sources[0].Conn)
	}
	if d, ok := f["connect_time"].(time.Duration); !ok || d <= 0 {
		t.Errorf("uploader logged connect time %v", f["connect_time"])
	}
	for who, e := range map[string]*Engine{"uploader": up, "downloader": down} {
		if s := e.Stats(); s.DirectConnections != 1 || s.RelayedConnections != 0 {
			t.Errorf("%s stats %+v, want 1 direct connection", who, s)
		}
	}
}

// newTestRelay starts a supernode TURN relay on loopback.
func newTestRelay(t *testing.T) *relay.Relay {
	t.Helper()
	cfg := relay.DefaultConfig()
	cfg.ListenUDP = []string{"127.0.0.1:0"}
	// ICE here gathers over UDP only (ice.NewAPI), so TURN over TCP would
	// only cost a listener.
	cfg.ListenTCP = ""
	cfg.RelayIP = netip.MustParseAddr("127.0.0.1")
	cfg.Creds = relay.NewCreds(relay.CredsConfig{})
	// The default, relay.PublicPeer, refuses loopback peers, and here every
	// peer is on loopback.
	cfg.AllowPeer = func(a netip.Addr) bool { return a.IsLoopback() }
	// The default per-leaf bandwidth would drop most of a loopback burst
	// and leave SCTP retransmitting for seconds; the test is about the path.
	cfg.Quotas.MaxBytesPerSecondPerLeaf = relay.Unlimited
	cfg.Quotas.MaxBytesPerSecond = relay.Unlimited
	cfg.Logger = zap.NewNop()
	r, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("relay close: %v", err)
		}
	})
	return r
}

// turnICEServers converts the relay's offer to a leaf into pion's form, as
// a leaf's ICEServers function does.
func turnICEServers(servers []ice.TURNServer) []webrtc.ICEServer {
	out := make([]webrtc.ICEServer, 0, len(servers))
	for _, s := range servers {
		out = append(out, webrtc.ICEServer{URLs: []string{s.URL}, Username: s.Username, Credential: s.Credential})
	}
	return out
}

// relayOnly makes an engine gather relay candidates only, from r, with a
// fresh credential for each connection.
func relayOnly(r *relay.Relay) func(*Config) {
	return func(c *Config) {
		leaf := c.Identity.ID
		// The relay serves attached leaves only, as a supernode's does.
		r.Attach(leaf)
		c.WebRTC.ICETransportPolicy = webrtc.ICETransportPolicyRelay
		c.ICEServers = func() []webrtc.ICEServer { return turnICEServers(r.TURNServers(leaf, time.Now())) }
	}
}

func TestConnInfoRelayed(t *testing.T) {
	relay := newTestRelay(t)
	n := newTestNet()
	src := newMapSource()
	path := randomFile(t, t.TempDir(), "f.bin", 1<<20)
	id := src.share(t, path)
	core, logs := observer.New(zap.InfoLevel)
	up := newTestEngine(t, n, testEngineOpts{source: src, logger: zap.New(core), config: relayOnly(relay)})
	down := newTestEngine(t, n, testEngineOpts{config: relayOnly(relay)})

	res, err := down.Download(context.Background(), Request{
		Content: id, OutDir: t.TempDir(), Sources: []wire.Source{up.asSource()},
	})
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, path, res.Path)
	if len(res.Sources) != 1 {
		t.Fatalf("sources %+v", res.Sources)
	}
	// Both sides gather relay candidates only, so both ends of the pair
	// are allocations on the relay. (The connect time includes pion's
	// RelayAcceptanceMinWait, 2 s by default, which the controlling agent
	// waits before nominating a relay pair in case a direct one succeeds.)
	checkConnInfo(t, "download", res.Sources[0].Conn, PathRelayed, "relay", "relay", res.Duration)

	f := uploadConnLog(t, logs)
	if f["path"] != PathRelayed || f["local_type"] != "relay" || f["remote_type"] != "relay" {
		t.Errorf("uploader logged %v", f)
	}
	for who, e := range map[string]*Engine{"uploader": up, "downloader": down} {
		if s := e.Stats(); s.RelayedConnections != 1 || s.DirectConnections != 0 {
			t.Errorf("%s stats %+v, want 1 relayed connection", who, s)
		}
	}
	// The file went through the relay twice (into the uploader's
	// allocation, out of the downloader's).
	if s := relay.Stats(); s.BytesRelayed < 2<<20 {
		t.Errorf("relay carried %d bytes, want at least twice the file", s.BytesRelayed)
	}
}

func TestICEServersPerConnection(t *testing.T) {
	static := []webrtc.ICEServer{{URLs: []string{"stun:192.0.2.1:3478"}}}
	var calls atomic.Int64
	fresh := func() []webrtc.ICEServer {
		// A new credential every time, as a supernode's relay issues them.
		n := calls.Add(1)
		return []webrtc.ICEServer{{URLs: []string{"turn:192.0.2.1:3478"},
			Username: strconv.FormatInt(n, 10), Credential: "secret"}}
	}
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	api, _ := ice.NewAPI(ice.Config{LoopbackOnly: true})

	for _, tc := range []struct {
		name string
		hook func() []webrtc.ICEServer
		want []string // usernames of the servers of two connections in turn
	}{
		{name: "unset", want: []string{"", ""}},
		{name: "set", hook: fresh, want: []string{"1", "2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(Config{Identity: id, API: api, Signal: newTestNet().signal, ICEServers: tc.hook,
				WebRTC: webrtc.Configuration{ICEServers: static, ICETransportPolicy: webrtc.ICETransportPolicyRelay}})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			for _, user := range tc.want {
				pc, err := e.newPeerConnection()
				if err != nil {
					t.Fatal(err)
				}
				got := pc.GetConfiguration()
				_ = pc.Close()
				if len(got.ICEServers) != 1 || got.ICEServers[0].Username != user {
					t.Errorf("ICE servers %+v, want one with user %q", got.ICEServers, user)
				}
				// Only the servers are replaced; the rest of Config.WebRTC holds.
				if got.ICETransportPolicy != webrtc.ICETransportPolicyRelay {
					t.Errorf("transport policy %v, want relay", got.ICETransportPolicy)
				}
			}
		})
	}

	// End to end: every download dial and every upload accept asks anew.
	n := newTestNet()
	src := newMapSource()
	fid := src.share(t, randomFile(t, t.TempDir(), "f.bin", 64<<10))
	var upCalls, downCalls atomic.Int64
	counting := func(c *atomic.Int64) func(*Config) {
		return func(cfg *Config) {
			cfg.ICEServers = func() []webrtc.ICEServer { c.Add(1); return nil }
		}
	}
	up := newTestEngine(t, n, testEngineOpts{source: src, config: counting(&upCalls)})
	down := newTestEngine(t, n, testEngineOpts{config: counting(&downCalls)})
	out := t.TempDir()
	for range 2 {
		if _, err := down.Download(context.Background(), Request{
			Content: fid, OutDir: out, Sources: []wire.Source{up.asSource()},
		}); err != nil {
			t.Fatal(err)
		}
	}
	if u, d := upCalls.Load(), downCalls.Load(); u != 2 || d != 2 {
		t.Fatalf("ICEServers called %d times by the uploader and %d by the downloader, want 2 each", u, d)
	}
}
