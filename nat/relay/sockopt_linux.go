//go:build linux

package relay

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// relayReusePort says whether several UDP sockets can share one port with
// the kernel spreading datagrams over them. Linux (3.9+) hashes each
// datagram's 4-tuple to one socket of the SO_REUSEPORT group, so a client
// always reaches the same socket and with it the same pion allocation manager.
const relayReusePort = true

// DefaultListenUDPSockets is 2 on Linux, where SO_REUSEPORT lets two
// sockets, and with them two cores, serve one port (Config.ListenUDPSockets).
const DefaultListenUDPSockets = 2

// controlRelayReusePort sets SO_REUSEPORT before bind (net.ListenConfig.Control).
// Only sockets of the same user can join the group, so another user's process
// cannot steal a share of the relay's traffic.
func controlRelayReusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	return errors.Join(err, serr)
}

// setRelaySocketBuffers asks for size-byte receive and send buffers and returns
// the receive buffer the kernel granted. SO_RCVBUFFORCE/SO_SNDBUFFORCE go past
// net.core.rmem_max/wmem_max (whose default, ~208 KiB, is what makes pion
// drop datagrams under load) but need CAP_NET_ADMIN; without it the plain
// options are used and the kernel clamps them.
func setRelaySocketBuffers(conn *net.UDPConn, size int) (granted int, err error) {
	c, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	cerr := c.Control(func(fd uintptr) {
		s := int(fd)
		if e := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size); e != nil {
			err = errors.Join(err, unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, size))
		}
		if e := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size); e != nil {
			err = errors.Join(err, unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF, size))
		}
		// Linux reports twice the size asked for (the doubling accounts for
		// its bookkeeping overhead, socket(7)).
		v, e := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF)
		err = errors.Join(err, e)
		granted = v / 2
	})
	return granted, errors.Join(cerr, err)
}
