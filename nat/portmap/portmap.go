package portmap

// This file holds port mapping: asking the home router to forward a public
// port to this host, so that peers can reach it without hole punching.
//
// Map tries NAT-PMP (RFC 6886, through github.com/jackpal/go-nat-pmp)
// and then UPnP IGD (IGDv1 and IGDv2 WANIPConnection, and WANPPPConnection,
// through github.com/huin/goupnp) against the default gateway, maps a UDP
// port (and optionally the same TCP port), renews the mapping at half its
// lifetime, retries when the router forgets it, and deletes it on Close.
// State reports what it achieved, for `canopy natcheck` and for the
// promotion policy, which still needs a dial-back (reach.Tracker) to trust
// it: a router can accept a mapping behind a second, carrier-grade NAT that
// makes it useless.
//
// Only the default gateway is asked: a UPnP device elsewhere on the LAN
// cannot forward the router's ports. Everything that touches the network is
// injectable (gateway, local address, UPnP description URL, SSDP target),
// so that tests can run against fakes on loopback and against a real
// miniupnpd in the NAT lab. The libraries open their own sockets (go-nat-pmp
// one per request, goupnp's SSDP client, net/http's dialer), in the network
// namespace of whichever thread runs them and with no dialer to inject: a
// NAT-lab test therefore runs the mapper inside the home host's namespace by
// re-executing the test binary there (natlab's Host.Command), rather than
// with Host.Do, which moves only the calling thread.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/httpu"
	"github.com/huin/goupnp/soap"
	"github.com/huin/goupnp/ssdp"
	natpmp "github.com/jackpal/go-nat-pmp"
	"go.uber.org/zap"
)

// Port mapping protocols, as reported in State.Protocol.
const (
	NATPMP = "nat-pmp"
	UPnP   = "upnp-igd"
	None   = "none"
)

// portMapMaxXML bounds a UPnP device description or SOAP response read from
// the router: real ones are a few KiB, and a router is not trusted to stop.
const portMapMaxXML = 256 << 10

// ssdpMulticast is the SSDP discovery address (UPnP Device Architecture
// 1.1 §1.3).
var ssdpMulticast = netip.MustParseAddrPort("239.255.255.250:1900")

// Config configures Map. LocalPort is required; the zero value of
// every other field means its default (DefaultConfig).
type Config struct {
	// LocalPort is the local UDP port to forward (and TCP port, with TCP).
	// Required.
	LocalPort uint16
	// TCP also maps the same local TCP port, for the control-link listener.
	TCP bool
	// Lifetime is the mapping lifetime asked for (default 2 h, RFC 6886
	// §3.3's recommendation). Mappings are renewed at half the lifetime the
	// router grants, so a crashed node's mapping disappears within it.
	Lifetime time.Duration
	// Timeout bounds each exchange with the router (default 3 s): a NAT-PMP
	// request with its retransmissions, an SSDP search, an HTTP request.
	Timeout time.Duration
	// RetryInterval is how long to wait after a failed attempt before
	// trying again (default 5 min): routers reboot, users turn UPnP on.
	RetryInterval time.Duration
	// PermanentRefresh is how often a permanent UPnP mapping (one the
	// router would only grant without a lease) is re-added to notice a
	// router that lost it (default 20 min).
	PermanentRefresh time.Duration
	// Gateway is the router to ask. The zero value means DefaultGateway().
	Gateway netip.Addr
	// LocalIP is this host's address on the gateway's network, which UPnP
	// needs as the mapping's internal client. The zero value means the
	// source address of the route to the gateway.
	LocalIP netip.Addr
	// UPnPRootURL is the router's UPnP device description URL (e.g.
	// "http://192.168.1.1:5000/rootDesc.xml"). Empty means discover it with
	// SSDP. Its host must be the gateway.
	UPnPRootURL string
	// SSDPAddr is where SSDP searches go. The zero value means the SSDP
	// multicast group, sent from LocalIP; a unicast address (the gateway's
	// port 1900, or a fake in tests) is allowed too (UPnP DA 1.1 §1.3.2).
	SSDPAddr netip.AddrPort
	// DisableNATPMP and DisableUPnP skip a protocol.
	DisableNATPMP, DisableUPnP bool
	// Description names the mapping in the router's UPnP table (default
	// "canopy").
	Description string
	// Logger receives a line per mapping change and failure. Nil discards
	// them.
	Logger *zap.Logger
}

// Defaults of Config, each explained at its field.
const (
	DefaultLifetime         = 2 * time.Hour
	DefaultTimeout          = 3 * time.Second
	DefaultRetryInterval    = 5 * time.Minute
	DefaultPermanentRefresh = 20 * time.Minute
	DefaultDescription      = "canopy"
)

// DefaultConfig returns the defaults; the caller sets LocalPort.
func DefaultConfig() Config {
	return Config{
		Lifetime:         DefaultLifetime,
		Timeout:          DefaultTimeout,
		RetryInterval:    DefaultRetryInterval,
		PermanentRefresh: DefaultPermanentRefresh,
		Description:      DefaultDescription,
	}
}

// withDefaults fills the zero fields of c from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Lifetime <= 0 {
		c.Lifetime = d.Lifetime
	}
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = d.RetryInterval
	}
	if c.PermanentRefresh <= 0 {
		c.PermanentRefresh = d.PermanentRefresh
	}
	if c.Description == "" {
		c.Description = d.Description
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Validate reports a configuration Map refuses.
func (c Config) Validate() error {
	var errs []error
	if c.LocalPort == 0 {
		errs = append(errs, fmt.Errorf("%w: LocalPort: no local port", ErrConfig))
	}
	if c.DisableNATPMP && c.DisableUPnP {
		errs = append(errs, fmt.Errorf("%w: DisableNATPMP, DisableUPnP: both protocols disabled", ErrConfig))
	}
	if c.UPnPRootURL != "" {
		if u, err := url.Parse(c.UPnPRootURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%w: UPnPRootURL: bad UPnP description URL %q", ErrConfig, c.UPnPRootURL))
		}
	}
	return errors.Join(errs...)
}

// State is what a Mapper has achieved.
type State struct {
	// Protocol is NATPMP, UPnP or None.
	Protocol string
	// External is the public address the router forwards to LocalPort/UDP;
	// invalid when nothing is mapped.
	External netip.AddrPort
	// ExternalTCP is the same for TCP when Config.TCP is set.
	ExternalTCP netip.AddrPort
	// Gateway is the router that was asked.
	Gateway netip.Addr
	// Expires is when the router drops the mapping unless renewed; zero
	// for a permanent UPnP mapping (deleted on Close).
	Expires time.Time
	// LastError is the most recent failure (of either protocol, joined),
	// nil after a success.
	LastError error
}

// String renders the state on one line, for `canopy natcheck`.
func (s State) String() string {
	if s.Protocol == "" || s.Protocol == None {
		if s.LastError != nil {
			return "no port mapping: " + s.LastError.Error()
		}
		return "no port mapping"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s via %s: udp %s", s.Protocol, s.Gateway, s.External)
	if s.ExternalTCP.IsValid() {
		fmt.Fprintf(&b, ", tcp %s", s.ExternalTCP)
	}
	if s.Expires.IsZero() {
		b.WriteString(", permanent until closed")
	} else {
		fmt.Fprintf(&b, ", expires %s", s.Expires.Format(time.RFC3339))
	}
	return b.String()
}

// Mapper keeps a port mapping alive. It owns one goroutine that renews
// the mapping (or retries getting one); Close stops it, waits for it and
// deletes the mapping.
type Mapper struct {
	cfg Config
	log *zap.Logger

	// mu guards state, which State returns.
	mu    sync.Mutex
	state State

	// current is the mapping in place and the protocol that made it. It is
	// owned by whoever runs attempts: Map before the goroutine starts,
	// the goroutine, then Close after the goroutine has ended.
	current *portMapping

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// portMapping is a mapping in place.
type portMapping struct {
	method   portMapMethod
	gateway  netip.Addr
	udp, tcp netip.AddrPort // external addresses; tcp invalid without TCP
	lifetime time.Duration  // granted; 0 = permanent
}

// portMapMethod is one protocol's way to map and unmap a port.
type portMapMethod interface {
	name() string
	// mapPort adds or renews the mapping of internal port (proto "udp" or
	// "tcp"), asking for external port ext (0: any) and lifetime. It
	// returns the external address and the lifetime granted (0: permanent).
	mapPort(ctx context.Context, proto string, internal, ext uint16, lifetime time.Duration) (netip.AddrPort, time.Duration, error)
	// unmapPort deletes the mapping of internal port to external port ext.
	unmapPort(ctx context.Context, proto string, internal, ext uint16) error
}

// Map makes a first attempt at mapping cfg.LocalPort (bounded by
// cfg.Timeout per exchange; ctx can cut it short) and returns a Mapper
// that keeps renewing or retrying in the background. Failing to map is not
// an error — State says what happened — only a bad configuration is. The
// caller must Close the mapper.
func Map(ctx context.Context, cfg Config) (*Mapper, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Mapper{cfg: cfg, log: cfg.Logger, done: make(chan struct{})}
	next := m.attempt(ctx)
	loopCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go m.loop(loopCtx, next)
	return m, nil
}

// State returns what the mapper has achieved so far.
func (m *Mapper) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// Close stops renewing, waits for the goroutine and deletes the mapping
// from the router (bounded by Timeout per exchange). It is idempotent; the
// error is the deletion's.
func (m *Mapper) Close() error {
	m.closeOnce.Do(func() {
		m.cancel()
		<-m.done
		if m.current == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*m.cfg.Timeout)
		defer cancel()
		m.closeErr = m.unmap(ctx, m.current)
		m.current = nil
		m.setState(State{Protocol: None, LastError: m.closeErr})
	})
	return m.closeErr
}

// loop renews or retries after each delay until ctx ends.
func (m *Mapper) loop(ctx context.Context, delay time.Duration) {
	defer close(m.done)
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(m.attempt(ctx))
	}
}

// attempt renews the current mapping, or makes a new one with the first
// protocol that works, and returns how long to wait before the next attempt.
func (m *Mapper) attempt(ctx context.Context) time.Duration {
	if cur := m.current; cur != nil {
		if err := m.mapAll(ctx, cur.method, cur); err == nil {
			m.publish(cur)
			return renewDelay(cur.lifetime, m.cfg.PermanentRefresh)
		} else if ctx.Err() != nil {
			return m.cfg.RetryInterval
		} else {
			m.log.Info("port mapping renewal failed; mapping again", zap.String("protocol", cur.method.name()), zap.Error(err))
			m.current = nil
		}
	}

	gw := m.cfg.Gateway
	if !gw.IsValid() {
		var err error
		if gw, err = DefaultGateway(); err != nil {
			m.setState(State{Protocol: None, LastError: err})
			return m.cfg.RetryInterval
		}
	}
	local := m.cfg.LocalIP
	if !local.IsValid() {
		var err error
		if local, err = routeSource(gw); err != nil {
			m.setState(State{Protocol: None, Gateway: gw, LastError: err})
			return m.cfg.RetryInterval
		}
	}

	var errs []error
	for _, mk := range m.methods() {
		if ctx.Err() != nil {
			break
		}
		method, err := mk(ctx, gw, local)
		if err == nil {
			pm := &portMapping{method: method, gateway: gw}
			if err = m.mapAll(ctx, method, pm); err == nil {
				m.current = pm
				m.publish(pm)
				return renewDelay(pm.lifetime, m.cfg.PermanentRefresh)
			}
			// Do not leave half a mapping (UDP without TCP) behind.
			if pm.udp.IsValid() {
				uctx, cancel := context.WithTimeout(context.Background(), m.cfg.Timeout)
				_ = m.unmap(uctx, pm)
				cancel()
			}
		}
		errs = append(errs, err)
	}
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	err := errors.Join(errs...)
	m.log.Info("no port mapping", zap.Stringer("gateway", gw), zap.Error(err))
	m.setState(State{Protocol: None, Gateway: gw, LastError: err})
	return m.cfg.RetryInterval
}

// methods lists the enabled protocols in the order they are tried: NAT-PMP
// first because it is one datagram each way, UPnP needing a multicast
// search, an HTTP fetch and SOAP calls.
func (m *Mapper) methods() []func(context.Context, netip.Addr, netip.Addr) (portMapMethod, error) {
	var out []func(context.Context, netip.Addr, netip.Addr) (portMapMethod, error)
	if !m.cfg.DisableNATPMP {
		out = append(out, func(_ context.Context, gw, _ netip.Addr) (portMapMethod, error) {
			return newNATPMPMethod(gw, m.cfg.Timeout)
		})
	}
	if !m.cfg.DisableUPnP {
		out = append(out, func(ctx context.Context, gw, local netip.Addr) (portMapMethod, error) {
			return newUPnPMethod(ctx, m.cfg, gw, local)
		})
	}
	return out
}

// mapAll maps (or renews) UDP and, if configured, TCP into pm, asking for
// the external ports pm already has, else for LocalPort.
func (m *Mapper) mapAll(ctx context.Context, method portMapMethod, pm *portMapping) error {
	want := func(a netip.AddrPort) uint16 {
		if a.IsValid() {
			return a.Port()
		}
		return m.cfg.LocalPort
	}
	udp, life, err := method.mapPort(ctx, "udp", m.cfg.LocalPort, want(pm.udp), m.cfg.Lifetime)
	if err != nil {
		return fmt.Errorf("%s: map udp port %d: %w", method.name(), m.cfg.LocalPort, err)
	}
	pm.udp, pm.lifetime = udp, life
	if m.cfg.TCP {
		tcp, tlife, err := method.mapPort(ctx, "tcp", m.cfg.LocalPort, want(pm.tcp), m.cfg.Lifetime)
		if err != nil {
			return fmt.Errorf("%s: map tcp port %d: %w", method.name(), m.cfg.LocalPort, err)
		}
		pm.tcp = tcp
		if tlife != 0 && (pm.lifetime == 0 || tlife < pm.lifetime) {
			pm.lifetime = tlife
		}
	}
	return nil
}

// unmap deletes pm's mappings.
func (m *Mapper) unmap(ctx context.Context, pm *portMapping) error {
	var errs []error
	if pm.udp.IsValid() {
		if err := pm.method.unmapPort(ctx, "udp", m.cfg.LocalPort, pm.udp.Port()); err != nil {
			errs = append(errs, fmt.Errorf("%s: delete udp mapping: %w", pm.method.name(), err))
		}
	}
	if pm.tcp.IsValid() {
		if err := pm.method.unmapPort(ctx, "tcp", m.cfg.LocalPort, pm.tcp.Port()); err != nil {
			errs = append(errs, fmt.Errorf("%s: delete tcp mapping: %w", pm.method.name(), err))
		}
	}
	return errors.Join(errs...)
}

// publish records a mapping in place as the state.
func (m *Mapper) publish(pm *portMapping) {
	s := State{Protocol: pm.method.name(), External: pm.udp, ExternalTCP: pm.tcp, Gateway: pm.gateway}
	if pm.lifetime > 0 {
		s.Expires = time.Now().Add(pm.lifetime)
	}
	if old := m.State(); old.External != s.External || old.Protocol != s.Protocol {
		m.log.Info("port mapped", zap.String("protocol", s.Protocol), zap.Stringer("external", s.External), zap.Duration("lifetime", pm.lifetime))
	}
	m.setState(s)
}

func (m *Mapper) setState(s State) {
	m.mu.Lock()
	m.state = s
	m.mu.Unlock()
}

// renewDelay is when to renew a mapping granted for lifetime: at half of
// it, as RFC 6886 §3.3 recommends, so that one lost renewal still leaves
// time for another; a permanent mapping is refreshed every refresh. Never
// sooner than a second, whatever a router grants.
func renewDelay(lifetime, refresh time.Duration) time.Duration {
	d := lifetime / 2
	if lifetime == 0 {
		d = refresh
	}
	return max(d, time.Second)
}

// natPMPMethod maps ports with NAT-PMP.
type natPMPMethod struct {
	client *natpmp.Client
}

func newNATPMPMethod(gw netip.Addr, timeout time.Duration) (portMapMethod, error) {
	if !gw.Is4() {
		return nil, fmt.Errorf("nat-pmp: gateway %s is not IPv4", gw)
	}
	return &natPMPMethod{client: natpmp.NewClientWithTimeout(gw.AsSlice(), timeout)}, nil
}

func (*natPMPMethod) name() string { return NATPMP }

// mapPort asks for the external address and then the mapping. The library
// retransmits RFC 6886 style within its timeout; it cannot be cancelled, so
// ctx is only checked between requests.
func (n *natPMPMethod) mapPort(ctx context.Context, proto string, internal, ext uint16, lifetime time.Duration) (netip.AddrPort, time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return netip.AddrPort{}, 0, err
	}
	addr, err := n.client.GetExternalAddress()
	if err != nil {
		return netip.AddrPort{}, 0, fmt.Errorf("external address: %w", err)
	}
	ip := netip.AddrFrom4(addr.ExternalIPAddress)
	if ip.IsUnspecified() {
		return netip.AddrPort{}, 0, errors.New("the router has no external address (RFC 6886 result 3)")
	}
	if err := ctx.Err(); err != nil {
		return netip.AddrPort{}, 0, err
	}
	secs := int(lifetime / time.Second)
	r, err := n.client.AddPortMapping(proto, int(internal), int(ext), secs)
	if err != nil {
		return netip.AddrPort{}, 0, err
	}
	if r.InternalPort != internal || r.MappedExternalPort == 0 || r.PortMappingLifetimeInSeconds == 0 {
		return netip.AddrPort{}, 0, fmt.Errorf("unusable answer: internal port %d, external port %d, lifetime %d s",
			r.InternalPort, r.MappedExternalPort, r.PortMappingLifetimeInSeconds)
	}
	return netip.AddrPortFrom(ip, r.MappedExternalPort), time.Duration(r.PortMappingLifetimeInSeconds) * time.Second, nil
}

// unmapPort deletes with a zero lifetime and external port (RFC 6886 §3.4).
func (n *natPMPMethod) unmapPort(ctx context.Context, proto string, internal, _ uint16) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := n.client.AddPortMapping(proto, int(internal), 0, 0)
	return err
}

// igdConnection is what the three IGD connection services
// (WANIPConnection:1 and :2, WANPPPConnection:1) have in common.
type igdConnection interface {
	AddPortMappingCtx(ctx context.Context, remoteHost string, extPort uint16, proto string, intPort uint16, intClient string, enabled bool, desc string, lease uint32) error
	DeletePortMappingCtx(ctx context.Context, remoteHost string, extPort uint16, proto string) error
	GetExternalIPAddressCtx(ctx context.Context) (string, error)
}

// UPnP IGD error codes (WANIPConnection:2 §2.5).
const (
	upnpConflictInMappingEntry       = 718
	upnpOnlyPermanentLeasesSupported = 725
)

// upnpMethod maps ports with a UPnP IGD connection service.
type upnpMethod struct {
	conn    igdConnection
	service string
	local   netip.Addr
	desc    string
	timeout time.Duration
}

func (*upnpMethod) name() string { return UPnP }

// newUPnPMethod finds the gateway's IGD (at cfg.UPnPRootURL, or by SSDP)
// and the best connection service it offers.
func newUPnPMethod(ctx context.Context, cfg Config, gw, local netip.Addr) (portMapMethod, error) {
	// A few requests an hour go to the router: keeping connections alive
	// gains nothing and would leave idle connections (and their
	// goroutines) behind when the mapper closes.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	hc := &http.Client{Timeout: cfg.Timeout, Transport: limitedBodies{tr, portMapMaxXML}}
	var locations []string
	if cfg.UPnPRootURL != "" {
		locations = []string{cfg.UPnPRootURL}
	} else {
		var err error
		if locations, err = ssdpSearch(ctx, cfg, gw, local); err != nil {
			return nil, err
		}
	}
	var errs []error
	for _, loc := range locations {
		u, err := url.Parse(loc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if host, err := netip.ParseAddr(u.Hostname()); err != nil || host.Unmap() != gw {
			errs = append(errs, fmt.Errorf("upnp: ignoring %s: not at the gateway %s", loc, gw))
			continue
		}
		root, err := fetchRootDevice(ctx, hc, u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if m := pickIGDConnection(root, u, hc); m != nil {
			m.local, m.desc, m.timeout = local, cfg.Description, cfg.Timeout
			return m, nil
		}
		errs = append(errs, fmt.Errorf("upnp: %s offers no WANIPConnection or WANPPPConnection", loc))
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("%w %s", ErrNoIGD, gw)
	}
	return nil, fmt.Errorf("%w %s: %w", ErrNoIGD, gw, errors.Join(errs...))
}

// pickIGDConnection returns a method for the best connection service of
// root: WANIPConnection:2 (IGDv2), then WANIPConnection:1 (IGDv1 and IGDv2
// routers), then WANPPPConnection:1 (PPPoE routers). goupnp finds the
// services anywhere in the device tree, so IGDv1 and IGDv2 devices alike
// are covered. Each SOAP client gets hc, whose bodies are bounded.
func pickIGDConnection(root *goupnp.RootDevice, loc *url.URL, hc *http.Client) *upnpMethod {
	setClient := func(sc *goupnp.ServiceClient) { sc.SOAPClient.HTTPClient = *hc }
	if cs, err := internetgateway2.NewWANIPConnection2ClientsFromRootDevice(root, loc); err == nil && len(cs) > 0 {
		setClient(&cs[0].ServiceClient)
		return &upnpMethod{conn: cs[0], service: internetgateway2.URN_WANIPConnection_2}
	}
	if cs, err := internetgateway2.NewWANIPConnection1ClientsFromRootDevice(root, loc); err == nil && len(cs) > 0 {
		setClient(&cs[0].ServiceClient)
		return &upnpMethod{conn: cs[0], service: internetgateway2.URN_WANIPConnection_1}
	}
	if cs, err := internetgateway2.NewWANPPPConnection1ClientsFromRootDevice(root, loc); err == nil && len(cs) > 0 {
		setClient(&cs[0].ServiceClient)
		return &upnpMethod{conn: cs[0], service: internetgateway2.URN_WANPPPConnection_1}
	}
	return nil
}

// mapPort adds (or refreshes: AddPortMapping of an existing entry
// overwrites it) a mapping. A router that only supports permanent leases
// gets one, which Close deletes; a taken external port is replaced by a
// random one, a few times.
func (u *upnpMethod) mapPort(ctx context.Context, proto string, internal, ext uint16, lifetime time.Duration) (netip.AddrPort, time.Duration, error) {
	ipStr, err := u.conn.GetExternalIPAddressCtx(ctx)
	if err != nil {
		return netip.AddrPort{}, 0, fmt.Errorf("external address: %w", err)
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(ipStr))
	if err != nil || ip.IsUnspecified() {
		return netip.AddrPort{}, 0, fmt.Errorf("the router reports no usable external address (%q)", ipStr)
	}
	lease := uint32(min(int64(lifetime/time.Second), 604800)) // IGDv2 caps leases at a week
	const tries = 4
	for try := range tries {
		err = u.conn.AddPortMappingCtx(ctx, "", ext, strings.ToUpper(proto), internal, u.local.String(), true, u.desc, lease)
		if upnpErrorCode(err) == upnpOnlyPermanentLeasesSupported && lease != 0 {
			lease = 0
			err = u.conn.AddPortMappingCtx(ctx, "", ext, strings.ToUpper(proto), internal, u.local.String(), true, u.desc, 0)
		}
		if err == nil {
			return netip.AddrPortFrom(ip.Unmap(), ext), time.Duration(lease) * time.Second, nil
		}
		if upnpErrorCode(err) != upnpConflictInMappingEntry || try == tries-1 {
			break
		}
		ext = uint16(1024 + rand.IntN(65536-1024)) // #nosec G404 -- any free port will do
	}
	return netip.AddrPort{}, 0, fmt.Errorf("%s AddPortMapping: %w", u.service, err)
}

func (u *upnpMethod) unmapPort(ctx context.Context, proto string, _, ext uint16) error {
	return u.conn.DeletePortMappingCtx(ctx, "", ext, strings.ToUpper(proto))
}

// upnpErrorCode extracts the UPnP error code of a SOAP fault, or 0.
func upnpErrorCode(err error) int {
	var fault *soap.SOAPFaultError
	if errors.As(err, &fault) {
		return fault.Detail.UPnPError.Errorcode
	}
	return 0
}

// fetchRootDevice reads a UPnP device description from loc, as
// goupnp.DeviceByURLCtx does but with hc, whose bodies are bounded.
func fetchRootDevice(ctx context.Context, hc *http.Client, loc *url.URL) (*goupnp.RootDevice, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("upnp: fetch %s: %w", loc, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("upnp: fetch %s: %s", loc, resp.Status)
	}
	root := new(goupnp.RootDevice)
	dec := xml.NewDecoder(resp.Body)
	dec.DefaultSpace = goupnp.DeviceXMLNamespace
	if err := dec.Decode(root); err != nil {
		return nil, fmt.Errorf("upnp: decode %s: %w", loc, err)
	}
	base := loc
	if root.URLBaseStr != "" {
		if base, err = url.Parse(root.URLBaseStr); err != nil {
			return nil, fmt.Errorf("upnp: %s: bad URLBase: %w", loc, err)
		}
	}
	root.SetURLBase(base)
	return root, nil
}

// ssdpSearch looks for IGDs (device types IGD:1 and IGD:2, searched at
// once) and returns the description URLs of those at the gateway.
func ssdpSearch(ctx context.Context, cfg Config, gw, local netip.Addr) ([]string, error) {
	target := cfg.SSDPAddr
	if !target.IsValid() {
		target = ssdpMulticast
	}
	// The search waits for its whole duration (answers come in at random
	// within MX seconds), and SSDP's MX must be at least one second.
	wait := max(cfg.Timeout, 1500*time.Millisecond)
	sctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()

	types := []string{"urn:schemas-upnp-org:device:InternetGatewayDevice:1", "urn:schemas-upnp-org:device:InternetGatewayDevice:2"}
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		found []string
		errs  []error
	)
	for _, st := range types {
		// The socket is opened here, in the caller's goroutine, so that a
		// caller running in another network namespace (the NAT lab's
		// Host.Do) gets it there.
		c, err := httpu.NewHTTPUClientAddr(local.String())
		if err != nil {
			errs = append(errs, fmt.Errorf("upnp: SSDP socket on %s: %w", local, err))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			resps, err := ssdp.RawSearch(sctx, ssdpTo{c, target.String()}, st, 2)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("upnp: SSDP search to %s: %w", target, err))
				return
			}
			for _, r := range resps {
				loc, err := r.Location()
				if err != nil {
					continue
				}
				if host, err := netip.ParseAddr(loc.Hostname()); err != nil || host.Unmap() != gw {
					continue
				}
				s := loc.String()
				dup := false
				for _, f := range found {
					dup = dup || f == s
				}
				if !dup {
					found = append(found, s)
				}
			}
		}()
	}
	wg.Wait()
	if len(found) == 0 {
		errs = append(errs, fmt.Errorf("no SSDP answer from the gateway to %s", target))
		return nil, fmt.Errorf("%w %s: %w", ErrNoIGD, gw, errors.Join(errs...))
	}
	return found, nil
}

// ssdpTo sends goupnp's SSDP searches to addr instead of the multicast
// group goupnp hard-codes.
type ssdpTo struct {
	c    *httpu.HTTPUClient
	addr string
}

// DoWithContext sends req to s.addr (httpu.ClientInterfaceCtx).
func (s ssdpTo) DoWithContext(req *http.Request, numSends int) ([]*http.Response, error) {
	r := req.Clone(req.Context())
	r.Host = s.addr
	r.Header["HOST"] = []string{s.addr}
	return s.c.DoWithContext(r, numSends)
}

// limitedBodies caps every response body read through it.
type limitedBodies struct {
	base  http.RoundTripper
	limit int64
}

// RoundTrip runs req on the base transport and caps the response body.
func (l limitedBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = limitedBody{io.LimitReader(resp.Body, l.limit), resp.Body}
	return resp, nil
}

type limitedBody struct {
	io.Reader
	io.Closer
}

// routeSource returns the local address the host would send from to reach
// gw. Connecting a UDP socket picks the route without sending anything.
func routeSource(gw netip.Addr) (netip.Addr, error) {
	network := "udp4"
	if gw.Is6() {
		network = "udp6"
	}
	c, err := net.DialUDP(network, nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, 9)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("portmap: no route to gateway %s: %w", gw, err)
	}
	defer c.Close()
	ap, ok := addrPortOf(c.LocalAddr())
	if !ok || ap.Addr().IsUnspecified() {
		return netip.Addr{}, fmt.Errorf("portmap: no local address toward gateway %s", gw)
	}
	return ap.Addr(), nil
}

// DefaultGateway returns the IPv4 default gateway from the kernel's routing
// table (/proc/net/route; Linux only, elsewhere it returns ErrNoGateway).
// Of several default routes the one with the lowest metric wins.
func DefaultGateway() (netip.Addr, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %w", ErrNoGateway, err)
	}
	defer f.Close()
	return parseProcNetRoute(io.LimitReader(f, 1<<20))
}

// parseProcNetRoute picks the default gateway out of /proc/net/route: lines
// of "Iface Destination Gateway Flags RefCnt Use Metric Mask ...", addresses
// in hex, little-endian (host order on the little-endian machines Linux
// mostly runs on; the kernel prints the raw 32-bit value).
func parseProcNetRoute(r io.Reader) (netip.Addr, error) {
	const (
		rtfUp      = 0x1
		rtfGateway = 0x2
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), 4096)
	var best netip.Addr
	bestMetric := uint64(1<<64 - 1)
	first := true
	for sc.Scan() {
		if first { // header
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		flags, err := strconv.ParseUint(f[3], 16, 16)
		if err != nil || flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway {
			continue
		}
		raw, err := hex.DecodeString(f[2])
		if err != nil || len(raw) != 4 {
			continue
		}
		metric, err := strconv.ParseUint(f[6], 10, 64)
		if err != nil {
			continue
		}
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], binary.BigEndian.Uint32(raw))
		gw := netip.AddrFrom4(b)
		if gw.IsUnspecified() {
			continue
		}
		if metric < bestMetric {
			best, bestMetric = gw, metric
		}
	}
	if err := sc.Err(); err != nil {
		return netip.Addr{}, fmt.Errorf("%w: reading the routing table: %w", ErrNoGateway, err)
	}
	if !best.IsValid() {
		return netip.Addr{}, fmt.Errorf("%w: no default route", ErrNoGateway)
	}
	return best, nil
}

// addrPortOf returns the address of a UDP socket address, unmapped.
func addrPortOf(a net.Addr) (netip.AddrPort, bool) {
	u, ok := a.(*net.UDPAddr)
	if !ok || u == nil {
		return netip.AddrPort{}, false
	}
	ap := u.AddrPort()
	if !ap.IsValid() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}
