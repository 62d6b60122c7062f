package gossip

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/link"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// testNode is one ring member on loopback with everything a test inspects.
type testNode struct {
	id      identity.NodeID
	ident   *identity.Identity
	creds   *link.Credentials
	control string // its control listener, real TLS on loopback
	ring    *Ring
	meta    atomic.Pointer[Meta] // what Config.Meta returns
	events  eventLog
	logs    *observer.ObservedLogs
}

// eventLog records the events a ring delivers.
type eventLog struct {
	mu  sync.Mutex
	evs []Event
}

func (l *eventLog) add(ev Event) {
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.mu.Unlock()
}

// find returns the last event of kind about member name.
func (l *eventLog) find(kind EventKind, name string) (Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.evs) - 1; i >= 0; i-- {
		if ev := l.evs[i]; ev.Kind == kind && ev.Member.Name == name {
			return ev, true
		}
	}
	return Event{}, false
}

// startControl runs a control listener for creds on loopback until the test
// ends: it completes the TLS handshake as link does and closes, which is all
// a verification needs to see.
func startControl(t testing.TB, creds *link.Credentials) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if c, err := link.Accept(context.Background(), raw, creds, nil); err == nil {
					c.Close("verified")
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// linkVerify is the verification the supernode makes, less its probe hello:
// a TLS dial to the control address that expects the member's node ID.
func linkVerify(creds *link.Credentials) func(context.Context, Meta) error {
	return func(ctx context.Context, m Meta) error {
		c, err := link.Dial(ctx, m.Control, creds, m.NodeID, nil)
		if err != nil {
			return err
		}
		c.Close("verified")
		return nil
	}
}

// newCreds makes a fresh identity and its credentials.
func newCreds(t testing.TB) *link.Credentials {
	t.Helper()
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := link.NewCredentials(id)
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

// testConfig is a loopback ring config for creds.
func testConfig(creds *link.Credentials, control string) Config {
	cfg := DefaultConfig()
	cfg.Creds = creds
	cfg.BindAddr = "127.0.0.1"
	cfg.Profile = ProfileLocal
	cfg.Meta = func() Meta { return Meta{Control: control, Software: "canopy/test", Proto: 1, Slots: 100} }
	cfg.Verify = linkVerify(creds)
	return cfg
}

func newTestNode(t *testing.T) *testNode {
	t.Helper()
	creds := newCreds(t)
	core, logs := observer.New(zapcore.DebugLevel)
	n := &testNode{id: creds.ID().ID, ident: creds.ID(), creds: creds, logs: logs, control: startControl(t, creds)}
	n.meta.Store(&Meta{Control: n.control, Software: "canopy/test", Proto: 1, Slots: 100})
	cfg := testConfig(creds, n.control)
	cfg.Logger = zap.New(core)
	cfg.Meta = func() Meta { return *n.meta.Load() }
	cfg.Events = n.events.add
	r, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.ring = r
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return n
}

// names returns the sorted names of r's members.
func names(r *Ring) []string {
	var out []string
	for _, m := range r.Members() {
		out = append(out, m.Name)
	}
	slices.Sort(out)
	return out
}

func sortedNames(nodes ...*testNode) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.id.String())
	}
	slices.Sort(out)
	return out
}

// waitMembers waits until every node in see lists exactly want.
func waitMembers(t *testing.T, timeout time.Duration, want []*testNode, see ...*testNode) {
	t.Helper()
	wantNames := sortedNames(want...)
	testwait.Until(t, timeout, func() bool {
		for _, n := range see {
			if !slices.Equal(names(n.ring), wantNames) {
				return false
			}
		}
		return true
	}, "waiting for membership to converge")
}

// startThree starts three rings and joins the second and third to the first.
func startThree(t *testing.T) (a, b, c *testNode) {
	t.Helper()
	a = newTestNode(t)
	b = newTestNode(t)
	c = newTestNode(t)
	start := time.Now()
	for _, n := range []*testNode{b, c} {
		if k, err := n.ring.Join([]string{a.ring.LocalAddr()}); err != nil || k != 1 {
			t.Fatalf("join: %d, %v", k, err)
		}
	}
	waitMembers(t, 10*time.Second, []*testNode{a, b, c}, a, b, c)
	t.Logf("3 members converged in %v", time.Since(start).Round(time.Millisecond))
	return a, b, c
}

func TestRingJoinSeesMetadata(t *testing.T) {
	a, b, c := startThree(t)
	nodes := []*testNode{a, b, c}
	for _, n := range nodes {
		self := 0
		for _, m := range n.ring.Members() {
			var owner *testNode
			for _, o := range nodes {
				if o.id.String() == m.Name {
					owner = o
				}
			}
			if m.Meta.NodeID != owner.id || m.Meta.Key != [32]byte(owner.ident.Public) || m.Meta.Version != MetaVersion {
				t.Errorf("%s: bad identity in meta %+v", m.Name, m.Meta)
			}
			if want := owner.meta.Load().Control; m.Meta.Control != want || m.Meta.Software != "canopy/test" || m.Meta.Slots != 100 {
				t.Errorf("%s: meta %+v, want control %s", m.Name, m.Meta, want)
			}
			if m.Addr != owner.ring.LocalAddr() || m.Meta.Gossip.String() != owner.ring.LocalAddr() {
				t.Errorf("%s: addr %s, want %s", m.Name, m.Addr, owner.ring.LocalAddr())
			}
			if m.Self != (owner == n) {
				t.Errorf("%s: Self = %v as seen by %s", m.Name, m.Self, n.id)
			}
			if m.Self {
				self++
			}
		}
		if self != 1 {
			t.Errorf("%d members marked Self, want 1", self)
		}
	}
	// Joins are reported as events, with metadata. Events reach the callback
	// through the ring's queue, a moment after the member table changed.
	for _, n := range nodes {
		for _, o := range nodes {
			var ev Event
			testwait.Until(t, 5*time.Second, func() bool {
				var ok bool
				ev, ok = n.events.find(EventJoin, o.id.String())
				return ok
			}, "waiting for join event")
			if ev.Member.Meta.NodeID != o.id || ev.Member.Self != (n == o) {
				t.Errorf("join event %+v", ev)
			}
		}
	}
	if !strings.HasPrefix(a.ring.LocalAddr(), "127.0.0.1:") || strings.HasSuffix(a.ring.LocalAddr(), ":0") {
		t.Errorf("LocalAddr %q is not the bound loopback port", a.ring.LocalAddr())
	}
}

func TestRingUpdateMetaPropagates(t *testing.T) {
	a, b, c := startThree(t)
	m := *c.meta.Load()
	m.Slots, m.Leaves, m.Load = 3, 97, 88
	c.meta.Store(&m)
	start := time.Now()
	if err := c.ring.UpdateMeta(time.Second); err != nil {
		t.Fatal(err)
	}
	name := c.id.String()
	for _, n := range []*testNode{a, b} {
		testwait.Until(t, 10*time.Second, func() bool {
			ev, ok := n.events.find(EventUpdate, name)
			return ok && ev.Member.Meta.Slots == 3
		}, "waiting for metadata update")
		for _, mem := range n.ring.Members() {
			if mem.Name == name && (mem.Meta.Slots != 3 || mem.Meta.Leaves != 97 || mem.Meta.Load != 88) {
				t.Errorf("members still report %+v", mem.Meta)
			}
		}
	}
	t.Logf("metadata update seen by all in %v", time.Since(start).Round(time.Millisecond))
}

func TestRingUpdateMetaRejectsInvalid(t *testing.T) {
	a := newTestNode(t)
	m := *a.meta.Load()
	m.Load = 200
	a.meta.Store(&m)
	if err := a.ring.UpdateMeta(time.Second); !errors.Is(err, ErrBadMeta) {
		t.Fatalf("UpdateMeta: %v, want ErrBadMeta", err)
	}
	// The last valid metadata is still published.
	if got := a.ring.Members(); len(got) != 1 || got[0].Meta.Load != 0 {
		t.Fatalf("members %+v", got)
	}
}

func TestRingGracefulLeave(t *testing.T) {
	a, b, c := startThree(t)
	start := time.Now()
	if err := c.ring.Close(); err != nil {
		t.Fatal(err)
	}
	name := c.id.String()
	testwait.Until(t, 5*time.Second, func() bool {
		_, okA := a.events.find(EventLeave, name)
		_, okB := b.events.find(EventLeave, name)
		return okA && okB
	}, "waiting for leave events")
	waitMembers(t, 5*time.Second, []*testNode{a, b}, a, b)
	t.Logf("graceful leave seen by all in %v", time.Since(start).Round(time.Millisecond))
	ev, _ := a.events.find(EventLeave, name)
	if ev.Member.Meta.NodeID != c.id {
		t.Errorf("leave event %+v", ev)
	}
}

func TestRingFailureDetected(t *testing.T) {
	a, b, c := startThree(t)
	start := time.Now()
	if err := c.ring.Shutdown(); err != nil {
		t.Fatal(err)
	}
	// With the local profile: 1 s probes, suspicion of 3 probe intervals,
	// longer while unconfirmed. 30 s leaves room for a loaded CI machine.
	waitMembers(t, 30*time.Second, []*testNode{a, b}, a, b)
	t.Logf("dead member removed from all in %v", time.Since(start).Round(time.Millisecond))
	// Events reach the callback through the ring's queue, a moment after
	// the member table changed.
	for _, n := range []*testNode{a, b} {
		testwait.Until(t, 5*time.Second, func() bool {
			_, ok := n.events.find(EventLeave, c.id.String())
			return ok
		}, "waiting for leave event")
	}
}

func TestStartRejectsBadConfig(t *testing.T) {
	creds := newCreds(t)
	good := func() Config { return testConfig(creds, "127.0.0.1:7001") }
	tests := []struct {
		name   string
		mutate func(*Config)
		want   error
	}{
		{"no credentials", func(c *Config) { c.Creds = nil }, ErrConfig},
		{"no meta", func(c *Config) { c.Meta = nil }, ErrConfig},
		{"no verify", func(c *Config) { c.Verify = nil }, ErrConfig},
		{"negative cache", func(c *Config) { c.VerifyCache = -1 }, ErrConfig},
		{"negative skew", func(c *Config) { c.ClockSkew = -time.Second }, ErrConfig},
		{"unknown profile", func(c *Config) { c.Profile = "wan" }, ErrConfig},
		{"bad port", func(c *Config) { c.BindPort = 70000 }, ErrConfig},
		{"negative queue", func(c *Config) { c.EventQueue = -1 }, ErrConfig},
		{"invalid meta", func(c *Config) { c.Meta = func() Meta { return Meta{Control: "nowhere"} } }, ErrBadMeta},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.mutate(&c)
			r, err := Start(c)
			if !errors.Is(err, tt.want) {
				if r != nil {
					r.Shutdown()
				}
				t.Fatalf("Start: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRingLifecycle(t *testing.T) {
	n := newTestNode(t)
	r := n.ring
	if err := r.UpdateMeta(0); err != nil {
		t.Fatalf("UpdateMeta alone: %v", err)
	}
	if err := r.Leave(0); err != nil {
		t.Fatalf("Leave alone: %v", err)
	}
	if err := r.Leave(0); err != nil {
		t.Fatalf("second Leave: %v", err)
	}
	if err := r.UpdateMeta(0); !errors.Is(err, ErrLeft) {
		t.Fatalf("UpdateMeta after Leave: %v", err)
	}
	if _, err := r.Join([]string{"127.0.0.1:1"}); !errors.Is(err, ErrLeft) {
		t.Fatalf("Join after Leave: %v", err)
	}
	if err := r.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := r.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := r.Leave(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Leave after Shutdown: %v", err)
	}
	if err := r.UpdateMeta(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("UpdateMeta after Shutdown: %v", err)
	}
	if m := r.Members(); m != nil {
		t.Fatalf("Members after Shutdown: %v", m)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close after Shutdown: %v", err)
	}
	if _, ok := n.events.find(EventJoin, n.id.String()); !ok {
		t.Error("no join event for self")
	}
}

// TestEventsCallbackMayCallRing checks the promise in Config.Events: the
// callback runs outside memberlist's locks and may query the ring.
func TestEventsCallbackMayCallRing(t *testing.T) {
	a := newTestNode(t)
	var seen atomic.Int32
	creds := newCreds(t)
	cfg := testConfig(creds, startControl(t, creds))
	var ring atomic.Pointer[Ring]
	cfg.Events = func(ev Event) {
		if r := ring.Load(); r != nil {
			seen.Store(int32(len(r.Members())))
		}
	}
	r, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ring.Store(r)
	if _, err := r.Join([]string{a.ring.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, func() bool { return seen.Load() == 2 }, "waiting for callback to see two members")
}
