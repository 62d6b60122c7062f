package natlab

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/canopy-p2p/canopy/nat/stun"
)

// EnvVar is the environment variable that decides what a test does when the
// lab cannot run here (not root, no `ip` or `nft`, no permission to create
// network namespaces):
//
//   - unset or empty: the test is skipped, with the reason.
//   - "require": the test fails instead. CI sets this, so that a lost
//     capability is a red build rather than a silently skipped NAT matrix.
//   - "off": lab tests are always skipped, even as root.
const EnvVar = "CANOPY_NATLAB"

// Address plan. Every address lives only inside the lab's namespaces; the
// "internet" uses the RFC 5737 documentation ranges, homes use RFC 1918
// ranges and the carrier network of CGNAT uses RFC 6598's 100.64.0.0/10.
var (
	// publicPool gives the addresses of public hosts.
	publicPool = []addrRange{{netip.MustParseAddr("203.0.113.2"), 253}, {netip.MustParseAddr("198.51.100.2"), 126}}
	// wanPool gives the WAN addresses of home routers (outer router for CGNAT).
	wanPool = []addrRange{{netip.MustParseAddr("192.0.2.2"), 253}, {netip.MustParseAddr("198.51.100.128"), 127}}
)

// maxHomes bounds the homes of one lab: home i gets the LAN 192.168.i.0/24
// and, for CGNAT, the carrier network 100.64.i.0/24.
const maxHomes = 254

// addrRange is n consecutive addresses from first.
type addrRange struct {
	first netip.Addr
	n     int
}

// Lab is a set of network namespaces that make up a small internet: a bridge
// (the "internet segment") in an internet namespace, public hosts on it, and
// homes behind NAT routers built with nftables. See the package doc.
//
// A Lab's methods may be called from several goroutines, but the methods
// that build hosts report failures with the testing.TB given to New, so call
// them from that test's goroutine (testing's FailNow rule). Hosts, once
// built, may be used from any goroutine.
type Lab struct {
	tb     testing.TB
	prefix string // namespace names start with prefix+"." or prefix+"-"
	dir    string // miniupnpd configurations and logs
	ipPath string
	nft    string

	// mu guards everything below: the address allocators and the record of
	// what exists, which Close walks.
	mu        sync.Mutex
	closed    bool
	inet      string           // the internet namespace
	nsIDs     map[nsID]string  // every namespace created, by identity
	nsNames   []string         // and by name, in creation order
	hosts     map[string]*Host // by name
	daemons   []*upnpDaemon    // miniupnpd processes started
	wires     []*wire          // links shaped by WithNetem
	stun      *stun.Server     // the RFC 5780 STUN server miniupnpd checks its WAN with
	nextPub   int              // index into publicPool
	nextWAN   int              // index into wanPool
	nextHome  int              // homes built so far
	nextPort  int              // bridge ports made so far
	closeOnce sync.Once
	closeErr  error
}

// Available reports why the lab cannot run on this machine, or nil if it
// probably can: it needs root and iproute2's `ip` and nftables' `nft`.
// Whether this kernel lets it create network namespaces is only known when
// New tries.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, veth pairs, nftables)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := findTool(tool); err != nil {
			return fmt.Errorf("%v: install iproute2 and nftables (.ci/natlab-deps)", err)
		}
	}
	return nil
}

// skipUnlessAvailable skips (or fails) the test as New does when the lab
// cannot run here or EnvVar is "off".
func skipUnlessAvailable(tb testing.TB) {
	tb.Helper()
	if os.Getenv(EnvVar) == "off" {
		tb.Skipf("natlab: %s=off", EnvVar)
	}
	if err := Available(); err != nil {
		unavailable(tb, err)
	}
}

// unavailable skips the test, or fails it when EnvVar says the lab must run.
func unavailable(tb testing.TB, err error) {
	tb.Helper()
	if os.Getenv(EnvVar) == "require" {
		tb.Fatalf("natlab: %v (%s=require: the NAT lab must run here)", err, EnvVar)
	}
	tb.Skipf("natlab: %v; skipping the NAT lab test (set %s=require to make this a failure)", err, EnvVar)
}

// New creates an empty lab, the internet segment only, and registers a
// t.Cleanup that removes everything the lab built: it kills miniupnpd and
// every other process still running in a lab namespace, then deletes the
// namespaces (which takes their interfaces and nftables rules with them).
//
// New skips the test when the lab cannot run here (see Available), or fails
// it when the environment variable CANOPY_NATLAB is "require".
//
// The lab never touches the network configuration of the machine's own
// namespace: every interface is created inside a lab namespace (a veth pair
// is made in one lab namespace with its peer sent straight into another), and
// every address and rule lives there too.
func New(tb testing.TB) *Lab {
	tb.Helper()
	skipUnlessAvailable(tb)
	sweepStale()
	var suffix [2]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		tb.Fatalf("natlab: %v", err)
	}
	l := &Lab{
		tb:      tb,
		prefix:  fmt.Sprintf("natlab-%d-%s", os.Getpid(), hex.EncodeToString(suffix[:])),
		nsIDs:   map[nsID]string{},
		hosts:   map[string]*Host{},
		nextPub: 0,
	}
	l.ipPath, _ = findTool("ip")
	l.nft, _ = findTool("nft")
	// Registered before anything exists, so that a failure or a panic at
	// any later point still removes what was built.
	tb.Cleanup(func() {
		if tb.Failed() {
			l.logDaemons()
		}
		if err := l.Close(); err != nil {
			tb.Errorf("natlab: cleanup: %v", err)
		}
	})

	l.mu.Lock()
	defer l.mu.Unlock()
	inet := l.prefix + ".inet"
	if err := l.addNS(inet); err != nil {
		// The first namespace is the probe for the capability itself.
		unavailable(tb, fmt.Errorf("cannot create a network namespace: %w", err))
	}
	l.inet = inet
	if err := run("", l.ipPath, "-n", inet, "link", "add", "br0", "type", "bridge"); err != nil {
		tb.Fatalf("natlab: internet bridge: %v", err)
	}
	if err := run("", l.ipPath, "-n", inet, "link", "set", "br0", "up"); err != nil {
		tb.Fatalf("natlab: internet bridge: %v", err)
	}
	dir, err := os.MkdirTemp("", "natlab-")
	if err != nil {
		tb.Fatalf("natlab: %v", err)
	}
	l.dir = dir
	return l
}

// Prefix is the start of the name of every namespace of this lab (followed
// by "." or "-"). Host.NS and Router.NS are the full names.
func (l *Lab) Prefix() string { return l.prefix }

// addNS creates a namespace with loopback up and the sysctls every lab
// namespace gets, and records it for Close. l.mu must be held.
//
// IPv6 is off: the lab is an IPv4 internet, and link-local IPv6 addresses on
// the internet bridge would give hosts a path the NATs do not govern.
// rp_filter and ip_forward are set explicitly because a new namespace
// inherits the IPv4 settings of the machine's own namespace.
func (l *Lab) addNS(name string) error {
	if l.closed {
		return errors.New("lab is closed")
	}
	if err := run("", l.ipPath, "netns", "add", name); err != nil {
		return err
	}
	l.nsNames = append(l.nsNames, name)
	id, err := statNS(netnsDir + "/" + name)
	if err != nil {
		return err
	}
	l.nsIDs[id] = name
	if err := writeSysctls(name,
		"net.ipv6.conf.all.disable_ipv6", "1",
		"net.ipv6.conf.default.disable_ipv6", "1",
		"net.ipv4.conf.all.rp_filter", "0",
		"net.ipv4.conf.default.rp_filter", "0",
		"net.ipv4.ip_forward", "0",
	); err != nil {
		return err
	}
	return run("", l.ipPath, "-n", name, "link", "set", "lo", "up")
}

// allocAddr returns the next free address of a pool. l.mu must be held.
func allocAddr(pool []addrRange, next *int) (netip.Addr, error) {
	i := *next
	for _, r := range pool {
		if i < r.n {
			a := r.first
			for range i {
				a = a.Next()
			}
			*next++
			return a, nil
		}
		i -= r.n
	}
	return netip.Addr{}, errors.New("address pool exhausted")
}

// attach connects a namespace to the internet bridge: a link from a new
// bridge port in the internet namespace to ifname in ns, which gets addrs
// (/24 each) and an on-link default route: every internet address is reached
// on the segment itself, as on one big LAN. l.mu must be held.
func (l *Lab) attach(ns, ifname string, addrs []netip.Addr, shape *linkShape) error {
	l.nextPort++
	port := "port" + strconv.Itoa(l.nextPort) // inside the internet namespace only
	if err := l.pair(l.inet, port, ns, ifname, shape); err != nil {
		return err
	}
	steps := [][]string{{"-n", l.inet, "link", "set", port, "master", "br0", "up"}}
	for _, a := range addrs {
		steps = append(steps, []string{"-n", ns, "addr", "add", netip.PrefixFrom(a, 24).String(), "dev", ifname})
	}
	steps = append(steps,
		[]string{"-n", ns, "link", "set", ifname, "up"},
		[]string{"-n", ns, "route", "add", "default", "dev", ifname},
	)
	return l.ipSteps(steps)
}

// ipSteps runs ip once per step, stopping at the first error.
func (l *Lab) ipSteps(steps [][]string) error {
	for _, s := range steps {
		if err := run("", l.ipPath, s...); err != nil {
			return err
		}
	}
	return nil
}

// Close removes everything the lab built; New registers it as a cleanup, so
// tests need not call it. It stops the miniupnpd daemons, kills every other
// process still running in a lab namespace (a program a test started with
// Command and did not stop), stops the lab's STUN server and deletes the
// namespaces. It is idempotent, and safe to call from any goroutine.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Lab) close() error {
	l.mu.Lock()
	l.closed = true
	daemons, stun, wires := l.daemons, l.stun, l.wires
	l.mu.Unlock()

	var errs []error
	for _, d := range daemons {
		if err := d.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if stun != nil {
		stun.Close()
	}
	for _, w := range wires {
		w.close()
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	// Kill leftovers before deleting names: a namespace without a name
	// lives on, invisible, as long as a process is inside.
	if err := killInside(l.nsIDs); err != nil {
		errs = append(errs, err)
	}
	for _, ns := range slices.Backward(l.nsNames) {
		if err := run("", l.ipPath, "netns", "delete", ns); err != nil {
			if _, statErr := os.Stat(netnsDir + "/" + ns); statErr == nil {
				errs = append(errs, err)
			}
		}
	}
	if l.dir != "" {
		if err := os.RemoveAll(l.dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killInside SIGKILLs every process in the namespaces ids and waits, up to 5
// seconds, until none is left.
func killInside(ids map[nsID]string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := pidsIn(ids)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes still running in lab namespaces: %v", pids)
		}
		for pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Leaked reports what of this lab still exists after Close: namespaces whose
// names carry the lab's prefix (what `ip netns list` shows), processes
// running inside one of the lab's namespaces (named or not), and miniupnpd
// daemons that have not exited. Nil means nothing is left.
func (l *Lab) Leaked() error {
	var leaks []string
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		if l.owns(e.Name()) {
			leaks = append(leaks, "namespace "+e.Name())
		}
	}
	l.mu.Lock()
	ids := make(map[nsID]string, len(l.nsIDs))
	for id, ns := range l.nsIDs {
		ids[id] = ns
	}
	daemons := l.daemons
	l.mu.Unlock()
	for pid, ns := range pidsIn(ids) {
		leaks = append(leaks, fmt.Sprintf("process %d in %s", pid, ns))
	}
	for _, d := range daemons {
		if !d.exited() {
			leaks = append(leaks, fmt.Sprintf("miniupnpd %d on %s", d.pid, d.router.NS))
		}
	}
	if len(leaks) == 0 {
		return nil
	}
	slices.Sort(leaks)
	return fmt.Errorf("natlab: %s left behind: %s", l.prefix, strings.Join(leaks, "; "))
}

func (l *Lab) owns(ns string) bool {
	return strings.HasPrefix(ns, l.prefix+".") || strings.HasPrefix(ns, l.prefix+"-")
}

// staleName matches the namespaces of any lab: natlab-PID-SUFFIX...
var staleName = regexp.MustCompile(`^natlab-([0-9]+)-[0-9a-f]{4}[.-]`)

var sweepOnce sync.Once

// sweepStale deletes the namespaces of labs whose test process died without
// cleaning up (killed by a timeout, say), once per process, so that they do
// not pile up on a CI machine. Namespaces of live processes are left alone:
// other test binaries may be running labs right now.
func sweepStale() {
	sweepOnce.Do(func() {
		entries, err := os.ReadDir(netnsDir)
		if err != nil {
			return
		}
		ipPath, err := findTool("ip")
		if err != nil {
			return
		}
		ids := map[nsID]string{}
		var names []string
		for _, e := range entries {
			m := staleName.FindStringSubmatch(e.Name())
			if m == nil {
				continue
			}
			pid, err := strconv.Atoi(m[1])
			if err != nil || pid == os.Getpid() || processAlive(pid) {
				continue
			}
			if id, err := statNS(netnsDir + "/" + e.Name()); err == nil {
				ids[id] = e.Name()
			}
			names = append(names, e.Name())
		}
		_ = killInside(ids)
		for _, ns := range names {
			_ = run("", ipPath, "netns", "delete", ns)
		}
	})
}

// logDaemons logs each miniupnpd's output, for a failed test.
func (l *Lab) logDaemons() {
	l.mu.Lock()
	daemons := l.daemons
	l.mu.Unlock()
	for _, d := range daemons {
		l.tb.Logf("natlab: miniupnpd on %s:\n%s", d.router.NS, d.log())
	}
}
