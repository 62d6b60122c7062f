package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// ErrConfig reports AcceptLimits a Gate cannot run with. Every error of
// AcceptLimits.Validate wraps it.
var ErrConfig = errors.New("link: bad config")

// HelloTimeout bounds the wait for the first message (the Hello) once the TLS
// handshake is done. With HandshakeTimeout it bounds how long a connection
// that never says who it is holds a pending slot: 20 s at most.
const HelloTimeout = 10 * time.Second

// Defaults for the AcceptLimits fields left zero.
const (
	// DefaultMaxPending bounds the connections a control listener holds
	// before they said hello. Each holds a descriptor, a goroutine and up to
	// wire.FrameChunk (64 KiB) of frame buffer for at most HandshakeTimeout +
	// HelloTimeout. 256 is a quarter of the 1,024 descriptors a Linux
	// process gets by default (the soft RLIMIT_NOFILE), which leaves the
	// rest to the 200 leaf slots, the ring links, the library database and
	// the TURN relay; its buffers are 16 MiB at most. A node that accepts
	// dozens of links a second (leaves re-attaching after a supernode left)
	// holds a few at a time: a handshake takes a few round trips.
	DefaultMaxPending = 256
	// DefaultMaxPendingPerAddr bounds the pending connections from one IPv4
	// address or one IPv6 /56: 8, go-libp2p's resource manager's limit on
	// concurrent connections from one address (and its IPv6 prefix, one
	// household's delegation). One node opens at most 3 at once to another
	// (a supernode's view link, signalling link and dial-back), so 8 leaves
	// room for a few nodes behind one NAT.
	DefaultMaxPendingPerAddr = 8
	// PendingIPv6Prefix is the prefix length under which IPv6 peers share
	// the per-address limit: an ISP hands a household a /56 (go-libp2p's
	// figure too), and one host can take any address in its /64.
	PendingIPv6Prefix = 56
)

// AcceptLimits bound what a control listener holds for connections that have
// not said hello yet: the strangers, who may be anyone.
type AcceptLimits struct {
	// MaxPending bounds the pending connections in total. Zero:
	// DefaultMaxPending.
	MaxPending int
	// MaxPendingPerAddr bounds them per IPv4 address or IPv6 /56. Zero:
	// DefaultMaxPendingPerAddr.
	MaxPendingPerAddr int
	// LimitLoopback applies MaxPendingPerAddr to loopback peers too. By
	// default it does not, as go-libp2p does not: a loopback peer is a
	// process on this machine (a local test network and the demo put every
	// node on 127.0.0.1), and it still counts in MaxPending.
	LimitLoopback bool
}

// DefaultAcceptLimits returns AcceptLimits with every default set.
func DefaultAcceptLimits() AcceptLimits {
	return AcceptLimits{MaxPending: DefaultMaxPending, MaxPendingPerAddr: DefaultMaxPendingPerAddr}
}

func (l AcceptLimits) withDefaults() AcceptLimits {
	d := DefaultAcceptLimits()
	if l.MaxPending == 0 {
		l.MaxPending = d.MaxPending
	}
	if l.MaxPendingPerAddr == 0 {
		l.MaxPendingPerAddr = d.MaxPendingPerAddr
	}
	return l
}

// Validate reports limits (zero fields taken as their defaults) a Gate
// cannot run with, each wrapping ErrConfig.
func (l AcceptLimits) Validate() error {
	l = l.withDefaults()
	var errs []error
	if l.MaxPending < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxPending %d is negative", ErrConfig, l.MaxPending))
	}
	if l.MaxPendingPerAddr < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxPendingPerAddr %d is negative", ErrConfig, l.MaxPendingPerAddr))
	}
	return errors.Join(errs...)
}

// Gate admits the connections a listener accepts, within AcceptLimits, until
// each is released (it said hello, or it is gone). A connection the gate
// refuses should be closed at once by the caller, who holds no goroutine for
// it. Safe for concurrent use.
type Gate struct {
	lim AcceptLimits

	mu      sync.Mutex
	total   int
	perAddr map[netip.Prefix]int
}

// NewGate returns a gate with the given limits (zero fields: defaults).
func NewGate(l AcceptLimits) (*Gate, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return &Gate{lim: l.withDefaults(), perAddr: make(map[netip.Prefix]int)}, nil
}

// Admit takes a pending slot for a connection from remote. It returns a
// release function, which gives the slot back (calling it again does
// nothing), or the reason the connection is refused.
func (g *Gate) Admit(remote net.Addr) (release func(), why Reason, ok bool) {
	key, loopback := addrKey(remote)
	perAddr := !loopback || g.lim.LimitLoopback
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.total >= g.lim.MaxPending {
		return nil, ReasonPendingFull, false
	}
	if perAddr && g.perAddr[key] >= g.lim.MaxPendingPerAddr {
		return nil, ReasonPendingAddr, false
	}
	g.total++
	g.perAddr[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.total--
			if g.perAddr[key]--; g.perAddr[key] <= 0 {
				delete(g.perAddr, key)
			}
		})
	}, 0, true
}

// Pending is how many connections hold a slot now.
func (g *Gate) Pending() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total
}

// addrKey is the address a remote's per-address limit is kept under: its
// IPv4 address, or its IPv6 /PendingIPv6Prefix. Addresses that are not IP
// (none on a TCP listener) share one key.
func addrKey(remote net.Addr) (key netip.Prefix, loopback bool) {
	var ip netip.Addr
	switch a := remote.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	}
	ip = ip.Unmap()
	if !ip.IsValid() {
		return netip.Prefix{}, false
	}
	bits := 32
	if ip.Is6() {
		bits = PendingIPv6Prefix
	}
	p, _ := ip.Prefix(bits)
	return p, ip.IsLoopback()
}
