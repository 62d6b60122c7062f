package portmap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/internal/testwait"
)

func TestParseProcNetRoute(t *testing.T) {
	const header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	for _, c := range []struct {
		name, table string
		want        string // "" = error
	}{
		{"typical", header +
			"eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n" +
			"eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n", "192.168.1.1"},
		{"lowest metric wins", header +
			"wlan0\t00000000\t0100000A\t0003\t0\t0\t600\t00000000\t0\t0\t0\n" +
			"eth0\t00000000\t FE01A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n" +
			"eth1\t00000000\t0264A8C0\t0003\t0\t0\t50\t00000000\t0\t0\t0\n", "192.168.100.2"},
		{"route down", header + "eth0\t00000000\t0101A8C0\t0002\t0\t0\t100\t00000000\t0\t0\t0\n", ""},
		{"no gateway flag", header + "eth0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n", ""},
		{"no default route", header + "eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n", ""},
		{"garbage", header + "eth0 00000000 zz 3 0 0 0 00000000\n\x00\x01\n", ""},
		{"empty", "", ""},
	} {
		got, err := parseProcNetRoute(strings.NewReader(c.table))
		switch {
		case c.want == "" && err == nil:
			t.Errorf("%s: got %s, want an error", c.name, got)
		case c.want == "" && !errors.Is(err, ErrNoGateway):
			t.Errorf("%s: err = %v, want ErrNoGateway", c.name, err)
		case c.want != "" && (err != nil || got != netip.MustParseAddr(c.want)):
			t.Errorf("%s: got %s, %v, want %s", c.name, got, err, c.want)
		}
	}
}

// FuzzParseProcNetRoute: any routing table text gives an IPv4 gateway or
// ErrNoGateway, never a panic.
func FuzzParseProcNetRoute(f *testing.F) {
	f.Add("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\n")
	f.Add("\n\n")
	f.Fuzz(func(t *testing.T, table string) {
		gw, err := parseProcNetRoute(strings.NewReader(table))
		if err == nil && (!gw.Is4() || gw.IsUnspecified()) {
			t.Fatalf("gateway %s", gw)
		}
		if err != nil && !errors.Is(err, ErrNoGateway) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestRenewDelay(t *testing.T) {
	for _, c := range []struct{ lifetime, refresh, want time.Duration }{
		{2 * time.Hour, 20 * time.Minute, time.Hour},
		{0, 20 * time.Minute, 20 * time.Minute},
		{time.Second, time.Minute, time.Second},
		{10 * time.Second, time.Minute, 5 * time.Second},
	} {
		if got := renewDelay(c.lifetime, c.refresh); got != c.want {
			t.Errorf("renewDelay(%s, %s) = %s, want %s", c.lifetime, c.refresh, got, c.want)
		}
	}
}

func TestMapPortConfig(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []Config{
		{},
		{LocalPort: 1, DisableNATPMP: true, DisableUPnP: true},
		{LocalPort: 1, UPnPRootURL: "ftp://192.0.2.1/x"},
		{LocalPort: 1, UPnPRootURL: "::"},
	} {
		if m, err := Map(ctx, cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: err = %v", cfg, err)
			if m != nil {
				m.Close()
			}
		}
	}
}

// fakeNATPMP is a NAT-PMP gateway on a random loopback address (NAT-PMP's
// port is fixed at 5351). It grants the requested external port plus 1000
// for lifetime `grant`, and records every mapping request.
type fakeNATPMP struct {
	conn  net.PacketConn
	ip    netip.Addr
	grant uint32
	wg    sync.WaitGroup

	mu       sync.Mutex
	requests []natpmpRequest
}

type natpmpRequest struct {
	op                 byte
	internal, external uint16
	lifetime           uint32
}

func newFakeNATPMP(t *testing.T, grant uint32) *fakeNATPMP {
	t.Helper()
	var conn net.PacketConn
	var ip netip.Addr
	for range 20 {
		ip = netip.AddrFrom4([4]byte{127, byte(1 + rand.IntN(250)), byte(rand.IntN(256)), byte(2 + rand.IntN(250))})
		c, err := net.ListenPacket("udp4", netip.AddrPortFrom(ip, 5351).String())
		if err == nil {
			conn = c
			break
		}
	}
	if conn == nil {
		t.Fatal("no free loopback address for a fake NAT-PMP gateway")
	}
	f := &fakeNATPMP{conn: conn, ip: ip, grant: grant}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(func() { conn.Close(); f.wg.Wait() })
	return f
}

func (f *fakeNATPMP) serve() {
	defer f.wg.Done()
	buf := make([]byte, 64)
	for {
		n, from, err := f.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		if n < 2 || buf[0] != 0 {
			continue
		}
		switch op := buf[1]; {
		case op == 0 && n == 2:
			resp := make([]byte, 12)
			resp[1] = 128
			binary.BigEndian.PutUint32(resp[4:], 1000)
			copy(resp[8:], []byte{198, 51, 100, 77})
			f.conn.WriteTo(resp, from)
		case (op == 1 || op == 2) && n == 12:
			r := natpmpRequest{op: op, internal: binary.BigEndian.Uint16(buf[4:]), external: binary.BigEndian.Uint16(buf[6:]), lifetime: binary.BigEndian.Uint32(buf[8:])}
			f.mu.Lock()
			f.requests = append(f.requests, r)
			f.mu.Unlock()
			resp := make([]byte, 16)
			resp[1] = 128 + op
			binary.BigEndian.PutUint32(resp[4:], 1000)
			binary.BigEndian.PutUint16(resp[8:], r.internal)
			if r.lifetime != 0 {
				binary.BigEndian.PutUint16(resp[10:], r.external+1000)
				binary.BigEndian.PutUint32(resp[12:], f.grant)
			}
			f.conn.WriteTo(resp, from)
		}
	}
}

func (f *fakeNATPMP) seen() []natpmpRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]natpmpRequest(nil), f.requests...)
}

// TestMapPortNATPMP maps UDP and TCP on a fake NAT-PMP gateway that grants
// two seconds: the mapper must use the granted port and lifetime, renew at
// half the lifetime with the port it was given, and delete both on Close.
func TestMapPortNATPMP(t *testing.T) {
	t.Parallel()
	f := newFakeNATPMP(t, 2)
	m, err := Map(context.Background(), Config{
		LocalPort: 40000, TCP: true, Gateway: f.ip, LocalIP: f.ip, DisableUPnP: true,
		Lifetime: time.Hour, Timeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := m.State()
	if s.Protocol != NATPMP || s.External != netip.MustParseAddrPort("198.51.100.77:41000") ||
		s.ExternalTCP != netip.MustParseAddrPort("198.51.100.77:41000") || s.Gateway != f.ip || s.LastError != nil {
		t.Fatalf("state %+v", s)
	}
	if until := time.Until(s.Expires); until <= 0 || until > 2*time.Second {
		t.Errorf("expires in %s", until)
	}
	first := f.seen()
	if len(first) != 2 || first[0] != (natpmpRequest{1, 40000, 40000, 3600}) || first[1] != (natpmpRequest{2, 40000, 40000, 3600}) {
		t.Fatalf("requests %+v", first)
	}
	// Renewal after ~1 s asks for the port granted.
	// The mapper runs on real timers and real sockets, which testing/synctest
	// cannot drive: the renewal is polled for.
	if testwait.For(5*time.Second, func() bool { return len(f.seen()) >= 4 }) != nil {
		t.Fatalf("no renewal: %+v", f.seen())
	}
	if r := f.seen()[2]; r != (natpmpRequest{1, 40000, 41000, 3600}) {
		t.Errorf("renewal %+v", r)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	all := f.seen()
	last := all[len(all)-2:]
	if last[0] != (natpmpRequest{1, 40000, 0, 0}) || last[1] != (natpmpRequest{2, 40000, 0, 0}) {
		t.Errorf("deletion requests %+v", last)
	}
	if s := m.State(); s.Protocol != None || s.External.IsValid() {
		t.Errorf("state after Close %+v", s)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// fakeIGD is a UPnP IGD on an httptest server: a device description with
// one WANIPConnection:1 service, and a SOAP endpoint for AddPortMapping,
// DeletePortMapping and GetExternalIPAddress.
type fakeIGD struct {
	srv           *httptest.Server
	permanentOnly bool   // refuse leases with 725
	taken         uint16 // external port that conflicts (718)

	mu      sync.Mutex
	actions []string // "Add UDP 40000 lease 3600 client 127.0.0.1", "Delete UDP 40000"
}

func newFakeIGD(t *testing.T) *fakeIGD {
	f := &fakeIGD{}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

const fakeIGDDescription = `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
<specVersion><major>1</major><minor>0</minor></specVersion>
<device>
<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<friendlyName>fake IGD</friendlyName>
<UDN>uuid:00000000-0000-0000-0000-000000000001</UDN>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>
<UDN>uuid:00000000-0000-0000-0000-000000000002</UDN>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>
<UDN>uuid:00000000-0000-0000-0000-000000000003</UDN>
<serviceList><service>
<serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<controlURL>/ctl/IPConn</controlURL>
<eventSubURL>/evt/IPConn</eventSubURL>
<SCPDURL>/WANIPCn.xml</SCPDURL>
</service></serviceList>
</device></deviceList>
</device></deviceList>
</device>
</root>`

var soapArg = regexp.MustCompile(`<(New[A-Za-z]+)>([^<]*)</New[A-Za-z]+>`)

func (f *fakeIGD) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/rootDesc.xml" {
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprint(w, fakeIGDDescription)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/ctl/IPConn" {
		http.NotFound(w, r)
		return
	}
	body := make([]byte, 4096)
	n, _ := r.Body.Read(body)
	args := map[string]string{}
	for _, m := range soapArg.FindAllStringSubmatch(string(body[:n]), -1) {
		args[m[1]] = m[2]
	}
	action := r.Header.Get("SOAPACTION")
	action = strings.Trim(action[strings.Index(action, "#")+1:], `"`)
	const urn = "urn:schemas-upnp-org:service:WANIPConnection:1"
	reply := func(inner string) {
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		fmt.Fprintf(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:%sResponse xmlns:u="%s">%s</u:%sResponse></s:Body></s:Envelope>`, action, urn, inner, action)
	}
	fault := func(code int) {
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>%d</errorCode><errorDescription>fake</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`, code)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch action {
	case "GetExternalIPAddress":
		reply("<NewExternalIPAddress>198.51.100.77</NewExternalIPAddress>")
	case "AddPortMapping":
		port, _ := strconv.Atoi(args["NewExternalPort"])
		switch {
		case f.permanentOnly && args["NewLeaseDuration"] != "0":
			fault(upnpOnlyPermanentLeasesSupported)
		case uint16(port) == f.taken:
			fault(upnpConflictInMappingEntry)
		default:
			f.actions = append(f.actions, fmt.Sprintf("Add %s %s lease %s client %s", args["NewProtocol"], args["NewExternalPort"], args["NewLeaseDuration"], args["NewInternalClient"]))
			reply("")
		}
	case "DeletePortMapping":
		f.actions = append(f.actions, fmt.Sprintf("Delete %s %s", args["NewProtocol"], args["NewExternalPort"]))
		reply("")
	default:
		fault(401)
	}
}

func (f *fakeIGD) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.actions...)
}

func (f *fakeIGD) rootURL() string { return f.srv.URL + "/rootDesc.xml" }

var portMapLoopback = netip.MustParseAddr("127.0.0.1")

// TestMapPortUPnP maps UDP and TCP through the fake IGD, renews, and
// deletes on Close.
func TestMapPortUPnP(t *testing.T) {
	t.Parallel()
	f := newFakeIGD(t)
	m, err := Map(context.Background(), Config{
		LocalPort: 40000, TCP: true, Gateway: portMapLoopback, UPnPRootURL: f.rootURL(), DisableNATPMP: true,
		Lifetime: 2 * time.Second, Timeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s := m.State()
	if s.Protocol != UPnP || s.External != netip.MustParseAddrPort("198.51.100.77:40000") || s.ExternalTCP != s.External || s.Expires.IsZero() {
		t.Fatalf("state %+v", s)
	}
	want := []string{"Add UDP 40000 lease 2 client 127.0.0.1", "Add TCP 40000 lease 2 client 127.0.0.1"}
	if got := f.seen(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("actions %q", got)
	}
	// The mapper runs on real timers and real sockets, which testing/synctest
	// cannot drive: the renewal is polled for.
	if testwait.For(5*time.Second, func() bool { return len(f.seen()) >= 4 }) != nil {
		t.Fatalf("no renewal: %q", f.seen())
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	got := f.seen()
	if tail := strings.Join(got[len(got)-2:], "|"); tail != "Delete UDP 40000|Delete TCP 40000" {
		t.Errorf("actions %q", got)
	}
}

// TestMapPortUPnPFallbacks: a router that only grants permanent leases and
// whose port is taken gets a permanent mapping on another port.
func TestMapPortUPnPFallbacks(t *testing.T) {
	t.Parallel()
	f := newFakeIGD(t)
	f.permanentOnly, f.taken = true, 40000
	m, err := Map(context.Background(), Config{
		LocalPort: 40000, Gateway: portMapLoopback, UPnPRootURL: f.rootURL(), DisableNATPMP: true, Timeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := m.State()
	if s.Protocol != UPnP || !s.Expires.IsZero() || s.External.Port() == 40000 || s.ExternalTCP.IsValid() {
		t.Fatalf("state %+v", s)
	}
	got := f.seen()
	if len(got) != 1 || got[0] != fmt.Sprintf("Add UDP %d lease 0 client 127.0.0.1", s.External.Port()) {
		t.Errorf("actions %q", got)
	}
	if !strings.Contains(s.String(), "permanent") {
		t.Errorf("String() = %q", s.String())
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if got := f.seen(); got[len(got)-1] != fmt.Sprintf("Delete UDP %d", s.External.Port()) {
		t.Errorf("actions %q", got)
	}
}

// TestMapPortUPnPSSDP finds the fake IGD with an SSDP search sent to a fake
// SSDP responder on portMapLoopback (unicast; tests never multicast).
func TestMapPortUPnPSSDP(t *testing.T) {
	t.Parallel()
	f := newFakeIGD(t)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req := string(buf[:n])
			if !strings.HasPrefix(req, "M-SEARCH * HTTP/1.1\r\n") {
				continue
			}
			st := ""
			for _, line := range strings.Split(req, "\r\n") {
				if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "ST") {
					st = strings.TrimSpace(v)
				}
			}
			if !strings.HasSuffix(st, "InternetGatewayDevice:1") {
				continue
			}
			resp := "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: " + st + "\r\nUSN: uuid:00000000-0000-0000-0000-000000000001::" + st +
				"\r\nLOCATION: " + f.rootURL() + "\r\nEXT:\r\nSERVER: fake UPnP/1.1\r\n\r\n"
			pc.WriteTo([]byte(resp), from)
		}
	}()
	defer func() { pc.Close(); wg.Wait() }()
	ssdpAddr, _ := addrPortOf(pc.LocalAddr())

	m, err := Map(context.Background(), Config{
		LocalPort: 40001, Gateway: portMapLoopback, LocalIP: portMapLoopback, SSDPAddr: ssdpAddr, DisableNATPMP: true, Timeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if s := m.State(); s.Protocol != UPnP || s.External != netip.MustParseAddrPort("198.51.100.77:40001") {
		t.Fatalf("state %+v", s)
	}
}

// TestMapPortNothingWorks: no NAT-PMP answer and a UPnP device that is not
// the gateway give no mapping, an error naming both, and a mapper that
// still closes cleanly.
func TestMapPortNothingWorks(t *testing.T) {
	t.Parallel()
	f := newFakeIGD(t)
	// 127.0.0.2 runs no NAT-PMP (the port is closed, so the answer is an
	// immediate ICMP error) and is not where the IGD is.
	m, err := Map(context.Background(), Config{
		LocalPort: 40002, Gateway: netip.MustParseAddr("127.0.0.2"), LocalIP: portMapLoopback, UPnPRootURL: f.rootURL(),
		Timeout: 500 * time.Millisecond, RetryInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := m.State()
	if s.Protocol != None || s.External.IsValid() || !errors.Is(s.LastError, ErrNoIGD) ||
		!strings.Contains(s.LastError.Error(), "nat-pmp") || !strings.Contains(s.LastError.Error(), "not at the gateway") {
		t.Errorf("state %+v", s)
	}
	if !strings.HasPrefix(s.String(), "no port mapping: ") {
		t.Errorf("String() = %q", s.String())
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if got := f.seen(); len(got) != 0 {
		t.Errorf("the IGD that is not the gateway was asked: %q", got)
	}
}
