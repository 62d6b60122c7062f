package node

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// The files the Linux meter reads.
const (
	procStatPath    = "/proc/stat"
	procMeminfoPath = "/proc/meminfo"
	procFDDir       = "/proc/self/fd"
)

// Sample measures the headroom now. CPU idle time is taken over the interval
// since the previous Sample, so the first one is never Known.
func (m *headroomMeter) Sample(now time.Time) Headroom {
	h := Headroom{At: now}
	var errs []error
	if data, err := m.readFile(procStatPath); err != nil {
		errs = append(errs, fmt.Errorf("headroom: %w", err))
	} else if t, err := parseProcStat(data); err != nil {
		errs = append(errs, fmt.Errorf("headroom: %w", err))
	} else {
		m.observeCPU(t)
	}
	h.CPU = m.cpu
	if data, err := m.readFile(procMeminfoPath); err != nil {
		errs = append(errs, fmt.Errorf("headroom: %w", err))
	} else if h.Mem, err = parseMeminfo(data); err != nil {
		errs = append(errs, fmt.Errorf("headroom: %w", err))
	}
	var err error
	if h.FreeFDs, err = m.freeFDs(); err != nil {
		errs = append(errs, fmt.Errorf("headroom: %w", err))
	}
	// Any failure makes the whole sample unknown, even where the CPU keeps a
	// previous value: the policy compares all three at once.
	h.Err = errors.Join(errs...)
	h.Known = m.cpuKnown && h.Err == nil
	return h
}

// countOpenFDs counts the entries of /proc/self/fd, stopping once it has
// counted limit. It reads names only, in batches, so it neither stats every
// descriptor nor holds the whole table in memory. The directory's own
// descriptor, open while it is read, is listed too and not counted.
func countOpenFDs(limit int) (int, error) {
	d, err := os.Open(procFDDir)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	n := 0
	for n <= limit {
		names, err := d.Readdirnames(256)
		n += len(names)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	return min(max(n-1, 0), limit), nil
}

// fdLimit returns the soft and hard RLIMIT_NOFILE. It does not raise the soft
// limit because Go already has: since Go 1.19 package syscall's init sets the
// soft limit to the hard limit minus one on every Unix (go.dev/issue/46279;
// syscall/rlimit.go), before any of the node's code runs. Where the kernel
// refuses that (a hard limit above fs.nr_open) a second attempt would fail the
// same way, so the values reported here are the ones the node has to live
// with.
func fdLimit() (soft, hard uint64, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, err
	}
	return rl.Cur, rl.Max, nil
}
