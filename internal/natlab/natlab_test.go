package natlab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/nat"
)

// echoServer is a public host with two addresses that answers UDP "probe"
// datagrams, and TCP connections, with the source address it saw: a
// stand-in for a STUN server that the tests can also use to send
// unsolicited packets from three different endpoints.
type echoServer struct {
	host             *Host
	a1p1, a1p2, a2p1 *net.UDPConn // address 1 port 1, address 1 port 2, address 2 port 1
	tcp              net.Listener // on address 1 port 1
	wg               sync.WaitGroup
}

const echoPort1, echoPort2 = 4000, 4001

func startEcho(t *testing.T, lab *Lab) *echoServer {
	t.Helper()
	h := lab.Public("echo", 2)
	e := &echoServer{host: h}
	listen := func(a netip.Addr, port uint16) *net.UDPConn {
		c, err := h.ListenPacket("udp4", netip.AddrPortFrom(a, port).String())
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UDPConn)
	}
	e.a1p1 = listen(h.Addrs[0], echoPort1)
	e.a1p2 = listen(h.Addrs[0], echoPort2)
	e.a2p1 = listen(h.Addrs[1], echoPort1)
	ln, err := h.Listen("tcp4", netip.AddrPortFrom(h.Addrs[0], echoPort1).String())
	if err != nil {
		t.Fatal(err)
	}
	e.tcp = ln
	for _, c := range []*net.UDPConn{e.a1p1, e.a1p2, e.a2p1} {
		e.wg.Go(func() { serveEchoUDP(c) })
	}
	e.wg.Go(func() { e.serveTCP() })
	t.Cleanup(func() {
		e.a1p1.Close()
		e.a1p2.Close()
		e.a2p1.Close()
		e.tcp.Close()
		e.wg.Wait()
	})
	return e
}

func addrOf(c *net.UDPConn) netip.AddrPort {
	a := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

func serveEchoUDP(c *net.UDPConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil || string(buf[:n]) != "probe" {
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		_, _ = c.WriteToUDPAddrPort([]byte("seen "+from.String()), from)
	}
}

func (e *echoServer) serveTCP() {
	for {
		c, err := e.tcp.Accept()
		if err != nil {
			return
		}
		fmt.Fprintf(c, "seen %s\n", c.RemoteAddr())
		c.Close()
	}
}

// Waits for UDP answers. Lab links without netem deliver in microseconds,
// so a short silence is enough to conclude that a NAT dropped a packet;
// where a packet is expected, the tests wait much longer, so that a loaded
// machine (CI, -race) does not turn a slow answer into a failure.
const (
	expectSilence = 300 * time.Millisecond
	expectAnswer  = 3 * time.Second
)

// exchange sends a probe from c to dst and returns the source address the
// echo server saw: c's public mapping towards dst. It tries for about
// expectAnswer.
func exchange(c *net.UDPConn, dst netip.AddrPort) (netip.AddrPort, error) {
	return exchangeFor(c, dst, expectAnswer)
}

// exchangeFor is exchange trying for about wait, in rounds of 300ms.
func exchangeFor(c *net.UDPConn, dst netip.AddrPort, wait time.Duration) (netip.AddrPort, error) {
	buf := make([]byte, 1500)
	for range max(1, int(wait/expectSilence)) {
		if _, err := c.WriteToUDPAddrPort([]byte("probe"), dst); err != nil {
			return netip.AddrPort{}, err
		}
		_ = c.SetReadDeadline(time.Now().Add(expectSilence))
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				break // timed out: send again
			}
			if netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) != dst {
				continue
			}
			seen, ok := strings.CutPrefix(string(buf[:n]), "seen ")
			if !ok {
				continue
			}
			return netip.ParseAddrPort(seen)
		}
	}
	return netip.AddrPort{}, fmt.Errorf("no answer from %s", dst)
}

// udpSocket opens a UDP socket on any port of h.
func udpSocket(t *testing.T, h *Host) *net.UDPConn {
	t.Helper()
	c, err := h.ListenPacket("udp4", ":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UDPConn)
}

// arrives reports whether a datagram sent from `from` to `to` reaches c
// (three are sent). It waits expectAnswer if want says it should arrive,
// expectSilence if not.
func arrives(t *testing.T, from *net.UDPConn, to netip.AddrPort, c *net.UDPConn, want bool) bool {
	t.Helper()
	tag := make([]byte, 8)
	_, _ = rand.Read(tag)
	msg := []byte("hello " + hex.EncodeToString(tag))
	for range 3 {
		if _, err := from.WriteToUDPAddrPort(msg, to); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 1500)
	wait := expectSilence
	if want {
		wait = expectAnswer
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	for {
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return false
		}
		if bytes.Equal(buf[:n], msg) {
			return true
		}
	}
}

// TestNATBehaviour builds a home of every kind (and a public host) and
// checks, with UDP probes from the home host to an echo server with two
// addresses, that each behaves as its Kind says: the public address, the
// mapping behaviour (same public port towards every destination, or a new
// one per destination) and the filtering behaviour (which unsolicited
// packets reach a port the host has used).
func TestNATBehaviour(t *testing.T) {
	lab := New(t)
	echo := startEcho(t, lab)
	a1p1, a1p2, a2p1 := addrOf(echo.a1p1), addrOf(echo.a1p2), addrOf(echo.a2p1)

	hosts := map[string]*Host{}
	var names []string
	for _, k := range nat.Kinds() {
		name := k.String()
		hosts[name] = lab.Home(name, k)
		names = append(names, name)
	}
	// An udp-blocked home that may still use UDP with one destination.
	hosts["udp-allowed"] = lab.Home("udp-allowed", nat.UDPBlocked, WithUDPAllowed(a1p1))
	names = append(names, "udp-allowed")

	for _, name := range names {
		h := hosts[name]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			checkAddressing(t, h)
			if h.Kind.BlocksUDP() {
				checkUDPBlocked(t, h, echo, name == "udp-allowed")
				return
			}

			// Mapping: one socket, three destinations (RFC 4787 4.1).
			c := udpSocket(t, h)
			local := addrOf(c)
			var mapped []netip.AddrPort
			for _, dst := range []netip.AddrPort{a1p1, a2p1, a1p2} {
				m, err := exchange(c, dst)
				if err != nil {
					t.Fatal(err)
				}
				if m.Addr() != h.Public {
					t.Errorf("towards %s the host is seen as %s, want address %s", dst, m, h.Public)
				}
				mapped = append(mapped, m)
			}
			t.Logf("local %s, mapped %v", local, mapped)
			switch h.Kind.Mapping() {
			case nat.EndpointIndependent:
				if mapped[0] != mapped[1] || mapped[0] != mapped[2] {
					t.Errorf("mapping is not endpoint-independent: %v", mapped)
				}
				if h.Kind != nat.CGNAT && mapped[0].Port() != local.Port() {
					t.Errorf("port not preserved: local %s, mapped %s", local, mapped[0])
				}
			case nat.AddressAndPortDependent:
				if mapped[0] == mapped[1] || mapped[0] == mapped[2] || mapped[1] == mapped[2] {
					t.Errorf("mapping is not address-and-port-dependent: %v", mapped)
				}
			}

			// Filtering: a fresh socket talks to a1p1 only; then a1p2
			// (same address, other port) and a2p1 (other address) send
			// to its mapping unsolicited (RFC 4787 5).
			c2 := udpSocket(t, h)
			m, err := exchange(c2, a1p1)
			if err != nil {
				t.Fatal(err)
			}
			want := map[nat.Dependence][2]bool{
				nat.EndpointIndependent:     {true, true},
				nat.AddressDependent:        {true, false},
				nat.AddressAndPortDependent: {false, false},
			}[h.Kind.Filtering()]
			sameAddr := arrives(t, echo.a1p2, m, c2, want[0])
			otherAddr := arrives(t, echo.a2p1, m, c2, want[1])
			if sameAddr != want[0] || otherAddr != want[1] {
				t.Errorf("filtering: from the same address, other port: %v (want %v); from another address: %v (want %v); want %s filtering",
					sameAddr, want[0], otherAddr, want[1], h.Kind.Filtering())
			}
		})
	}
}

// checkAddressing checks the addresses the lab reports for h.
func checkAddressing(t *testing.T, h *Host) {
	t.Helper()
	switch {
	case h.Kind == nat.Public:
		if h.Public != h.Addr || h.Router != nil || h.Gateway.IsValid() {
			t.Errorf("public host %v: Public %s, Router %v, Gateway %s", h, h.Public, h.Router, h.Gateway)
		}
	case h.Kind == nat.CGNAT:
		cgn := netip.MustParsePrefix("100.64.0.0/10")
		if h.Carrier == nil || h.Public != h.Carrier.WAN || !cgn.Contains(h.Router.WAN) || h.Public == h.Router.WAN {
			t.Errorf("cgnat host %v: want the home router's WAN %s in %s and Public = carrier WAN (%v)", h, h.Router.WAN, cgn, h.Carrier)
		}
	default:
		if !h.Addr.IsPrivate() || h.Public != h.Router.WAN || h.Gateway != h.Router.LAN || h.Carrier != nil {
			t.Errorf("home host %v: Public %s, router %+v", h, h.Public, *h.Router)
		}
	}
}

// checkUDPBlocked checks that UDP from an udp-blocked home gets nowhere,
// except to the allowed destination (a1p1) when allowed is set, and that
// TCP works through the NAT.
func checkUDPBlocked(t *testing.T, h *Host, echo *echoServer, allowed bool) {
	t.Helper()
	a1p1, a2p1 := addrOf(echo.a1p1), addrOf(echo.a2p1)
	c := udpSocket(t, h)
	wait := expectSilence
	if allowed {
		wait = expectAnswer
	}
	m, err := exchangeFor(c, a1p1, wait)
	switch {
	case allowed && err != nil:
		t.Errorf("UDP to the allowed %s: %v", a1p1, err)
	case allowed && m.Addr() != h.Public:
		t.Errorf("UDP to the allowed %s: seen as %s, want %s", a1p1, m, h.Public)
	case !allowed && err == nil:
		t.Errorf("UDP to %s got through (seen as %s)", a1p1, m)
	}
	if m, err := exchangeFor(c, a2p1, expectSilence); err == nil {
		t.Errorf("UDP to %s got through (seen as %s)", a2p1, m)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := h.DialContext(ctx, "tcp4", a1p1.String())
	if err != nil {
		t.Fatalf("TCP to %s: %v", a1p1, err)
	}
	defer conn.Close()
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	seen, err := netip.ParseAddrPort(strings.TrimSpace(strings.TrimPrefix(line, "seen ")))
	if err != nil || seen.Addr() != h.Public {
		t.Errorf("TCP seen as %q, want address %s", line, h.Public)
	}
}

// natpmp sends an RFC 6886 request from c to the gateway's NAT-PMP port and
// returns the response, retransmitting as section 3.1 says (250ms, doubling).
func natpmp(c *net.UDPConn, gw netip.Addr, req []byte) ([]byte, error) {
	server := netip.AddrPortFrom(gw, 5351)
	buf := make([]byte, 64)
	wait := 250 * time.Millisecond
	for range 5 {
		if _, err := c.WriteToUDPAddrPort(req, server); err != nil {
			return nil, err
		}
		_ = c.SetReadDeadline(time.Now().Add(wait))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err == nil && from.Addr().Unmap() == gw && n >= 8 && buf[1] == 128+req[1] {
			return buf[:n], nil
		}
		wait *= 2
	}
	return nil, errors.New("no NAT-PMP answer from " + server.String())
}

// natpmpMap asks for a mapping of internal port iport (RFC 6886 3.3; op 1
// UDP, 2 TCP) and returns the result code and the mapped external port.
func natpmpMap(t *testing.T, h *Host, op byte, iport uint16) (result uint16, eport uint16) {
	t.Helper()
	c := udpSocket(t, h)
	req := make([]byte, 12)
	req[1] = op
	binary.BigEndian.PutUint16(req[4:], iport)
	binary.BigEndian.PutUint16(req[6:], iport) // suggested external port
	binary.BigEndian.PutUint32(req[8:], 300)   // lifetime, seconds
	resp, err := natpmp(c, h.Gateway, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp) < 16 {
		return binary.BigEndian.Uint16(resp[2:]), 0
	}
	return binary.BigEndian.Uint16(resp[2:]), binary.BigEndian.Uint16(resp[10:])
}

// TestUPnP runs miniupnpd on home routers of several kinds and, from the
// home host, asks for port mappings with NAT-PMP, hand-made per RFC 6886,
// then checks that a public host that the home host never contacted
// reaches it through them, over UDP and TCP. On the port-restricted home it
// also does the UPnP-IGD dance (SSDP discovery, device description, SOAP
// AddPortMapping). Behind CGNAT, miniupnpd must refuse.
func TestUPnP(t *testing.T) {
	lab := New(t)
	echo := startEcho(t, lab)
	kinds := []nat.Kind{nat.PortRestrictedCone, nat.RestrictedCone, nat.FullCone, nat.Symmetric, nat.CGNAT}
	hosts := make([]*Host, len(kinds))
	for i, k := range kinds {
		hosts[i] = lab.Home("upnp-"+k.String(), k, WithUPnP())
	}
	for _, h := range hosts {
		t.Run(h.Kind.String(), func(t *testing.T) {
			t.Parallel()
			c := udpSocket(t, h)
			resp, err := natpmp(c, h.Gateway, []byte{0, 0}) // public address request, RFC 6886 3.2
			if err != nil {
				t.Fatal(err)
			}
			rc := binary.BigEndian.Uint16(resp[2:])
			if h.Kind == nat.CGNAT {
				// miniupnpd sees only its carrier-side address, which
				// is not public: result 3, Network Failure (RFC 6886
				// 3.5).
				if rc != 3 {
					t.Errorf("NAT-PMP public address behind nat.CGNAT: answer %x, want result code 3", resp)
				}
			} else if len(resp) != 12 || rc != 0 {
				t.Fatalf("NAT-PMP public address: answer %x", resp)
			} else if got := netip.AddrFrom4([4]byte(resp[8:12])); got != h.Public {
				t.Errorf("NAT-PMP public address %s, want %s", got, h.Public)
			}

			u := udpSocket(t, h)
			rc, eport := natpmpMap(t, h, 1, addrOf(u).Port())
			if h.Kind == nat.CGNAT {
				if rc == 0 {
					t.Errorf("miniupnpd behind nat.CGNAT mapped UDP port %d; want a refusal", eport)
				}
				return
			}
			if rc != 0 {
				t.Fatalf("NAT-PMP UDP mapping: result code %d\n%s", rc, h.Router.UPnPLog())
			}
			ext := netip.AddrPortFrom(h.Public, eport)
			if !arrives(t, echo.a2p1, ext, u, true) {
				t.Errorf("UDP from %s to the NAT-PMP mapping %s did not arrive", addrOf(echo.a2p1), ext)
			}

			ln, err := h.Listen("tcp4", ":0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			rc, eport = natpmpMap(t, h, 2, uint16(ln.Addr().(*net.TCPAddr).Port))
			if rc != 0 {
				t.Fatalf("NAT-PMP TCP mapping: result code %d", rc)
			}
			checkTCPMapping(t, echo.host, ln, netip.AddrPortFrom(h.Public, eport))

			if h.Kind == nat.PortRestrictedCone {
				checkIGD(t, h, echo)
			}
		})
	}
}

// checkTCPMapping dials ext from the public host and checks that ln, in the
// home host, accepts the connection.
func checkTCPMapping(t *testing.T, from *Host, ln net.Listener, ext netip.AddrPort) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, err = c.Write([]byte("hi"))
			c.Close()
		}
		accepted <- err
	}()
	conn, err := from.DialContext(ctx, "tcp4", ext.String())
	if err != nil {
		t.Fatalf("TCP to the mapping %s: %v", ext, err)
	}
	defer conn.Close()
	got, err := io.ReadAll(conn)
	if err != nil || string(got) != "hi" {
		t.Errorf("TCP through %s: read %q, %v", ext, got, err)
	}
	if err := <-accepted; err != nil {
		t.Error(err)
	}
}

// checkIGD finds the router's Internet Gateway Device with SSDP, reads its
// description and maps a UDP port with the WANIPConnection service's SOAP
// AddPortMapping action (UPnP IGD 1.0), then checks the mapping forwards.
func checkIGD(t *testing.T, h *Host, echo *echoServer) {
	t.Helper()
	c := udpSocket(t, h)
	search := "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\n" +
		"ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n"
	var location string
	buf := make([]byte, 2048)
	for try := 0; try < 3 && location == ""; try++ {
		if _, err := c.WriteToUDPAddrPort([]byte(search), netip.MustParseAddrPort("239.255.255.250:1900")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			continue
		}
		if m := regexp.MustCompile(`(?im)^location:\s*(\S+)`).FindSubmatch(buf[:n]); m != nil {
			location = string(m[1])
		}
	}
	if location == "" {
		t.Fatal("no SSDP answer from the gateway")
	}
	if !strings.HasPrefix(location, "http://"+h.Gateway.String()+":") {
		t.Errorf("SSDP location %s is not on the gateway %s", location, h.Gateway)
	}

	// The HTTP client dials on its own goroutines, outside the namespace:
	// hence the Do-based dialer.
	client := &http.Client{Transport: &http.Transport{DialContext: h.DialContext}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get(location)
	if err != nil {
		t.Fatal(err)
	}
	desc, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// miniupnpd describes an IGD 2 (WANIPConnection:2) unless configured
	// with force_igd_desc_v1; clients take the version it offers.
	m := regexp.MustCompile(`(?s)<serviceType>(urn:schemas-upnp-org:service:WANIPConnection:[12])</serviceType>.*?<controlURL>([^<]+)</controlURL>`).FindSubmatch(desc)
	if m == nil {
		t.Fatalf("no WANIPConnection service in the device description:\n%s", desc)
	}
	service := string(m[1])
	base, err := url.Parse(location)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := url.Parse(string(m[2]))
	if err != nil {
		t.Fatal(err)
	}
	control := base.ResolveReference(ref).String()

	soap := func(action, args string) string {
		body := `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">` +
			`<s:Body><u:` + action + ` xmlns:u="` + service + `">` + args + `</u:` + action + `></s:Body></s:Envelope>`
		req, err := http.NewRequest(http.MethodPost, control, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", `text/xml; charset="utf-8"`)
		req.Header.Set("SOAPAction", `"`+service+`#`+action+`"`)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("SOAP %s: %s\n%s", action, resp.Status, out)
		}
		return string(out)
	}
	if out := soap("GetExternalIPAddress", ""); !strings.Contains(out, "<NewExternalIPAddress>"+h.Public.String()+"<") {
		t.Errorf("GetExternalIPAddress: want %s in\n%s", h.Public, out)
	}
	u := udpSocket(t, h)
	port := addrOf(u).Port()
	soap("AddPortMapping", fmt.Sprintf("<NewRemoteHost></NewRemoteHost><NewExternalPort>%d</NewExternalPort>"+
		"<NewProtocol>UDP</NewProtocol><NewInternalPort>%d</NewInternalPort><NewInternalClient>%s</NewInternalClient>"+
		"<NewEnabled>1</NewEnabled><NewPortMappingDescription>natlab</NewPortMappingDescription><NewLeaseDuration>0</NewLeaseDuration>",
		port, port, h.Addr))
	ext := netip.AddrPortFrom(h.Public, port)
	if !arrives(t, echo.a2p1, ext, u, true) {
		t.Errorf("UDP to the UPnP-IGD mapping %s did not arrive", ext)
	}
}

func TestParseNetem(t *testing.T) {
	for _, c := range []struct {
		spec string
		want linkShape
		ok   bool
	}{
		{"delay 20ms", linkShape{delay: 20 * time.Millisecond}, true},
		{"delay 20ms 5ms loss 1%", linkShape{delay: 20 * time.Millisecond, jitter: 5 * time.Millisecond, loss: 0.01}, true},
		{"loss random 0.5% delay 1s", linkShape{delay: time.Second, loss: 0.005}, true},
		{"", linkShape{}, false},
		{"delay", linkShape{}, false},
		{"delay 20", linkShape{}, false}, // netem's bare numbers are ambiguous: units required
		{"loss 1", linkShape{}, false},
		{"loss 101%", linkShape{}, false},
		{"rate 1mbit", linkShape{}, false},
		{"delay 20ms reorder 25%", linkShape{}, false},
	} {
		got, err := parseNetem(c.spec)
		if (err == nil) != c.ok || (err == nil && *got != c.want) {
			t.Errorf("parseNetem(%q) = %+v, %v; want %+v, ok %v", c.spec, got, err, c.want, c.ok)
		}
	}
}

// TestNetem checks that WithNetem shapes the WAN link, in both directions.
func TestNetem(t *testing.T) {
	lab := New(t)
	echo := startEcho(t, lab)
	slow := lab.Home("slow", nat.PortRestrictedCone, WithNetem("delay 20ms"))
	lossy := lab.Home("lossy", nat.CGNAT, WithNetem("loss 100%"))
	lossyPublic := lab.Public("lossy-public", 1, WithNetem("loss 100%"))

	c := udpSocket(t, slow)
	start := time.Now()
	if _, err := exchange(c, addrOf(echo.a1p1)); err != nil {
		t.Fatal(err)
	}
	// A lower bound only: the wire never makes a frame faster.
	if rtt := time.Since(start); rtt < 40*time.Millisecond {
		t.Errorf("round trip %v through \"delay 20ms\" each way, want >= 40ms", rtt)
	}
	for _, h := range []*Host{lossy, lossyPublic} {
		if m, err := exchangeFor(udpSocket(t, h), addrOf(echo.a1p1), expectSilence); err == nil {
			t.Errorf("%v: a probe went through \"loss 100%%\" (seen as %s)", h, m)
		}
	}
}

// TestDo checks that Do runs fn in the host's namespace, switches the thread
// back afterwards (after a panic too), and that goroutines started in fn run
// outside, as documented; and that the lab's sysctls are in place.
func TestDo(t *testing.T) {
	lab := New(t)
	h := lab.Home("home", nat.PortRestrictedCone)
	self, err := statNS("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	want, err := statNS(netnsDir + "/" + h.NS)
	if err != nil {
		t.Fatal(err)
	}
	var inside, inGoroutine nsID
	var ifaces []string
	err = h.Do(func() error {
		inside, _ = statNS("/proc/thread-self/ns/net")
		done := make(chan struct{})
		go func() {
			inGoroutine, _ = statNS("/proc/thread-self/ns/net")
			close(done)
		}()
		<-done
		list, err := net.Interfaces()
		for _, i := range list {
			ifaces = append(ifaces, i.Name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside != want {
		t.Error("fn did not run in the host's namespace")
	}
	if inGoroutine != self {
		t.Error("a goroutine started in fn ran in the lab namespace; the doc says it does not")
	}
	slices.Sort(ifaces)
	if !slices.Equal(ifaces, []string{"eth0", "lo"}) {
		t.Errorf("interfaces in the home host: %v, want eth0 and lo", ifaces)
	}
	if now, _ := statNS("/proc/thread-self/ns/net"); now != self {
		t.Error("the thread was not switched back")
	}

	sentinel := errors.New("sentinel")
	if err := h.Do(func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic in fn did not propagate")
			}
			if now, _ := statNS("/proc/thread-self/ns/net"); now != self {
				t.Error("the thread was not switched back after a panic")
			}
		}()
		_ = h.Do(func() error { panic("in fn") })
	}()

	for _, c := range []struct {
		do   func(func() error) error
		want string
	}{{h.Do, "0"}, {h.Router.Do, "1"}} {
		var fwd []byte
		if err := c.do(func() (err error) {
			fwd, err = os.ReadFile("/proc/sys/net/ipv4/ip_forward")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(fwd)) != c.want {
			t.Errorf("ip_forward = %q, want %s", fwd, c.want)
		}
	}
	if out, err := h.Command(context.Background(), "ip", "-br", "addr", "show", "dev", "eth0").Output(); err != nil ||
		!strings.Contains(string(out), h.Addr.String()) {
		t.Errorf("Command: ip addr in the host: %q, %v", out, err)
	}
}

// rootState is what the lab must never change: the interfaces, addresses,
// routes and nftables ruleset of the machine's own network namespace.
func rootState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifaces {
		addrs, _ := i.Addrs()
		fmt.Fprintf(&b, "%s %v\n", i.Name, addrs)
	}
	for _, args := range [][]string{{"ip", "route", "show", "table", "all"}, {"nft", "list", "ruleset"}} {
		path, err := findTool(args[0])
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(path, args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
		b.Write(out)
	}
	return b.String()
}

// TestCleanup builds a lab with every moving part (a CGNAT home with
// miniupnpd, netem, a process left running in a home host), lets its test
// end, and checks that nothing is left: no namespace with the lab's prefix,
// no process inside one, no miniupnpd; and that the machine's own network
// namespace is exactly as before.
func TestCleanup(t *testing.T) {
	skipUnlessAvailable(t)
	before := rootState(t)
	var lab *Lab
	var sleeper *exec.Cmd
	t.Run("build", func(t *testing.T) {
		lab = New(t)
		lab.Public("pub", 2, WithNetem("delay 1ms"))
		lab.Home("cg", nat.CGNAT, WithUPnP(), WithNetem("delay 1ms"))
		lab.Home("pr", nat.PortRestrictedCone, WithUPnP())
		h := lab.Home("fc", nat.FullCone)
		sleeper = h.Command(context.Background(), "sleep", "600")
		if err := sleeper.Start(); err != nil {
			t.Fatal(err)
		}
		if lab.Leaked() == nil {
			t.Error("Leaked reports nothing while the lab is up")
		}
	})
	if lab == nil || sleeper == nil {
		return // skipped or failed early
	}
	if err := sleeper.Wait(); err == nil {
		t.Error("the process left in the lab exited by itself?")
	}
	if err := lab.Leaked(); err != nil {
		t.Error(err)
	}
	if after := rootState(t); after != before {
		t.Errorf("the machine's own network namespace changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestSkipWithoutRoot runs this test binary as user nobody and checks that a
// lab test skips with a clear reason, or fails when CANOPY_NATLAB=require.
func TestSkipWithoutRoot(t *testing.T) {
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var prefix []string
	if os.Geteuid() == 0 {
		setpriv, err := findTool("setpriv")
		if err != nil {
			t.Skip("setpriv (util-linux) not found")
		}
		// nobody must be able to reach the binary: go test's build
		// directory is private to root.
		dir, err := os.MkdirTemp("", "natlab-test-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		bin = filepath.Join(dir, "natlab.test")
		if err := os.WriteFile(bin, data, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		prefix = []string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"}
	}
	for _, c := range []struct {
		env, want string
		fail      bool
	}{
		{"", "--- SKIP: TestHelperNewWithoutRoot", false},
		{"require", "--- FAIL: TestHelperNewWithoutRoot", true},
	} {
		args := append(slices.Clone(prefix), bin, "-test.run=^TestHelperNewWithoutRoot$", "-test.v")
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "NATLAB_HELPER=1", EnvVar+"="+c.env)
		out, err := cmd.CombinedOutput()
		if (err != nil) != c.fail || !strings.Contains(string(out), c.want) || !strings.Contains(string(out), "needs root") {
			t.Errorf("%s=%q: exit %v, output:\n%s\nwant %q and the reason \"needs root\"", EnvVar, c.env, err, out, c.want)
		}
	}
}

// TestHelperNewWithoutRoot is run by TestSkipWithoutRoot as an unprivileged
// process.
func TestHelperNewWithoutRoot(t *testing.T) {
	if os.Getenv("NATLAB_HELPER") != "1" {
		t.Skip("helper process of TestSkipWithoutRoot")
	}
	New(t)
	t.Error("New returned without root")
}
