package node

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/nat/relay"
)

// TestAnnounceAt: a supernode announces its STUN/TURN services at the host
// of its advertised address; on the router's mapping, on the ports the
// router granted for the TURN port, and nothing the router did not map.
func TestAnnounceAt(t *testing.T) {
	home := netip.MustParseAddr("192.168.1.20")
	router := netip.MustParseAddr("203.0.113.7")
	mapped := func(p uint16) netip.AddrPort { return netip.AddrPortFrom(router, p) }
	base := announceInput{LocalIPs: []netip.Addr{home}, Relay: true, RelayUDP: 3478, RelayTCP: 3478}
	cases := []struct {
		name string
		edit func(*announceInput)
		want natAddrs
		why  string // a substring of Why, "" for none
	}{
		{"loopback", func(in *announceInput) { in.Advertised, in.LocalIPs = "127.0.0.1:7373", nil },
			natAddrs{IP: netip.MustParseAddr("127.0.0.1"), UDP: 3478, TCP: 3478}, ""},
		{"public host", func(in *announceInput) {
			in.Advertised, in.LocalIPs = "198.51.100.4:7373", []netip.Addr{netip.MustParseAddr("198.51.100.4")}
		},
			natAddrs{IP: netip.MustParseAddr("198.51.100.4"), UDP: 3478, TCP: 3478}, ""},
		{"mapped, same ports", func(in *announceInput) {
			in.Advertised, in.Control, in.TURNUDP, in.TURNTCP = mapped(7373).String(), mapped(7373), mapped(3478), mapped(3478)
		}, natAddrs{IP: router, UDP: 3478, TCP: 3478}, ""},
		{"mapped, other ports granted", func(in *announceInput) {
			in.Advertised, in.Control, in.TURNUDP, in.TURNTCP = mapped(7373).String(), mapped(7373), mapped(40001), mapped(40002)
		}, natAddrs{IP: router, UDP: 40001, TCP: 40002}, ""},
		{"mapped, TCP refused", func(in *announceInput) {
			in.Advertised, in.Control, in.TURNUDP = mapped(7373).String(), mapped(7373), mapped(3478)
		}, natAddrs{IP: router, UDP: 3478}, "TURN/TCP"},
		{"mapped, TURN port not mapped", func(in *announceInput) {
			in.Advertised, in.Control = mapped(7373).String(), mapped(7373)
		}, natAddrs{IP: router}, "TURN/UDP"},
		{"TURN mapped on another address than the advertised one", func(in *announceInput) {
			in.Advertised, in.Control, in.TURNUDP = mapped(7373).String(), mapped(7373), netip.MustParseAddrPort("198.51.100.9:3478")
		}, natAddrs{IP: router}, "TURN/UDP"},
		{"mapped, RFC 5780 service withheld", func(in *announceInput) {
			in.Advertised, in.Control, in.TURNUDP, in.TURNTCP, in.STUN = mapped(7373).String(), mapped(7373), mapped(3478), mapped(3478), 3479
		}, natAddrs{IP: router, UDP: 3478, TCP: 3478}, "RFC 5780"},
		{"observed address: bound ports", func(in *announceInput) { in.Advertised = "198.51.100.200:7373" },
			natAddrs{IP: netip.MustParseAddr("198.51.100.200"), UDP: 3478, TCP: 3478}, ""},
		{"TURN off", func(in *announceInput) {
			in.Advertised, in.Relay, in.RelayUDP, in.RelayTCP = "127.0.0.1:7373", false, 0, 0
		},
			natAddrs{IP: netip.MustParseAddr("127.0.0.1")}, ""},
		{"a name", func(in *announceInput) { in.Advertised = "home.example:7373" }, natAddrs{}, "not an IP"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := base
			c.edit(&in)
			got := announceAt(in)
			why := got.Why
			got.Why = ""
			if got != c.want {
				t.Errorf("announceAt = %+v, want %+v", got, c.want)
			}
			if (c.why == "") != (why == "") || !strings.Contains(why, c.why) {
				t.Errorf("Why = %q, want one containing %q", why, c.why)
			}
		})
	}
}

// TestNATServicesFollowTheAdvertisedAddress: when the advertised address
// moves, the relay's address (relayed candidates) and every URL a leaf
// gets move with it, and the move is counted once.
func TestNATServicesFollowTheAdvertisedAddress(t *testing.T) {
	n := &Node{log: zaptest.NewLogger(t)}
	// pion's TURN goroutines may still log after Close returns, and a
	// test logger used after its test ends is a race: the relay gets its own.
	svc := &natServices{creds: relay.NewCreds(relay.CredsConfig{})}
	rc := relay.DefaultConfig()
	rc.ListenUDP, rc.ListenTCP = []string{"127.0.0.1:0"}, "127.0.0.1:0"
	rc.RelayIP, rc.RelayBindIP, rc.Creds, rc.Logger = netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.1"), svc.creds, zap.NewNop()
	var err error
	if svc.relay, err = relay.New(rc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.close() })
	leaf := identity.NodeID{1}
	svc.Attach(leaf)
	udp, tcp := svc.relay.UDPAddrs()[0].Port(), svc.relay.TCPAddr().Port()

	check := func(host string) {
		t.Helper()
		want := []string{
			"stun:" + netip.AddrPortFrom(netip.MustParseAddr(host), udp).String(),
			"turn:" + netip.AddrPortFrom(netip.MustParseAddr(host), udp).String() + "?transport=udp",
			"turn:" + netip.AddrPortFrom(netip.MustParseAddr(host), tcp).String() + "?transport=tcp",
		}
		ice := svc.iceServers(leaf, time.Now())
		var got []string
		for _, s := range ice.Servers {
			got = append(got, s.URLs...)
			if strings.HasPrefix(s.URLs[0], "turn:") && (s.Username == "" || s.Credential == "" || s.Expires == 0) {
				t.Errorf("TURN server %+v without its credential", s)
			}
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("ICE URLs %v, want %v", got, want)
		}
		if d := netip.AddrPortFrom(netip.MustParseAddr(host), udp).String(); ice.Discovery != d {
			t.Errorf("discovery %q, want %q", ice.Discovery, d)
		}
		if got := svc.relay.RelayIP().String(); got != host {
			t.Errorf("relay IP %s, want %s", got, host)
		}
	}
	if !n.setNATAddrs(svc, "127.0.0.1:7373") {
		t.Fatal("the first announcement reports no change")
	}
	check("127.0.0.1")
	if n.setNATAddrs(svc, "127.0.0.1:7373") {
		t.Error("the same address again reports a change")
	}
	if !n.setNATAddrs(svc, "127.0.0.2:7373") {
		t.Fatal("a new address reports no change")
	}
	check("127.0.0.2")
	if st := n.AdvertStats(); st.ServicesMoved != 1 || st.ServicesWithheld != 0 {
		t.Errorf("stats %+v, want one move, nothing withheld", st)
	}
	// A leaf that has detached gets no TURN credential, only the STUN
	// binding service.
	svc.Detach(leaf)
	for _, s := range svc.iceServers(leaf, time.Now()).Servers {
		if s.Username != "" {
			t.Errorf("a detached leaf got %+v", s)
		}
	}
}
