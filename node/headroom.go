package node

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"
)

// Headroom is the machine's spare capacity at one moment, as the promotion
// policy reads it (promotion.Input's CPUHeadroom, MemHeadroom and FreeFDs).
type Headroom struct {
	// CPU is the idle CPU fraction, 0–1, over the interval between the
	// previous sample and this one; I/O wait counts as idle, because a CPU
	// waiting for a disk is free to serve leaves.
	CPU float64
	// Mem is the available memory fraction, 0–1: MemAvailable over MemTotal,
	// the kernel's estimate of what can be allocated without swapping.
	Mem float64
	// FreeFDs is the soft RLIMIT_NOFILE minus the descriptors open now.
	FreeFDs int
	// Known is true when CPU, Mem and FreeFDs are all measured. It is false
	// until the meter has two CPU samples (idle time is a rate), whenever a
	// measurement fails (Err says why), and always where the meter cannot
	// measure (every platform but Linux). The fields of an unknown Headroom
	// hold what could be measured and zero for the rest; the meter does not
	// guess. The caller decides what an unknown headroom means to the policy:
	// passing the zero values makes a leaf fail the capacity checks (it can
	// still promote by consent "always" or in the emergency election, which
	// ignore capacity) and would make a supernode demote, so a supernode is
	// better served by its last known Headroom.
	Known bool
	// Err is what failed in this sample, or nil. It is nil with Known false
	// while the meter waits for its second CPU sample.
	Err error
	// At is the time of the sample, as the caller passed it.
	At time.Time
}

// Errors of the /proc parsers, wrapped with the offending detail.
var (
	// errProcStat is returned for /proc/stat content without a usable
	// aggregate "cpu" line.
	errProcStat = errors.New("malformed /proc/stat")
	// errMeminfo is returned for /proc/meminfo content without usable
	// MemTotal and MemAvailable lines.
	errMeminfo = errors.New("malformed /proc/meminfo")
	// errHeadroomUnsupported is the Err of every sample on platforms where
	// the meter cannot measure.
	errHeadroomUnsupported = errors.New("headroom: not measured on this platform")
)

// maxFDScan bounds how many entries of the descriptor directory one sample
// reads, so that a process with an enormous descriptor table (or a soft limit
// of RLIM_INFINITY) does not turn a once-a-minute sample into a long walk.
const maxFDScan = 1 << 20

// headroomMeter samples Headroom. CPU idle time is a rate, so the meter keeps
// the previous counters between samples. It is not safe for concurrent use:
// the role loop owns it and calls Sample, and passes the result on.
type headroomMeter struct {
	// readFile reads /proc/stat and /proc/meminfo; tests substitute canned
	// content.
	readFile func(string) ([]byte, error)
	// openFDs counts the process's open descriptors, stopping at limit;
	// fdLimit returns RLIMIT_NOFILE. Both are the platform's (headroom_linux.go,
	// headroom_other.go) unless a test substitutes them.
	openFDs func(limit int) (int, error)
	fdLimit func() (soft, hard uint64, err error)

	prev     cpuTimes // counters of the last parsed /proc/stat
	havePrev bool     // prev is set
	cpu      float64  // idle fraction of the last valid interval
	cpuKnown bool     // cpu is set
}

// newHeadroomMeter returns a meter that reads /proc files with readFile; nil
// means os.ReadFile.
func newHeadroomMeter(readFile func(string) ([]byte, error)) *headroomMeter {
	if readFile == nil {
		readFile = os.ReadFile
	}
	return &headroomMeter{readFile: readFile, openFDs: countOpenFDs, fdLimit: fdLimit}
}

// observeCPU takes a new reading of the CPU counters and updates the idle
// fraction from the interval since the previous one. A reading that does not
// follow the previous one (counters that went backwards after a wrap or a
// reset, an interval without any tick, or idle time exceeding total time)
// keeps the previous fraction: a sample a minute late is better than a
// garbage one. The reading becomes the base of the next interval either way.
func (m *headroomMeter) observeCPU(cur cpuTimes) {
	if m.havePrev && cur.total > m.prev.total && cur.idle >= m.prev.idle {
		dt, di := cur.total-m.prev.total, cur.idle-m.prev.idle
		if di <= dt {
			m.cpu, m.cpuKnown = float64(di)/float64(dt), true
		}
	}
	m.prev, m.havePrev = cur, true
}

// freeFDs returns the soft descriptor limit minus the descriptors open now,
// never below zero.
func (m *headroomMeter) freeFDs() (int, error) {
	soft, _, err := m.fdLimit()
	if err != nil {
		return 0, fmt.Errorf("RLIMIT_NOFILE: %w", err)
	}
	limit := int(min(soft, uint64(math.MaxInt32)))
	open, err := m.openFDs(min(limit, maxFDScan))
	if err != nil {
		return 0, fmt.Errorf("count open descriptors: %w", err)
	}
	return max(limit-open, 0), nil
}

// cpuTimes are the aggregate CPU counters of /proc/stat, in USER_HZ ticks.
type cpuTimes struct {
	idle  uint64 // idle + iowait
	total uint64 // user + nice + system + idle + iowait + irq + softirq + steal
}

// parseProcStat reads the aggregate "cpu" line of /proc/stat (proc(5)).
// Kernels before 2.5.41 have only the first four counters; later ones add
// iowait, irq, softirq, steal, guest and guest_nice. The total leaves out
// guest and guest_nice because the kernel already counts them in user and
// nice.
func parseProcStat(data []byte) (cpuTimes, error) {
	for line := range bytes.Lines(data) {
		f := bytes.Fields(line)
		if len(f) == 0 || string(f[0]) != "cpu" {
			continue
		}
		f = f[1:]
		if len(f) < 4 {
			return cpuTimes{}, fmt.Errorf("%w: cpu line has %d counters, want at least 4", errProcStat, len(f))
		}
		var t cpuTimes
		for i, s := range f[:min(len(f), 8)] {
			v, err := strconv.ParseUint(string(s), 10, 64)
			if err != nil {
				return cpuTimes{}, fmt.Errorf("%w: cpu counter %d: %w", errProcStat, i+1, err)
			}
			if t.total+v < t.total {
				return cpuTimes{}, fmt.Errorf("%w: cpu counters overflow", errProcStat)
			}
			t.total += v
			if i == 3 || i == 4 { // idle, iowait
				t.idle += v
			}
		}
		return t, nil
	}
	return cpuTimes{}, fmt.Errorf("%w: no aggregate cpu line", errProcStat)
}

// parseMeminfo returns MemAvailable over MemTotal from /proc/meminfo
// (proc(5)), capped at 1. MemAvailable exists since Linux 3.14; an older
// kernel's content is reported as malformed rather than estimated from
// MemFree and the caches, which overstates what can be allocated.
func parseMeminfo(data []byte) (float64, error) {
	var avail, total uint64
	var haveAvail, haveTotal bool
	for line := range bytes.Lines(data) {
		key, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *uint64
		switch string(key) {
		case "MemTotal":
			if haveTotal {
				continue
			}
			dst, haveTotal = &total, true
		case "MemAvailable":
			if haveAvail {
				continue
			}
			dst, haveAvail = &avail, true
		default:
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 || len(f) > 2 || (len(f) == 2 && string(f[1]) != "kB") {
			return 0, fmt.Errorf("%w: %s: want a number of kB, got %q", errMeminfo, key, bytes.TrimSpace(rest))
		}
		v, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: %s: %w", errMeminfo, key, err)
		}
		*dst = v
	}
	switch {
	case !haveTotal:
		return 0, fmt.Errorf("%w: no MemTotal", errMeminfo)
	case !haveAvail:
		return 0, fmt.Errorf("%w: no MemAvailable (Linux before 3.14?)", errMeminfo)
	case total == 0:
		return 0, fmt.Errorf("%w: MemTotal is 0", errMeminfo)
	}
	return min(float64(avail)/float64(total), 1), nil
}
