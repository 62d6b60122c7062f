package relay

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/logbridge"
	"github.com/pion/turn/v5"
)

// BenchmarkRelayVsCoturn pushes 1200-byte datagrams from one pion TURN
// client through a relay to a UDP peer at a series of paced rates, against
// the Canopy relay and against coturn (Debian's turnserver) started by the
// benchmark on loopback, and compares the highest delivered rate at which
// each loses at most 0.3%. The Canopy relay runs in a child process (the test
// binary re-run as TestRelayBenchHelper), as coturn does, so that neither
// shares a process with the client and the peer.
//
// Both servers see the same client, the same peer and the same pacing, in
// the same run, interleaved rate by rate, so whatever the client and the
// shared 2-core machine cost falls on both alike: at high rates the pion
// client itself (one goroutine building ChannelData messages) is a
// bottleneck, which is why only the ratio is meant to be read. The Canopy
// relay runs with its quotas enforced (every datagram passes both token
// buckets) but set to 1 GB/s, above the highest offered rate; coturn runs
// with its quotas off.
//
// Metrics: canopy-Mbit/s and coturn-Mbit/s are the highest delivered rates
// with ≤ 0.3% loss (0 if none), ratio is canopy ÷ coturn of those (of the
// highest delivered rates if either is 0), and *-max-Mbit/s the highest
// delivered rates whatever the loss. canopy-cpu-µs/dgram and
// coturn-cpu-µs/dgram are each server process's CPU time per datagram at the
// lowest rate, where both relay everything: a figure that a loaded machine
// disturbs much less than throughput. With -short it runs one rate briefly.
//
// coturn must be installed (apt-get install -y coturn); the benchmark skips
// otherwise. The installed service is not used: the benchmark starts its own
// turnserver in the foreground and kills it at the end.
func BenchmarkRelayVsCoturn(b *testing.B) {
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		b.Skip("coturn is not installed (apt-get install -y coturn): nothing to compare against")
	}
	rates := []float64{200, 400, 600, 800, 1000, 1200} // Mbit/s offered
	dur := time.Second
	if testing.Short() {
		rates, dur = []float64{200}, 300*time.Millisecond
	}

	const user, pass = "bench", "bench-secret"
	coturn, coturnPID := startRelayCoturn(b, bin, user, pass)

	canopy := startRelayProcess(b)

	servers := []*relayBenchPath{
		newRelayBenchPath(b, "canopy", canopy.addr, canopy.user, canopy.pass, canopy.cmd.Process.Pid),
		newRelayBenchPath(b, "coturn", coturn, user, pass, coturnPID),
	}
	best := map[string]float64{}
	top := map[string]float64{}
	cpu := map[string]float64{} // µs of server CPU per datagram at the lowest rate
	b.ResetTimer()
	for range b.N {
		for i, rate := range rates {
			// Alternate which server goes first, so that neither always
			// runs on a machine warmed (or disturbed) by the other.
			order := []*relayBenchPath{servers[i%2], servers[1-i%2]}
			for _, s := range order {
				res := s.run(b, rate, dur)
				b.Logf("%-6s offered %5.0f Mbit/s: sent %6.1f, delivered %6.1f Mbit/s, loss %.3f%%, server CPU %.2f µs/datagram",
					s.name, rate, res.sentMbps, res.deliveredMbps, 100*res.loss, res.cpuMicros)
				if i == 0 {
					cpu[s.name] = res.cpuMicros
				}
				if res.loss <= 0.003 && res.deliveredMbps > best[s.name] {
					best[s.name] = res.deliveredMbps
				}
				if res.deliveredMbps > top[s.name] {
					top[s.name] = res.deliveredMbps
				}
			}
		}
	}
	b.StopTimer()
	ratio := 0.0
	if best["canopy"] > 0 && best["coturn"] > 0 {
		ratio = best["canopy"] / best["coturn"]
	} else if top["coturn"] > 0 {
		ratio = top["canopy"] / top["coturn"]
	}
	b.ReportMetric(best["canopy"], "canopy-Mbit/s")
	b.ReportMetric(best["coturn"], "coturn-Mbit/s")
	b.ReportMetric(top["canopy"], "canopy-max-Mbit/s")
	b.ReportMetric(top["coturn"], "coturn-max-Mbit/s")
	b.ReportMetric(ratio, "ratio")
	if cpu["canopy"] > 0 && cpu["coturn"] > 0 {
		b.ReportMetric(cpu["canopy"], "canopy-cpu-µs/dgram")
		b.ReportMetric(cpu["coturn"], "coturn-cpu-µs/dgram")
	}
	if dropped := canopy.stop(b); dropped != 0 {
		b.Errorf("the Canopy relay's quotas dropped %d datagrams: they must not bind in this benchmark", dropped)
	}
}

// relayHelperEnv makes TestRelayBenchHelper serve a relay for the benchmark.
const relayHelperEnv = "CANOPY_RELAY_BENCH_HELPER"

// relayProcess is the Canopy relay serving the benchmark from a child
// process. Like coturn it runs outside the benchmark's process, so that the
// client and the peer cost the two servers alike: in one process they would
// share the Go scheduler and garbage collector with the relay.
type relayProcess struct {
	addr       netip.AddrPort
	user, pass string
	cmd        *exec.Cmd
	stdin      io.WriteCloser
	out        *bufio.Scanner
}

// startRelayProcess re-runs the test binary as TestRelayBenchHelper.
func startRelayProcess(b *testing.B) *relayProcess {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRelayBenchHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), relayHelperEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start relay process: %v", err)
	}
	p := &relayProcess{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	b.Cleanup(func() { p.kill() })
	for p.out.Scan() {
		var addr string
		if _, err := fmt.Sscanf(p.out.Text(), "relay %s %s %s", &addr, &p.user, &p.pass); err == nil {
			p.addr = netip.MustParseAddrPort(addr)
			return p
		}
	}
	b.Fatalf("relay process gave no address: %v", p.out.Err())
	return nil
}

// stop asks the relay process to close and returns the datagrams its quotas
// dropped.
func (p *relayProcess) stop(b *testing.B) uint64 {
	_ = p.stdin.Close()
	for p.out.Scan() {
		var dropped uint64
		if _, err := fmt.Sscanf(p.out.Text(), "dropped %d", &dropped); err == nil {
			return dropped
		}
	}
	b.Errorf("relay process reported no stats: %v", p.out.Err())
	return 0
}

func (p *relayProcess) kill() {
	_ = p.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// TestRelayBenchHelper is the child process of BenchmarkRelayVsCoturn; it
// does nothing in a normal test run. It serves a relay on loopback with its
// quotas enforced but set to 1 GB/s (8 Gbit/s), above every offered rate,
// prints its address and a credential, and closes when stdin closes.
func TestRelayBenchHelper(t *testing.T) {
	if os.Getenv(relayHelperEnv) == "" {
		t.Skip("child process of BenchmarkRelayVsCoturn")
	}
	const unbinding = 1 << 30
	r := newRelayForTest(t, func(c *Config) {
		c.ListenTCP = ""
		c.Logger = nil
		c.Quotas.MaxBytesPerSecondPerLeaf = unbinding
		c.Quotas.MaxBytesPerSecond = unbinding
	})
	cred := relayIssue(r, relayTestLeaf(1))
	fmt.Printf("relay %s %s %s\n", r.UDPAddrs()[0], cred.Username, cred.Password)
	_, _ = io.Copy(io.Discard, os.Stdin)
	fmt.Printf("dropped %d\n", r.Stats().Dropped)
}

// startRelayCoturn runs turnserver on a free loopback port with one long-term
// user, no TLS, no CLI and no quotas, and returns its address and process ID
// once it answers.
func startRelayCoturn(b *testing.B, bin, user, pass string) (netip.AddrPort, int) {
	b.Helper()
	dir := b.TempDir()
	port := freeRelayUDPPort(b)
	cmd := exec.Command(bin,
		"-n", // no configuration file
		"--listening-ip=127.0.0.1", "--listening-port="+strconv.Itoa(port),
		"--relay-ip=127.0.0.1", "--allow-loopback-peers",
		"--lt-cred-mech", "--user="+user+":"+pass, "--realm="+DefaultRealm,
		"--no-tls", "--no-dtls", "--no-tcp", "--no-cli", "--no-tcp-relay",
		"--user-quota=0", "--total-quota=0", "--max-bps=0",
		"--pidfile="+filepath.Join(dir, "turnserver.pid"),
		"--log-file="+filepath.Join(dir, "turnserver.log"), "--simple-log", "--no-stdout-log",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatalf("start turnserver: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	addr := netip.AddrPortFrom(relayLoopback, uint16(port))
	testwait.Until(b, 10*time.Second, func() bool {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "turnserver.log"))
			b.Fatalf("turnserver exited: %v\n%s\n%s", err, stderr.String(), log)
		default:
		}
		return relayCoturnAnswers(addr, user, pass)
	}, "turnserver did not answer")
	return addr, cmd.Process.Pid
}

// relayCoturnAnswers reports whether an allocation at addr succeeds.
func relayCoturnAnswers(addr netip.AddrPort, user, pass string) bool {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return false
	}
	defer conn.Close()
	c, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: addr.String(), Username: user, Password: pass,
		Conn: conn, RTO: 50 * time.Millisecond, LoggerFactory: logbridge.Pion(nil)})
	if err != nil {
		return false
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		return false
	}
	rc, err := c.Allocate()
	if err != nil {
		return false
	}
	_ = rc.Close()
	return true
}

// freeRelayUDPPort returns a loopback port that was free a moment ago.
func freeRelayUDPPort(b *testing.B) int {
	b.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// relayBenchPath is one client, its allocation on one server, and a peer.
type relayBenchPath struct {
	name  string
	pid   int // the server's
	rc    net.PacketConn
	peer  *net.UDPConn
	bytes atomic.Uint64 // received by the peer
	last  atomic.Int64  // unix nanoseconds of the peer's last datagram
}

const relayBenchDatagram = 1200

func newRelayBenchPath(b *testing.B, name string, server netip.AddrPort, user, pass string, pid int) *relayBenchPath {
	b.Helper()
	c := dialRelayTURN(b, server, false, user, pass)
	if uc, ok := c.conn.(*net.UDPConn); ok {
		_, _ = setRelaySocketBuffers(uc, DefaultSocketBuffer)
	}
	p := &relayBenchPath{name: name, pid: pid, rc: c.allocate(b), peer: newRelayTestPeer(b)}
	_, _ = setRelaySocketBuffers(p.peer, DefaultSocketBuffer)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := p.peer.ReadFrom(buf)
			if err != nil {
				return
			}
			p.bytes.Add(uint64(n))
			p.last.Store(time.Now().UnixNano())
		}
	}()
	// Warm up: the first datagrams create the permission and, a round trip
	// later, the channel binding that the measured datagrams then use.
	payload := make([]byte, relayBenchDatagram)
	for range 50 {
		if _, err := p.rc.WriteTo(payload, p.peer.LocalAddr()); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		time.Sleep(time.Millisecond)
	}
	p.drain(b)
	return p
}

// drain waits until the peer has received nothing for 200 ms. The sender has
// stopped by then, so a peer that still receives after 10 s means datagrams
// are looping somewhere: the benchmark fails rather than hangs.
func (p *relayBenchPath) drain(b *testing.B) {
	b.Helper()
	testwait.Until(b, 10*time.Second, func() bool { return time.Since(time.Unix(0, p.last.Load())) >= 200*time.Millisecond },
		"%s: the peer did not go quiet", p.name)
}

type relayBenchResult struct {
	sentMbps, deliveredMbps, loss float64
	cpuMicros                     float64 // server CPU per datagram sent; 0 if unknown
}

// relayProcessCPU returns the CPU time pid's threads have used, from
// /proc/<pid>/task/*/schedstat (nanosecond resolution, unlike the clock
// ticks of /proc/<pid>/stat), or 0 where that is not available.
func relayProcessCPU(pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		var ns int64
		if _, err := fmt.Sscan(string(b), &ns); err == nil {
			total += time.Duration(ns)
		}
	}
	return total
}

// run sends at mbps for dur, paced in slices of 200 µs, and measures what the
// peer received.
func (p *relayBenchPath) run(b *testing.B, mbps float64, dur time.Duration) relayBenchResult {
	b.Helper()
	payload := make([]byte, relayBenchDatagram)
	pps := mbps * 1e6 / 8 / relayBenchDatagram
	total := int(pps * dur.Seconds())
	before := p.bytes.Load()
	cpuBefore := relayProcessCPU(p.pid)
	start := time.Now()
	sent := 0
	for sent < total {
		due := min(int(time.Since(start).Seconds()*pps)+1, total)
		for ; sent < due; sent++ {
			if _, err := p.rc.WriteTo(payload, p.peer.LocalAddr()); err != nil {
				b.Fatalf("%s: %v", p.name, err)
			}
		}
		if time.Since(start) < time.Duration(float64(sent)/pps*float64(time.Second)) {
			time.Sleep(200 * time.Microsecond)
		}
	}
	elapsed := time.Since(start)
	p.drain(b)
	got := p.bytes.Load() - before
	sentBytes := float64(sent * relayBenchDatagram)
	return relayBenchResult{
		sentMbps:      sentBytes * 8 / elapsed.Seconds() / 1e6,
		deliveredMbps: float64(got) * 8 / elapsed.Seconds() / 1e6,
		loss:          max(0, 1-float64(got)/sentBytes),
		cpuMicros:     float64((relayProcessCPU(p.pid) - cpuBefore).Microseconds()) / float64(sent),
	}
}
