package natlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/canopy-p2p/canopy/nat/stun"
)

// Lines miniupnpd 2.3 logs (with -d, on stderr) that the lab waits for.
const (
	// upnpReady comes after the STUN check, once every socket is open.
	upnpReady = "Listening for NAT-PMP/PCP traffic on port 5351"
	// upnpForwarding means the STUN check passed: mappings will be made.
	upnpForwarding = "Port forwarding is now enabled"
)

// upnpStartTimeout bounds miniupnpd's start, STUN check included (which
// waits 3 s per round for answers that do not come, behind CGNAT).
const upnpStartTimeout = 20 * time.Second

// upnpDaemon is one miniupnpd process running in a router namespace.
type upnpDaemon struct {
	router *Router
	cmd    *exec.Cmd
	pid    int
	out    *daemonLog
	done   chan struct{} // closed when the process has been waited for
}

// daemonLog collects a daemon's output and signals when a line appears.
type daemonLog struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	ready  chan struct{} // closed once buf contains marker
}

func (d *daemonLog) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.buf.Write(p)
	if d.marker != "" && bytes.Contains(d.buf.Bytes(), []byte(d.marker)) {
		close(d.ready)
		d.marker = ""
	}
	return len(p), nil
}

func (d *daemonLog) String() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.buf.String()
}

func (d *upnpDaemon) log() string { return d.out.String() }

func (d *upnpDaemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop ends miniupnpd: SIGTERM, on which it removes its rules and exits,
// then SIGKILL if it has not exited within 3 seconds.
func (d *upnpDaemon) stop() error {
	if d.exited() {
		return nil
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return nil
	case <-time.After(3 * time.Second):
	}
	_ = d.cmd.Process.Kill()
	select {
	case <-d.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("miniupnpd %d on %s does not exit", d.pid, d.router.NS)
	}
}

// upnpConfig is miniupnpd's configuration for a lab router. The nftables
// table and chains are those of upnpTables. With a STUN server, miniupnpd
// checks its WAN with it and, if the check passes, accepts the lab's
// documentation-range WAN address as public (see WithUPnP); without one it
// refuses every mapping, as on a line behind carrier-grade NAT. Secure mode
// and the permission rules let each LAN host map ports >= 1024 to itself
// only, the usual home router policy.
func upnpConfig(r *Router, stun netip.AddrPort, uuid string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# miniupnpd for natlab router %s
ext_ifname=wan
listening_ip=lan
ipv6_disable=yes
enable_natpmp=yes
enable_upnp=yes
secure_mode=yes
system_uptime=yes
upnp_table_name=natlab_upnp
upnp_nat_table_name=natlab_upnp
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
uuid=%s
`, r.NS, uuid)
	if stun.IsValid() {
		fmt.Fprintf(&b, "ext_perform_stun=yes\next_stun_host=%s\next_stun_port=%d\n", stun.Addr(), stun.Port())
	}
	fmt.Fprintf(&b, "allow 1024-65535 %s 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n", r.LANPrefix)
	return b.String()
}

// startUPnP starts miniupnpd on router r and waits until it serves.
//
// A router on the internet gets the STUN check, which must enable port
// forwarding. A CGNAT home router gets none: miniupnpd then sees its
// carrier-side address (100.64.0.0/10), reports it as the public address and
// refuses every mapping ("Port forwarding is impossible"), which is what a
// real miniupnpd on a carrier-grade line does; and the check would only
// spend 9 seconds finding out that the carrier NAT filters. l.mu must be
// held.
func (l *Lab) startUPnP(r *Router, behindCGNAT bool) error {
	var stunAddr netip.AddrPort
	if !behindCGNAT {
		if l.stun == nil {
			// The STUN server miniupnpd checks its WAN with: a public
			// host of its own, with two addresses for RFC 5780's
			// CHANGE-REQUEST.
			h, err := l.publicLocked("stun", l.prefix+".stun", 2, hostConfig{})
			if err != nil {
				return fmt.Errorf("STUN server for miniupnpd: %w", err)
			}
			// Canopy's own supernode STUN service, in the lab's namespace.
			s, err := stun.NewServer(stun.ServerConfig{
				Primary:      netip.AddrPortFrom(h.Addrs[0], 3478),
				Alternate:    netip.AddrPortFrom(h.Addrs[1], 3479),
				ListenPacket: h.ListenPacket,
			})
			if err != nil {
				return fmt.Errorf("STUN server for miniupnpd: %w", err)
			}
			l.stun = s
		}
		stunAddr = l.stun.Addrs()[0]
	}
	bin, err := findTool("miniupnpd")
	if err != nil {
		return err
	}
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return err
	}
	uuid := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	base := filepath.Join(l.dir, strings.TrimPrefix(r.NS, l.prefix+"-"))
	conf := base + ".conf"
	if err := os.WriteFile(conf, []byte(upnpConfig(r, stunAddr, uuid)), 0o600); err != nil {
		return err
	}

	out := &daemonLog{marker: upnpReady, ready: make(chan struct{})}
	// -d: stay in the foreground and log to stderr. -P: a pid file per
	// router, since miniupnpd refuses to start while the default one names
	// a running process.
	cmd := commandIn(context.Background(), l.ipPath, r.NS, bin, "-d", "-f", conf, "-P", base+".pid")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start miniupnpd: %w", err)
	}
	d := &upnpDaemon{router: r, cmd: cmd, pid: cmd.Process.Pid, out: out, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(d.done)
	}()
	// Recorded at once, so that Close stops it whatever happens next.
	l.daemons = append(l.daemons, d)
	r.upnp = d

	select {
	case <-out.ready:
	case <-d.done:
		return fmt.Errorf("miniupnpd exited at start: %s\n%s", cmd.ProcessState, out)
	case <-time.After(upnpStartTimeout):
		return fmt.Errorf("miniupnpd not ready after %v:\n%s", upnpStartTimeout, out)
	}
	if !behindCGNAT && !strings.Contains(out.String(), upnpForwarding) {
		return errors.New("miniupnpd's STUN check did not enable port forwarding:\n" + out.String())
	}
	return nil
}
