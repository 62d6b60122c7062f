//go:build !linux

package node

import (
	"errors"
	"time"
)

// Sample reports an unknown headroom: outside Linux the meter has no portable
// source for idle CPU and available memory (macOS and the BSDs would need
// host_statistics or sysctl, Windows GetSystemTimes), so it says so rather
// than guess. Headroom.Known documents what the caller does with that.
func (m *headroomMeter) Sample(now time.Time) Headroom {
	return Headroom{At: now, Err: errHeadroomUnsupported}
}

// countOpenFDs is not implemented outside Linux, which has /proc/self/fd.
func countOpenFDs(int) (int, error) { return 0, errors.ErrUnsupported }

// fdLimit is not implemented outside Linux. On the other Unix systems Go's
// package syscall raises the soft RLIMIT_NOFILE at startup anyway
// (go.dev/issue/46279), which lifts macOS's default of 256.
func fdLimit() (soft, hard uint64, err error) { return 0, 0, errors.ErrUnsupported }
