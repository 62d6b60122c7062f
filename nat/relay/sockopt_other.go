//go:build !linux

package relay

import (
	"errors"
	"net"
	"syscall"
)

// relayReusePort is false outside Linux: the BSDs and macOS accept
// SO_REUSEPORT on UDP but do not balance unicast datagrams over the group
// the way Linux does, and Windows has no equivalent, so the relay opens one
// listening socket per address there.
const relayReusePort = false

// DefaultListenUDPSockets is 1 outside Linux, where a port cannot be shared
// usefully (Config.ListenUDPSockets).
const DefaultListenUDPSockets = 1

// controlRelayReusePort is never called when relayReusePort is false.
func controlRelayReusePort(_, _ string, _ syscall.RawConn) error { return nil }

// setRelaySocketBuffers sets size-byte receive and send buffers with the portable
// calls (the kernel may clamp them silently) and returns size: there is no
// portable way to read back what was granted.
func setRelaySocketBuffers(conn *net.UDPConn, size int) (int, error) {
	return size, errors.Join(conn.SetReadBuffer(size), conn.SetWriteBuffer(size))
}
