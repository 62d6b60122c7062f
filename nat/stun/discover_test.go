package stun

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/logbridge"
	"github.com/canopy-p2p/canopy/nat"
	"github.com/pion/transport/v5/vnet"
)

// The vnet topology of these tests: a WAN 198.51.100.0/24 holding an RFC
// 5780 STUN server (198.51.100.10 and .11, ports 3478 and 3479) and
// single-address servers (.20:3478, .20:3479 and .21:3478), and one home
// LAN 10.1.0.0/24 behind a NAT router of the type under test, or a host
// directly on the WAN when the type is nil.
var (
	vnetRFC5780   = netip.MustParseAddrPort("198.51.100.10:3478")
	vnetAlternate = netip.MustParseAddrPort("198.51.100.11:3479")
	vnetSingleA   = netip.MustParseAddrPort("198.51.100.20:3478")
	vnetSingleA2  = netip.MustParseAddrPort("198.51.100.20:3479")
	vnetSingleB   = netip.MustParseAddrPort("198.51.100.21:3478")
	vnetDead      = netip.MustParseAddrPort("198.51.100.99:3478")
)

// testRTO keeps silent transactions short (7 × RTO with 3 tries) while
// leaving vnet, which delivers in microseconds, plenty of margin on a
// loaded machine.
const testRTO = 150 * time.Millisecond

type vnetWorld struct {
	wan     *vnet.Router
	lan     *vnet.Router // nil when the host is on the WAN
	host    *vnet.Net
	servers []*Server
}

// vnetBuild serialises building vnet topologies: vnet numbers the MAC
// addresses of new routers and nets from an unguarded package counter, a
// data race when parallel tests build networks at once. Running them
// concurrently is fine.
var vnetBuild sync.Mutex

// newVNetWorld builds the topology with the host behind nt (nil: no NAT).
// The caller must Close it.
func newVNetWorld(nt *vnet.NATType) (w *vnetWorld, err error) {
	vnetBuild.Lock()
	defer vnetBuild.Unlock()
	lf := logbridge.Pion(nil)
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "198.51.100.0/24", LoggerFactory: lf})
	if err != nil {
		return nil, err
	}
	w = &vnetWorld{wan: wan}
	serverNet, _ := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"198.51.100.10", "198.51.100.11"}})
	singleA, _ := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"198.51.100.20"}})
	singleB, _ := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"198.51.100.21"}})
	for _, n := range []*vnet.Net{serverNet, singleA, singleB} {
		if err := wan.AddNet(n); err != nil {
			return nil, err
		}
	}
	if nt == nil {
		w.host, _ = vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"198.51.100.50"}})
		if err := wan.AddNet(w.host); err != nil {
			return nil, err
		}
	} else {
		cfg := &vnet.RouterConfig{CIDR: "10.1.0.0/24", NATType: nt, LoggerFactory: lf, StaticIPs: []string{"198.51.100.60"}}
		if nt.Mode == vnet.NATModeNAT1To1 {
			cfg.StaticIPs = []string{"198.51.100.60/10.1.0.2"}
		}
		if w.lan, err = vnet.NewRouter(cfg); err != nil {
			return nil, err
		}
		if err := wan.AddRouter(w.lan); err != nil {
			return nil, err
		}
		w.host, _ = vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"10.1.0.2"}})
		if err := w.lan.AddNet(w.host); err != nil {
			return nil, err
		}
	}
	if err := wan.Start(); err != nil {
		return nil, err
	}
	for _, c := range []struct {
		n    *vnet.Net
		p, a netip.AddrPort
	}{
		{serverNet, vnetRFC5780, vnetAlternate},
		{singleA, vnetSingleA, netip.AddrPort{}},
		{singleA, vnetSingleA2, netip.AddrPort{}},
		{singleB, vnetSingleB, netip.AddrPort{}},
	} {
		s, err := NewServer(ServerConfig{Primary: c.p, Alternate: c.a, ListenPacket: c.n.ListenPacket})
		if err != nil {
			w.Close()
			return nil, err
		}
		w.servers = append(w.servers, s)
	}
	return w, nil
}

// Close stops the servers and the virtual network.
func (w *vnetWorld) Close() {
	for _, s := range w.servers {
		_ = s.Close()
	}
	_ = w.wan.Stop()
}

// discover runs Discover from the host, with the evidence in the error.
func (w *vnetWorld) discover(servers ...netip.AddrPort) (nat.Behaviour, error) {
	b, err := Discover(context.Background(), DiscoverConfig{Servers: servers, Net: w.host, RTO: testRTO, Tries: 3})
	if err != nil {
		return b, fmt.Errorf("Discover: %w\nevidence:\n%s", err, strings.Join(b.Evidence, "\n"))
	}
	return b, nil
}

// concurrently runs n cases at once, each in its own goroutine, and reports
// their errors. The cases mostly wait on vnet timers, so running them all at
// once (rather than t.Parallel's GOMAXPROCS at a time) keeps the package's
// tests fast on a two-core machine.
func concurrently(t *testing.T, names []string, run func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	slots := make(chan struct{}, 16) // bounds the load on a small machine
	for i := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			if err := run(i); err != nil {
				t.Errorf("%s: %v", names[i], err)
			}
		}()
	}
	wg.Wait()
}

// vnetDependence translates vnet's behaviour names into ours.
func vnetDependence(d vnet.EndpointDependencyType) nat.Dependence {
	switch d {
	case vnet.EndpointIndependent:
		return nat.EndpointIndependent
	case vnet.EndpointAddrDependent:
		return nat.AddressDependent
	default:
		return nat.AddressAndPortDependent
	}
}

var vnetDeps = []vnet.EndpointDependencyType{vnet.EndpointIndependent, vnet.EndpointAddrDependent, vnet.EndpointAddrPortDependent}

var vnetShort = map[vnet.EndpointDependencyType]string{vnet.EndpointIndependent: "EI", vnet.EndpointAddrDependent: "AD", vnet.EndpointAddrPortDependent: "APD"}

// TestDiscoverVNet runs RFC 5780 discovery behind every NAT type vnet
// emulates (3 mappings × 3 filterings, 1:1 NAT, no NAT) and checks that it
// finds what was configured.
func TestDiscoverVNet(t *testing.T) {
	t.Parallel()
	type want struct {
		mapping, filtering nat.Dependence
		nated              bool
		class              string
	}
	type tc struct {
		name string
		nat  *vnet.NATType
		want want
	}
	cases := []tc{
		{"no NAT", nil, want{nat.EndpointIndependent, nat.EndpointIndependent, false, "public/no NAT"}},
		{"1:1 NAT", &vnet.NATType{Mode: vnet.NATModeNAT1To1}, want{nat.EndpointIndependent, nat.EndpointIndependent, true, "full cone"}},
	}
	cone := map[vnet.EndpointDependencyType]string{vnet.EndpointIndependent: "full cone", vnet.EndpointAddrDependent: "restricted cone", vnet.EndpointAddrPortDependent: "port-restricted cone"}
	for _, m := range vnetDeps {
		for _, f := range vnetDeps {
			class := "symmetric"
			if m == vnet.EndpointIndependent {
				class = cone[f]
			}
			cases = append(cases, tc{
				fmt.Sprintf("mapping %s filtering %s", vnetShort[m], vnetShort[f]),
				&vnet.NATType{MappingBehavior: m, FilteringBehavior: f},
				want{vnetDependence(m), vnetDependence(f), true, class},
			})
		}
	}
	names := make([]string, len(cases))
	for i, c := range cases {
		names[i] = c.name
	}
	concurrently(t, names, func(i int) error {
		c := cases[i]
		w, err := newVNetWorld(c.nat)
		if err != nil {
			return err
		}
		defer w.Close()
		b, err := w.discover(vnetRFC5780)
		if err != nil {
			return err
		}
		ev := strings.Join(b.Evidence, "\n")
		if got := (want{b.Mapping, b.Filtering, b.NATed, b.Classify()}); got != c.want || !b.RFC5780 || b.UDPBlocked {
			return fmt.Errorf("got %+v (RFC5780 %v), want %+v\nevidence:\n%s", got, b.RFC5780, c.want, ev)
		}
		if c.nat != nil && (b.Public.Addr() != netip.MustParseAddr("198.51.100.60") || b.Local.Addr() != netip.MustParseAddr("10.1.0.2")) {
			return fmt.Errorf("public %s local %s", b.Public, b.Local)
		}
		if c.nat == nil && b.Public != b.Local {
			return fmt.Errorf("public %s local %s", b.Public, b.Local)
		}
		return nil
	})
}

// TestDiscoverTwoServers uses single-address servers only: the mapping is
// still found (exactly when one server has two ports), the filtering is
// unknown and says so.
func TestDiscoverTwoServers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		mapping vnet.EndpointDependencyType
		servers []netip.AddrPort
		want    nat.Dependence
	}{
		{"EI", vnet.EndpointIndependent, []netip.AddrPort{vnetSingleA, vnetSingleB}, nat.EndpointIndependent},
		{"APD, two addresses", vnet.EndpointAddrPortDependent, []netip.AddrPort{vnetSingleA, vnetSingleB}, nat.EndpointDependent},
		{"AD, two addresses", vnet.EndpointAddrDependent, []netip.AddrPort{vnetSingleA, vnetSingleB}, nat.EndpointDependent},
		{"APD, with a second port", vnet.EndpointAddrPortDependent, []netip.AddrPort{vnetSingleA, vnetSingleB, vnetSingleA2}, nat.AddressAndPortDependent},
		{"AD, with a second port", vnet.EndpointAddrDependent, []netip.AddrPort{vnetSingleA, vnetSingleA2, vnetSingleB}, nat.AddressDependent},
		{"one server only", vnet.EndpointIndependent, []netip.AddrPort{vnetSingleA}, nat.DependenceUnknown},
		{"second server dead", vnet.EndpointIndependent, []netip.AddrPort{vnetSingleA, vnetDead}, nat.DependenceUnknown},
	}
	names := make([]string, len(cases))
	for i, c := range cases {
		names[i] = c.name
	}
	concurrently(t, names, func(i int) error {
		c := cases[i]
		w, err := newVNetWorld(&vnet.NATType{MappingBehavior: c.mapping, FilteringBehavior: vnet.EndpointAddrPortDependent})
		if err != nil {
			return err
		}
		defer w.Close()
		b, err := w.discover(c.servers...)
		if err != nil {
			return err
		}
		ev := strings.Join(b.Evidence, "\n")
		if b.Mapping != c.want || b.Filtering != nat.DependenceUnknown || b.RFC5780 || !b.NATed {
			return fmt.Errorf("mapping %v filtering %v RFC5780 %v NATed %v, want mapping %v\nevidence:\n%s", b.Mapping, b.Filtering, b.RFC5780, b.NATed, c.want, ev)
		}
		if !strings.Contains(ev, "filtering: unknown") {
			return fmt.Errorf("evidence does not explain the unknown filtering:\n%s", ev)
		}
		return nil
	})
}

// TestDiscoverFallbacks covers a dead first server (the next one becomes
// primary), a network that drops all UDP, cancellation and bad
// configurations.
func TestDiscoverFallbacks(t *testing.T) {
	t.Parallel()
	names := []string{"first server dead", "UDP blocked", "context cancelled", "bad configuration"}
	concurrently(t, names, func(i int) error {
		switch names[i] {
		case "first server dead":
			w, err := newVNetWorld(&vnet.NATType{MappingBehavior: vnet.EndpointIndependent, FilteringBehavior: vnet.EndpointAddrDependent})
			if err != nil {
				return err
			}
			defer w.Close()
			b, err := w.discover(vnetDead, vnetRFC5780)
			if err != nil {
				return err
			}
			if b.UDPBlocked || !b.RFC5780 || b.Mapping != nat.EndpointIndependent || b.Filtering != nat.AddressDependent {
				return fmt.Errorf("behaviour %+v", b)
			}
			if !strings.Contains(b.Evidence[0], vnetDead.String()) || !strings.Contains(b.Evidence[0], "no answer") {
				return fmt.Errorf("evidence %q", b.Evidence[0])
			}
		case "UDP blocked":
			w, err := newVNetWorld(&vnet.NATType{MappingBehavior: vnet.EndpointIndependent, FilteringBehavior: vnet.EndpointIndependent})
			if err != nil {
				return err
			}
			defer w.Close()
			w.lan.AddChunkFilter(func(c vnet.Chunk) bool { return c.Network() != "udp" })
			b, err := w.discover(vnetRFC5780, vnetSingleA)
			if err != nil {
				return err
			}
			if !b.UDPBlocked || b.Mapping != nat.DependenceUnknown || b.Filtering != nat.DependenceUnknown || b.Classify() != "UDP blocked" {
				return fmt.Errorf("behaviour %+v", b)
			}
			if len(b.Evidence) != 3 {
				return fmt.Errorf("evidence %q", b.Evidence)
			}
		case "context cancelled":
			w, err := newVNetWorld(nil)
			if err != nil {
				return err
			}
			defer w.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err = Discover(ctx, DiscoverConfig{Servers: []netip.AddrPort{vnetDead}, Net: w.host, RTO: time.Second, Tries: 5})
			if !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("err = %v", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				return fmt.Errorf("cancellation took %s", d)
			}
		case "bad configuration":
			if _, err := Discover(context.Background(), DiscoverConfig{}); !errors.Is(err, ErrConfig) {
				return fmt.Errorf("no servers: err = %v", err)
			}
			if _, err := Discover(context.Background(), DiscoverConfig{Servers: []netip.AddrPort{netip.MustParseAddrPort("198.51.100.1:0")}}); !errors.Is(err, ErrConfig) {
				return fmt.Errorf("port 0: err = %v", err)
			}
		}
		return nil
	})
}

// nated returns the behaviour of a NAT with mapping m and filtering f.
func nated(m, f nat.Dependence) nat.Behaviour {
	return nat.Behaviour{Mapping: m, Filtering: f, NATed: true, Public: netip.MustParseAddrPort("198.51.100.60:49152")}
}

// TestDirectPossibleMatchesVNet checks DirectPossible's table against
// pion's vnet NAT emulation: for every pair of vnet behaviours (and a host
// without NAT), two hosts learn their server-reflexive addresses from a STUN
// server and run an ICE-like exchange (checks to the other's
// server-reflexive address, triggered checks to every source a check came
// from, and success only for a response from the address the check went
// to). A pair connects exactly when DirectPossible says it should.
func TestDirectPossibleMatchesVNet(t *testing.T) {
	type kind struct {
		name string
		nat  *vnet.NATType
	}
	kinds := []kind{{"public", nil}}
	for _, m := range vnetDeps {
		for _, f := range vnetDeps {
			kinds = append(kinds, kind{vnetShort[m] + "/" + vnetShort[f], &vnet.NATType{MappingBehavior: m, FilteringBehavior: f}})
		}
	}
	behaviour := func(k kind) nat.Behaviour {
		if k.nat == nil {
			return nat.Behaviour{Mapping: nat.EndpointIndependent, Filtering: nat.EndpointIndependent, Public: netip.MustParseAddrPort("198.51.100.50:5000")}
		}
		return nated(vnetDependence(k.nat.MappingBehavior), vnetDependence(k.nat.FilteringBehavior))
	}
	type pair struct{ a, b kind }
	var pairs []pair
	var names []string
	for i, ka := range kinds {
		for _, kb := range kinds[i:] {
			pairs = append(pairs, pair{ka, kb})
			names = append(names, ka.name+" vs "+kb.name)
		}
	}
	concurrently(t, names, func(i int) error {
		p := pairs[i]
		want, why := nat.DirectPossible(behaviour(p.a), behaviour(p.b))
		// A pair expected to connect gets a generous deadline, so that a
		// loaded machine cannot fail it; one expected not to gets a short
		// one: where it does connect, it connects within a few rounds.
		limit := time.Second
		if want {
			limit = 10 * time.Second
		}
		got, err := punchVNet(p.a.nat, p.b.nat, limit)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("vnet connected = %v, DirectPossible = %v (%s)", got, want, why)
		}
		return nil
	})
}

// punchVNet builds two hosts behind NATs a and b (nil: no NAT) and reports
// whether the ICE-like exchange connects them both ways within limit.
func punchVNet(a, b *vnet.NATType, limit time.Duration) (bool, error) {
	wan, na, nb, stunNet, err := buildPunchNet(a, b)
	if err != nil {
		return false, err
	}
	if err := wan.Start(); err != nil {
		return false, err
	}
	defer wan.Stop()
	srv, err := NewServer(ServerConfig{Primary: netip.MustParseAddrPort("198.51.100.10:3478"), ListenPacket: stunNet.ListenPacket})
	if err != nil {
		return false, err
	}
	defer srv.Close()

	pa, srflxA, err := punchPeer(na, srv.Addrs()[0])
	if err != nil {
		return false, err
	}
	defer pa.conn.Close()
	pb, srflxB, err := punchPeer(nb, srv.Addrs()[0])
	if err != nil {
		return false, err
	}
	defer pb.conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var both punchProgress
	both.cancel = cancel
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); pa.run(ctx, srflxB, &both) }()
	go func() { defer wg.Done(); pb.run(ctx, srflxA, &both) }()
	wg.Wait()
	return both.count() == 2, nil
}

// punchProgress counts the sides that succeeded and ends the exchange
// (cancel) when both have: until then each keeps answering the other.
type punchProgress struct {
	mu     sync.Mutex
	done   int
	cancel context.CancelFunc
}

func (p *punchProgress) succeeded() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done++; p.done == 2 {
		p.cancel()
	}
}

func (p *punchProgress) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// buildPunchNet builds the network of punchVNet: a WAN with a STUN server's
// host and two hosts, each behind its NAT or on the WAN when it is nil.
func buildPunchNet(a, b *vnet.NATType) (wan *vnet.Router, na, nb, stunNet *vnet.Net, err error) {
	vnetBuild.Lock()
	defer vnetBuild.Unlock()
	lf := logbridge.Pion(nil)
	if wan, err = vnet.NewRouter(&vnet.RouterConfig{CIDR: "198.51.100.0/24", LoggerFactory: lf}); err != nil {
		return
	}
	stunNet, _ = vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"198.51.100.10"}})
	if err = wan.AddNet(stunNet); err != nil {
		return
	}
	host := func(nt *vnet.NATType, public, lan string) (*vnet.Net, error) {
		if nt == nil {
			n, _ := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{public}})
			return n, wan.AddNet(n)
		}
		r, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: lan + ".0/24", NATType: nt, LoggerFactory: lf, StaticIPs: []string{public}})
		if err != nil {
			return nil, err
		}
		if err := wan.AddRouter(r); err != nil {
			return nil, err
		}
		n, _ := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{lan + ".2"}})
		return n, r.AddNet(n)
	}
	if na, err = host(a, "198.51.100.61", "10.1.0"); err != nil {
		return
	}
	nb, err = host(b, "198.51.100.62", "10.2.0")
	return
}

// icePeer is one side of the ICE-like exchange of punchVNet.
type icePeer struct {
	conn net.PacketConn
}

// punchPeer opens the peer's socket and learns its server-reflexive address.
func punchPeer(n *vnet.Net, server netip.AddrPort) (*icePeer, netip.AddrPort, error) {
	conn, err := n.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	c := &stunClient{conn: conn, rto: testRTO, tries: 5, buf: make([]byte, 1500)}
	a, err := c.roundTrip(context.Background(), server, 0)
	if err != nil {
		_ = conn.Close()
		return nil, netip.AddrPort{}, fmt.Errorf("server-reflexive address: %w", err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return &icePeer{conn: conn}, a.mapped, nil
}

// run sends checks ('Q' + 8-byte id) every 10 ms to the peer's
// server-reflexive address and to every address a check came from, answers
// each check ('R' + id) to its source, and succeeds on a response from the
// address its check was sent to, which it reports to progress once. It
// returns when ctx ends: at the deadline, or when both sides succeeded.
func (p *icePeer) run(ctx context.Context, remote netip.AddrPort, progress *punchProgress) {
	targets := []netip.AddrPort{remote}
	sent := map[uint64]netip.AddrPort{}
	var mu sync.Mutex
	var id uint64
	success := false
	stopRead := context.AfterFunc(ctx, func() { _ = p.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stopRead()

	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 64)
		for {
			n, from, err := p.conn.ReadFrom(buf)
			if err != nil {
				return
			}
			src, _ := addrPortOf(from)
			if n != 9 {
				continue
			}
			switch buf[0] {
			case 'Q':
				resp := append([]byte{'R'}, buf[1:9]...)
				_, _ = p.conn.WriteTo(resp, from)
				mu.Lock()
				if !slices.Contains(targets, src) && len(targets) < 16 {
					targets = append(targets, src)
				}
				mu.Unlock()
			case 'R':
				got := binary.BigEndian.Uint64(buf[1:9])
				mu.Lock()
				if to, ok := sent[got]; ok && to == src && !success {
					success = true
					progress.succeeded()
				}
				mu.Unlock()
			}
		}
	}()

	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			mu.Lock()
			for _, to := range targets {
				id++
				sent[id] = to
				msg := binary.BigEndian.AppendUint64([]byte{'Q'}, id)
				_, _ = p.conn.WriteTo(msg, net.UDPAddrFromAddrPort(to))
			}
			mu.Unlock()
		}
	}
	<-readDone
}
