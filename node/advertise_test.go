package node

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/nat/reach"
	"github.com/canopy-p2p/canopy/wire"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestChooseAdvertise(t *testing.T) {
	lan := []netip.Prefix{netip.MustParsePrefix("192.168.1.2/24"), netip.MustParsePrefix("127.0.0.1/8")}
	now := time.Unix(1_700_000_000, 0)
	home := ap("192.168.1.2:7373")
	ring := []string{"203.0.113.10:7373", "203.0.113.11:7373"}
	for _, tc := range []struct {
		name       string
		in         advertInput
		addr, from string
	}{
		{"explicit wins over everything", advertInput{Explicit: "canopy.example.org:7373", Local: home, LocalNets: lan, Mapped: ap("192.0.2.1:7373"), Ring: ring},
			"canopy.example.org:7373", AdvertExplicit},
		{"loopback: tests and the demo", advertInput{Local: ap("127.0.0.1:40000"), LocalNets: lan, Ring: []string{"127.0.0.1:40001"}},
			"127.0.0.1:40000", AdvertLoopback},
		{"a public host advertises itself", advertInput{Local: ap("203.0.113.5:7373"), Mapped: ap("192.0.2.1:9999"), Ring: ring},
			"203.0.113.5:7373", AdvertPublic},
		{"behind a router: its mapping", advertInput{Local: home, LocalNets: lan, Mapped: ap("192.0.2.1:7373"), Ring: ring},
			"192.0.2.1:7373", AdvertMapped},
		{"mapping renewed on another port", advertInput{Local: home, LocalNets: lan, Mapped: ap("192.0.2.1:40123"), Ring: ring},
			"192.0.2.1:40123", AdvertMapped},
		{"mapping confirmed by a dial-back", advertInput{Local: home, LocalNets: lan, Mapped: ap("192.0.2.1:7373"), Ring: ring,
			Observed: []observedAddr{{ap("192.0.2.1:7373"), 2, now}}},
			"192.0.2.1:7373", AdvertMapped},
		{"mapping behind a second NAT: where dial-backs came in", advertInput{Local: home, LocalNets: lan, Mapped: ap("192.0.2.1:7373"), Ring: ring,
			Observed: []observedAddr{{ap("198.51.100.200:7373"), 1, now}}},
			"198.51.100.200:7373", AdvertObserved},
		{"a carrier-grade mapping is no mapping", advertInput{Local: home, LocalNets: lan, Mapped: ap("100.64.3.1:7373"), Ring: ring,
			Observed: []observedAddr{{ap("192.0.2.7:7373"), 1, now}}},
			"192.0.2.7:7373", AdvertObserved},
		{"no mapping: the address dial-backs confirmed", advertInput{Local: home, LocalNets: lan, Ring: ring,
			Observed: []observedAddr{{ap("192.0.2.1:7373"), 2, now}}},
			"192.0.2.1:7373", AdvertObserved},
		{"most observers win over the latest", advertInput{Local: home, LocalNets: lan, Ring: ring,
			Observed: []observedAddr{{ap("198.51.100.9:7373"), 1, now.Add(time.Minute)}, {ap("192.0.2.1:7373"), 2, now}}},
			"192.0.2.1:7373", AdvertObserved},
		{"equal observers: the latest", advertInput{Local: home, LocalNets: lan, Ring: ring,
			Observed: []observedAddr{{ap("198.51.100.9:7373"), 1, now}, {ap("192.0.2.1:7373"), 1, now.Add(time.Minute)}}},
			"192.0.2.1:7373", AdvertObserved},
		{"a private observation is not a public address", advertInput{Local: home, LocalNets: lan, Ring: ring,
			Observed: []observedAddr{{ap("10.0.0.9:7373"), 3, now}}},
			"", ""},
		{"whole ring on this private network", advertInput{Local: home, LocalNets: lan, Ring: []string{"192.168.1.3:7373", "192.168.1.40:7373"}},
			"192.168.1.2:7373", AdvertLAN},
		{"one member elsewhere: never the private address", advertInput{Local: home, LocalNets: lan, Ring: []string{"192.168.1.3:7373", "203.0.113.10:7373"}},
			"", ""},
		{"same private range but another network", advertInput{Local: home, LocalNets: lan, Ring: []string{"192.168.7.3:7373"}},
			"", ""},
		{"a member known by name is not provably on the network", advertInput{Local: home, LocalNets: lan, Ring: []string{"sn.example.org:7373"}},
			"", ""},
		{"first supernode of a new network", advertInput{Local: home, LocalNets: lan},
			"192.168.1.2:7373", AdvertLAN},
		{"behind a router, ring elsewhere, nothing confirmed", advertInput{Local: home, LocalNets: lan, Ring: ring},
			"", ""},
		{"no address at all", advertInput{Ring: ring}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := chooseAdvertise(tc.in)
			if got.Addr != tc.addr || got.Source != tc.from {
				t.Errorf("chooseAdvertise = %q from %q (%s), want %q from %q", got.Addr, got.Source, got.Reason, tc.addr, tc.from)
			}
			if got.Reason == "" {
				t.Errorf("no reason given for %q", got.Addr)
			}
		})
	}
}

func TestPublicIP(t *testing.T) {
	for s, want := range map[string]bool{
		"203.0.113.5": true, "192.0.2.1": true, "8.8.8.8": true, "2001:db8::1": true,
		"192.168.1.2": false, "10.1.2.3": false, "172.16.0.1": false, "100.64.0.1": false, "100.127.255.1": false,
		"127.0.0.1": false, "169.254.1.1": false, "0.0.0.0": false, "fd00::1": false, "fe80::1": false, "::ffff:192.168.1.1": false,
	} {
		if got := publicIP(netip.MustParseAddr(s)); got != want {
			t.Errorf("publicIP(%s) = %v, want %v", s, got, want)
		}
	}
}

func TestObservations(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	o := newObservations(3, time.Hour)
	o.record(now, "a", "192.0.2.1:7373", true)
	o.record(now.Add(time.Second), "b", "192.0.2.1:7373", true)
	o.record(now.Add(2*time.Second), "c", "198.51.100.9:7373", true)
	o.record(now, "d", "not an address", true) // ignored (and nothing of d known)
	got := o.list(now.Add(3 * time.Second))
	if len(got) != 2 || got[0].Addr != ap("192.0.2.1:7373") || got[0].Observers != 2 || got[1].Observers != 1 {
		t.Fatalf("list = %+v, want 192.0.2.1:7373 by 2 and 198.51.100.9:7373 by 1", got)
	}
	// A failed dial-back withdraws that supernode's confirmation.
	o.record(now.Add(4*time.Second), "b", "192.0.2.1:7373", false)
	if got := o.list(now.Add(5 * time.Second)); got[0].Observers != 1 {
		t.Errorf("after b's failure: %+v, want one observer each", got)
	}
	// The table is bounded: a fourth observer pushes out the oldest (a).
	o.record(now.Add(6*time.Second), "b", "192.0.2.1:7373", true)
	o.record(now.Add(7*time.Second), "e", "198.51.100.9:7373", true)
	if len(o.by) != 3 {
		t.Errorf("%d observers remembered, want at most 3", len(o.by))
	}
	if _, ok := o.by["a"]; ok {
		t.Error("the oldest observer was not the one forgotten")
	}
	// Confirmations expire.
	if got := o.list(now.Add(2 * time.Hour)); len(got) != 0 {
		t.Errorf("after the TTL: %+v, want nothing", got)
	}
}

func TestNeedsMapping(t *testing.T) {
	for s, want := range map[string]bool{
		"127.0.0.1:7373": false, "203.0.113.5:7373": false, "192.168.1.2:7373": true, "host.lan:7373": true,
	} {
		if got := needsMapping(s); got != want {
			t.Errorf("needsMapping(%s) = %v, want %v", s, got, want)
		}
	}
}

// testAdvertNode is a node with just what choosing its advertised address
// needs: an identity, a control address on a home network, the
// reachability state and the dial-back observations.
func testAdvertNode(t *testing.T, control string) *Node {
	t.Helper()
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{id: id, log: zap.NewNop(), control: control, reach: newReachState(reach.Config{})}
	n.advert.obs = newObservations(DefaultMaxAddrObservers, DefaultObservedTTL)
	return n
}

// Dial-back results reach the advertised address: what other supernodes
// confirmed counts, the node's own supernode does not, a failure
// withdraws a confirmation.
func TestDialBacksConfirmTheAdvertisedAddress(t *testing.T) {
	n := testAdvertNode(t, "192.168.1.2:7373")
	ring := []string{"203.0.113.10:7373"}
	a, b := identity.NodeID{1}, identity.NodeID{2}
	now := time.Now()
	if c := n.chooseAdvert(now, ring); c.Addr != "" {
		t.Fatalf("before any dial-back: %+v, want no address", c)
	}
	n.onDialBack(n.id.ID, wire.DialBackResult{Addr: "198.51.100.1:7373", OK: true}) // its own supernode: proves nothing
	n.onDialBack(a, wire.DialBackResult{Addr: "192.0.2.9:7373", OK: true})
	if c := n.chooseAdvert(now, ring); c.Addr != "192.0.2.9:7373" || c.Source != AdvertObserved {
		t.Fatalf("after a's dial-back: %+v, want 192.0.2.9:7373 observed", c)
	}
	n.onDialBack(b, wire.DialBackResult{Addr: "192.0.2.9:7373", OK: false, Error: "timeout"})
	n.onDialBack(a, wire.DialBackResult{Addr: "192.0.2.9:7373", OK: false, Error: "timeout"})
	if c := n.chooseAdvert(now, ring); c.Addr != "" {
		t.Errorf("after the dial-backs failed: %+v, want no address", c)
	}
}

func TestRefuseAdvertCountsAndWraps(t *testing.T) {
	n := testAdvertNode(t, "192.168.1.2:7373")
	now := time.Now()
	for i := range 3 {
		err := n.refuseAdvert(now.Add(time.Duration(i)*time.Second), advertChoice{Reason: "nothing reachable"})
		if !errors.Is(err, ErrNoReachableAddress) || !strings.Contains(err.Error(), "nothing reachable") {
			t.Fatalf("refuseAdvert = %v, want ErrNoReachableAddress with the reason", err)
		}
	}
	if got := n.AdvertStats().Refused; got != 3 {
		t.Errorf("Refused = %d, want 3", got)
	}
}
