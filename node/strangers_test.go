package node_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/canopy-p2p/canopy/demo"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/node"
	"github.com/canopy-p2p/canopy/promotion"
	"github.com/canopy-p2p/canopy/wire"
)

// startStrangerNode starts a node on loopback with the given accept limits:
// a leaf, or with always a supernode founding its own ring.
func startStrangerNode(t *testing.T, consent promotion.Consent, limits link.AcceptLimits, log *zap.Logger, share map[string]string) *node.Node {
	t.Helper()
	dir := t.TempDir()
	cfg := demo.NodeOptions(dir, "n", log)
	p := emulationPolicy()
	cfg.Policy, cfg.Consent, cfg.RoleInterval, cfg.Accept = &p, consent, node.NoRoleLoop, limits
	if share != nil {
		d := filepath.Join(dir, "shared")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range share {
			if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cfg.Shares = []string{d}
	}
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// dialRaw opens a TCP connection from the loopback address from (empty: the
// kernel's choice) and says nothing.
func dialRaw(t *testing.T, from, to string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", to)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByPeer reports whether the node closed c: a read ends in EOF or a
// reset rather than waiting.
func closedByPeer(c net.Conn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.Read(make([]byte, 1))
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// TestStrangersCappedInTotal: with MaxPending connections that have not said
// hello, the next one is closed at once; once one of them goes, a node that
// does say hello is served again.
func TestStrangersCappedInTotal(t *testing.T) {
	const max = 8
	n := startStrangerNode(t, promotion.ConsentNever, link.AcceptLimits{MaxPending: max}, testLog(t), nil)
	var held []net.Conn
	for range max {
		held = append(held, dialRaw(t, "", n.Control()))
	}
	testwait.Until(t, 5*time.Second, func() bool { return n.PendingStrangers() == max }, "the node holds %d strangers, want %d", n.PendingStrangers(), max)
	for i := range 20 {
		if c := dialRaw(t, "", n.Control()); !closedByPeer(c, 5*time.Second) {
			t.Fatalf("stranger %d over the cap was not closed", max+i+1)
		}
	}
	if got := n.LinkRefusals().PendingFull; got != 20 {
		t.Fatalf("refusals counted: %d, want 20", got)
	}
	// Loopback is exempt from the per-address cap by default: the 8 came
	// from one address and were all admitted, and are still held.
	if closedByPeer(held[0], 200*time.Millisecond) {
		t.Fatal("an admitted stranger was closed before its deadline")
	}
	held[1].Close()
	testwait.Until(t, 5*time.Second, func() bool { return n.PendingStrangers() == max-1 }, "a stranger that left still holds its slot")
	id, _ := identity.Generate()
	creds, _ := link.NewCredentials(id)
	c, err := link.Dial(context.Background(), n.Control(), creds, n.ID(), nil)
	if err != nil {
		t.Fatalf("a node dialling into the freed slot: %v", err)
	}
	defer c.Close("test over")
	c.SendBody(wire.TypeHello, &wire.Hello{Role: wire.RoleLeaf})
	if e, err := c.Recv(5 * time.Second); err != nil || e.Type != wire.TypeRefuse {
		t.Fatalf("answer to a hello: %v %s, want the leaf's refusal", err, e.Type)
	}
	testwait.Until(t, 5*time.Second, func() bool { return n.PendingStrangers() == max-1 }, "a node that said hello still holds a stranger's slot")
}

// TestStrangersCappedPerAddress: one address may hold MaxPendingPerAddr
// strangers; another address still gets in.
func TestStrangersCappedPerAddress(t *testing.T) {
	n := startStrangerNode(t, promotion.ConsentNever, link.AcceptLimits{MaxPending: 16, MaxPendingPerAddr: 2, LimitLoopback: true}, testLog(t), nil)
	a1, a2 := dialRaw(t, "127.0.0.1", n.Control()), dialRaw(t, "127.0.0.1", n.Control())
	testwait.Until(t, 5*time.Second, func() bool { return n.PendingStrangers() == 2 }, "the node holds %d strangers, want 2", n.PendingStrangers())
	if c := dialRaw(t, "127.0.0.1", n.Control()); !closedByPeer(c, 5*time.Second) {
		t.Fatal("a third stranger from one address was not closed")
	}
	dialRaw(t, "127.0.0.2", n.Control())
	testwait.Until(t, 5*time.Second, func() bool { return n.PendingStrangers() == 3 }, "a stranger from another address was not admitted")
	if closedByPeer(a1, 200*time.Millisecond) || closedByPeer(a2, 10*time.Millisecond) {
		t.Fatal("an admitted stranger was closed")
	}
	if got := n.LinkRefusals(); got.PendingAddr != 1 || got.PendingFull != 0 {
		t.Fatalf("refusals %+v, want one per-address", got)
	}
}

// TestHelloClaimingMegabyteCostsLittle is the attack that took a node's
// heap to 3.1 GB with 3,000 connections: a TLS handshake with a throw-away
// key, then a frame header claiming 1 MiB, and silence. The hello is read
// under wire.MaxHelloEnvelope: the header is refused before anything is
// allocated for it, and the link closed.
func TestHelloClaimingMegabyteCostsLittle(t *testing.T) {
	n := startStrangerNode(t, promotion.ConsentNever, link.AcceptLimits{}, testLog(t), nil)
	const conns = 40
	id, _ := identity.Generate()
	creds, _ := link.NewCredentials(id)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var raws []*tls.Conn
	for range conns {
		d := tls.Dialer{Config: creds.ClientConfig(n.ID())}
		raw, err := d.DialContext(context.Background(), "tcp", n.Control())
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		if _, err := raw.Write(binary.BigEndian.AppendUint32(nil, 1<<20)); err != nil {
			t.Fatal(err)
		}
		raws = append(raws, raw.(*tls.Conn))
	}
	for i, raw := range raws {
		raw.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, raw); err != nil {
			t.Fatalf("connection %d: %v, want the node to close it", i, err)
		}
	}
	runtime.ReadMemStats(&after)
	per := (after.TotalAlloc - before.TotalAlloc) / conns
	t.Logf("%d bytes allocated per connection (both ends of the handshake included)", per)
	// Both ends of a TLS 1.3 handshake are in this process; the claimed
	// megabyte would be 1 MiB on its own.
	if per > 256<<10 {
		t.Fatalf("each connection claiming 1 MiB cost %d bytes", per)
	}
	// Each link closes as its frame is refused; the count follows.
	testwait.Until(t, 5*time.Second, func() bool { return n.LinkRefusals().NoHello == conns },
		"no-hello refusals %d, want %d", n.LinkRefusals().NoHello, conns)
	testwait.Until(t, 5*time.Second, func() bool { return n.PendingStrangers() == 0 }, "refused strangers still hold slots")
}

// TestStrangerSayingSupernodeIsRefused: a key that is not a ring member says
// hello as a supernode and asks for a file the supernode's own leaf shares.
// It is told the gossip address and goodbye; its query is never answered.
func TestStrangerSayingSupernodeIsRefused(t *testing.T) {
	n := startStrangerNode(t, promotion.ConsentAlways, link.AcceptLimits{}, testLog(t), map[string]string{"quiet morning.txt": "a quiet morning"})
	testwait.Until(t, 20*time.Second, func() bool {
		sn := n.Supernode()
		return sn != nil && sn.IndexStats().Files > 0
	}, "the supernode never indexed its own leaf's file")
	id, _ := identity.Generate()
	creds, _ := link.NewCredentials(id)
	c, err := link.Dial(context.Background(), n.Control(), creds, n.ID(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close("test over")
	c.SendBody(wire.TypeHello, &wire.Hello{Role: wire.RoleSupernode, Control: "127.0.0.1:1"})
	c.SendBody(wire.TypeQuery, &wire.Query{Words: "quiet morning"})
	var bye string
	for bye == "" {
		e, err := c.Recv(10 * time.Second)
		if err != nil {
			t.Fatalf("the link ended without a goodbye: %v", err)
		}
		switch e.Type {
		case wire.TypeQueryHit:
			t.Fatal("a stranger's query was answered")
		case wire.TypeBye:
			var b wire.Bye
			e.Decode(&b)
			bye = b.Reason
		}
	}
	if !strings.Contains(bye, "not a ring member") {
		t.Fatalf("goodbye %q, want the reason", bye)
	}
	if got := n.LinkRefusals().Stranger; got != 1 {
		t.Fatalf("strangers refused: %d, want 1", got)
	}
	if st := n.Supernode().Stats(); st.QueriesFromPeers != 0 {
		t.Fatalf("the stranger's query was read: %+v", st)
	}
}

// TestHugeSoftwareStringBoundedInLog: hellos whose software string is 900 KB
// (about 100 bytes on the wire, compressed) were logged verbatim: 200 wrote
// 171 MB. They are now refused before they are decompressed past the hello
// bound, the refusals are logged once per address a minute, and a leaf's
// software string that does fit the bound is logged cut to 64 bytes.
func TestHugeSoftwareStringBoundedInLog(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	n := startStrangerNode(t, promotion.ConsentAlways, link.AcceptLimits{}, zap.New(core), nil)
	hello := func(software string) wire.Envelope {
		e, err := wire.New(wire.TypeHello, &wire.Hello{Role: wire.RoleLeaf, Software: software})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	const hellos = 50
	huge := hello(strings.Repeat("x", 900_000))
	for i := range hellos {
		id, _ := identity.Generate()
		creds, _ := link.NewCredentials(id)
		c, err := link.Dial(context.Background(), n.Control(), creds, n.ID(), nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Send(huge)
		for {
			if _, err := c.Recv(10 * time.Second); err != nil {
				break // the node closed it
			}
		}
		c.Close("test over")
		if i == 0 {
			// The link closes as the frame is refused; the count follows.
			testwait.Until(t, 5*time.Second, func() bool { return n.LinkRefusals().NoHello == 1 },
				"a 900 KB hello was not refused: %+v", n.LinkRefusals())
		}
	}
	// One that fits the hello bound, from a leaf that is then attached.
	id, _ := identity.Generate()
	creds, _ := link.NewCredentials(id)
	c, err := link.Dial(context.Background(), n.Control(), creds, n.ID(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close("test over")
	c.Send(hello(strings.Repeat("y", 60_000)))
	if e, err := c.Recv(5 * time.Second); err != nil || e.Type != wire.TypeWelcome {
		t.Fatalf("a leaf with a 60 KB software string: %v %s", err, e.Type)
	}
	testwait.Until(t, 5*time.Second, func() bool {
		return logs.FilterMessage("leaf attached").FilterField(zap.String("leaf", id.ID.Short())).Len() == 1
	}, "the leaf's attachment was not logged")

	total, refusedLines := 0, 0
	for _, e := range logs.All() {
		total += len(e.Message)
		for k, v := range e.ContextMap() {
			if s, ok := v.(string); ok {
				total += len(k) + len(s)
			}
		}
		if e.Message == "refused" {
			refusedLines++
		}
		if e.Message == "leaf attached" && e.ContextMap()["leaf"] == id.ID.Short() {
			if sw := e.ContextMap()["software"].(string); len(sw) > wire.MaxSoftwareLen {
				t.Errorf("software logged with %d bytes", len(sw))
			}
		}
	}
	t.Logf("%d log lines, %d bytes of text, %d refusal lines for %d refused hellos", logs.Len(), total, refusedLines, hellos)
	if total > 256<<10 {
		t.Fatalf("%d hellos of 900 KB wrote %d bytes of log", hellos, total)
	}
	if refusedLines != 1 {
		t.Fatalf("%d refusal lines for %d refused hellos from one address within a minute, want 1", refusedLines, hellos)
	}
}
