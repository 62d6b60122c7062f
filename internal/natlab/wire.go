package natlab

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Links with WithNetem are not veth pairs but a "wire": a TAP device at each
// end, in each namespace, and two goroutines of the test process that carry
// the Ethernet frames between them, each direction delayed and thinned as
// the netem spec says. The kernel's netem qdisc would do this in the kernel,
// but the kernels the project runs on (this machine's and CI's) are built
// without it (CONFIG_NET_SCH_NETEM is not set), so the lab does it itself,
// for every machine alike.

// linkShape is what WithNetem asks of each direction of a link.
type linkShape struct {
	delay  time.Duration // added to every frame
	jitter time.Duration // delay varies uniformly within ±jitter
	loss   float64       // probability that a frame is dropped
}

// parseNetem reads the part of netem's syntax (tc-netem(8)) the wire
// implements: "delay TIME [JITTER]" and "loss [random] PERCENT%", in any
// order. Anything else is an error rather than silently ignored.
func parseNetem(spec string) (*linkShape, error) {
	f := strings.Fields(spec)
	if len(f) == 0 {
		return nil, errors.New("empty netem spec")
	}
	var s linkShape
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case "delay":
			if i+1 >= len(f) {
				return nil, errors.New("delay needs a time, e.g. delay 20ms")
			}
			d, err := time.ParseDuration(f[i+1])
			if err != nil || d < 0 {
				return nil, fmt.Errorf("delay %q: want a time such as 20ms", f[i+1])
			}
			s.delay = d
			i++
			if i+1 < len(f) {
				if j, err := time.ParseDuration(f[i+1]); err == nil && j >= 0 {
					s.jitter = j
					i++
				}
			}
		case "loss":
			if i+1 < len(f) && f[i+1] == "random" {
				i++
			}
			if i+1 >= len(f) || !strings.HasSuffix(f[i+1], "%") {
				return nil, errors.New("loss needs a percentage, e.g. loss 1%")
			}
			p, err := strconv.ParseFloat(strings.TrimSuffix(f[i+1], "%"), 64)
			if err != nil || p < 0 || p > 100 {
				return nil, fmt.Errorf("loss %q: want a percentage from 0%% to 100%%", f[i+1])
			}
			s.loss = p / 100
			i++
		default:
			return nil, fmt.Errorf("netem %q is not supported (only delay TIME [JITTER] and loss PERCENT%%)", f[i])
		}
	}
	return &s, nil
}

// openTAP creates a TAP device named ifname in namespace ns and returns its
// file. The device lives as long as the file is open.
func openTAP(ns, ifname string) (*os.File, error) {
	var f *os.File
	// The device is created in the namespace of the thread that opens
	// /dev/net/tun.
	err := doIn(ns, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(ifname)
		if err == nil {
			// IFF_NO_PI: plain Ethernet frames, no packet information
			// header.
			ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
			err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
		}
		if err != nil {
			unix.Close(fd)
			return err
		}
		// Only now may the runtime's poller watch the descriptor: a TUN
		// file polled before it is attached to a device reports an
		// error and is never woken again.
		f = os.NewFile(uintptr(fd), "/dev/net/tun:"+ifname)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("TAP %s in %s: %w", ifname, ns, err)
	}
	return f, nil
}

// wire carries frames between two TAP devices.
type wire struct {
	ends [2]*os.File
	wg   sync.WaitGroup
}

// wireQueue bounds the frames in flight in one direction, like netem's
// default limit of 1000 packets; beyond it frames are dropped, as a full
// queue drops them.
const wireQueue = 1000

// frame is a frame in flight and when it is due at the far end.
type frame struct {
	data []byte
	due  time.Time
}

func startWire(a, b *os.File, s *linkShape) *wire {
	w := &wire{ends: [2]*os.File{a, b}}
	for _, dir := range [][2]*os.File{{a, b}, {b, a}} {
		q := make(chan frame, wireQueue)
		w.wg.Go(func() { receive(dir[0], q, s) })
		w.wg.Go(func() { deliver(dir[1], q) })
	}
	return w
}

// receive reads frames from one end until it is closed, drops some, stamps
// the others with their delivery time and queues them. Delivery times never
// decrease, so frames are not reordered (netem reorders with jitter; the
// wire does not).
func receive(from *os.File, q chan<- frame, s *linkShape) {
	defer close(q)
	buf := make([]byte, 65536)
	var last time.Time
	for {
		n, err := from.Read(buf)
		if err != nil {
			return
		}
		if s.loss > 0 && rand.Float64() < s.loss {
			continue
		}
		d := s.delay
		if s.jitter > 0 {
			d += time.Duration(rand.Int64N(int64(2*s.jitter)+1)) - s.jitter
			d = max(d, 0)
		}
		due := time.Now().Add(d)
		if due.Before(last) {
			due = last
		}
		last = due
		select {
		case q <- frame{data: append([]byte(nil), buf[:n]...), due: due}:
		default: // queue full: dropped
		}
	}
}

// deliver writes queued frames to the other end when they are due.
func deliver(to *os.File, q <-chan frame) {
	for f := range q {
		if wait := time.Until(f.due); wait > 0 {
			time.Sleep(wait)
		}
		_, _ = to.Write(f.data) // fails only once the wire is closed
	}
}

// close removes both TAP devices and waits for the goroutines.
func (w *wire) close() {
	w.ends[0].Close()
	w.ends[1].Close()
	w.wg.Wait()
}
