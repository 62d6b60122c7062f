package relay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/logbridge"
	"github.com/canopy-p2p/canopy/nat/ice"
	"github.com/pion/turn/v5"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Defaults of Config and Quotas. Each is explained where it is used.
const (
	// DefaultPort is the standard STUN/TURN port (RFC 8489 §18.6).
	DefaultPort = 3478
	// DefaultRealm is the realm of a supernode's relay. Credentials are
	// bound to it through the long-term key.
	DefaultRealm = "canopy"
	// DefaultSocketBuffer is the receive and send buffer of every relay
	// socket. With the OS default (~208 KiB on Linux) pion/turn starts
	// dropping at ~380–570 Mbit/s because one reader cannot absorb the
	// scheduling hiccups of a busy machine; 4 MiB holds ~28 ms at 1.2 Gbit/s.
	// The buffer is a ceiling, not an allocation: memory is used only while
	// a reader lags, and the kernel's udp_mem bounds the total.
	DefaultSocketBuffer = 4 << 20

	// DefaultMaxAllocationsPerLeaf: ICE gathers a relay candidate for
	// every peer connection that has TURN configured, so a leaf downloading
	// from a few sources at once holds a few allocations. Four covers that
	// without letting one leaf hold many relay ports.
	DefaultMaxAllocationsPerLeaf = 4
	// DefaultMaxAllocations is the total, like libp2p's 128 circuit
	// relay reservations: a home supernode serves 100–1,000 leaves, of which
	// roughly one in five needs a relay (docs/field-numbers.md), and not all at
	// once. Each allocation costs a UDP socket and a goroutine.
	DefaultMaxAllocations = 128
	// DefaultMaxBytesPerSecond is the relay's total budget, in payload
	// bytes per second, both directions together: 640 KiB/s ≈ 5.2 Mbit/s,
	// half the upstream of the modest home line (~10 Mbit/s) a supernode is
	// assumed to have, since every relayed byte crosses the supernode's
	// upstream once. The node should set it from its measured bandwidth.
	DefaultMaxBytesPerSecond = 640 << 10
	// DefaultMaxBytesPerSecondPerLeaf is 256 KiB/s ≈ 2.1 Mbit/s: a
	// 100 MiB file in under 7 minutes over the relay of last resort, while
	// at least two leaves relay at full rate inside the total budget.
	// libp2p's circuit relay limit (2 min, 128 KiB per circuit) is meant for
	// hole-punch coordination only and would stop a file transfer at once.
	DefaultMaxBytesPerSecondPerLeaf = 256 << 10
	// DefaultMaxAllocationLifetime caps an allocation regardless of
	// refreshes, so that no leaf holds a relay port for ever. Downloads
	// resume from their verified pieces over a new connection, so a cut after
	// 30 minutes (≈450 MiB at the per-leaf rate) costs a reconnection.
	DefaultMaxAllocationLifetime = 30 * time.Minute

	// DefaultMaxPendingTCPPerAddr bounds the TURN-over-TCP connections one
	// address holds before any of them has sent an authenticated request.
	// An honest client is in that state for two round trips (the 401
	// challenge, then the signed Allocate), once per peer connection whose
	// ICE gathers a TCP relay candidate: a leaf opening its four allocations
	// at once (DefaultMaxAllocationsPerLeaf) with another leaf behind the
	// same NAT gathering at the same moment is eight. coturn has no such
	// cap; pion/turn offers none (it serves every accepted connection on a
	// goroutine of its own), which is how 256 silent connections from one
	// address locked every other client out.
	DefaultMaxPendingTCPPerAddr = 8
	// DefaultMaxPendingTCP bounds the unauthenticated TCP connections from
	// all addresses together: a quarter of the 256 TCP connections the relay
	// holds (twice DefaultMaxAllocations), so that clients in the middle of
	// their handshake never crowd out the connections that carry
	// allocations, while 64 handshakes at once is far more than the 200
	// leaves of a supernode (supernode.DefaultMaxLeaves) start in one
	// PendingTCPTimeout.
	DefaultMaxPendingTCP = 64
	// DefaultPendingTCPTimeout is how long a TCP connection may go without
	// an authenticated request before it is closed. It is not extended by
	// bytes that are not one, so a trickle does not keep it open. coturn's
	// max-allocate-timeout (time for the whole allocation to be set up) is
	// 60 s and pion/turn gives a TLS handshake 10 s; the two round trips a
	// client needs take well under a second on any line that can carry a
	// relayed transfer, and a TCP client that times out retries (RFC 8489
	// §6.2.2 gives its transaction 39.5 s), so 10 s refuses no one honest
	// while a flood needs a new connection every 10 s per slot.
	DefaultPendingTCPTimeout = 10 * time.Second
	// DefaultMaxTCPPerLeaf bounds the TURN-over-TCP connections one leaf's
	// credential has authenticated and that are open at once: twice
	// DefaultMaxAllocationsPerLeaf, one connection per allocation (each
	// allocation over TCP has its own connection) and as many again for
	// connections being replaced while an old one idles out. It is 8 of the
	// 256 TCP connections the relay holds in all (twice
	// DefaultMaxAllocations), a thirty-second: without it one attached
	// identity could authenticate a connection after another (an Allocate
	// refused by its allocation quota still authenticates) and keep all 256
	// for relayTCPIdle, locking every other leaf out of TURN over TCP.
	DefaultMaxTCPPerLeaf = 2 * DefaultMaxAllocationsPerLeaf
)

// Unlimited, as a Quotas rate or count, switches that limit off.
const Unlimited int64 = -1

// relayBurstTime is how much of a rate a token bucket lets through at once:
// half a second, at least relayMinBurst. That lets a congestion window's
// worth of packets pass unpaced (SCTP and TCP send in bursts) while a sender
// above its budget meets drops, which its congestion control reads as the
// signal to slow down.
const (
	relayBurstTime = 500 * time.Millisecond
	relayMinBurst  = 64 << 10
)

// relayTCPIdle closes a TURN-over-TCP connection that sent nothing for this
// long. A client with an allocation refreshes it well within pion's default
// 10-minute allocation lifetime and refreshes permissions every few minutes,
// so only dead or idle-unauthenticated connections reach it.
const relayTCPIdle = 11 * time.Minute

// relayIdleLeafKeep is how long a leaf's entry (its token bucket and usage)
// outlives its last allocation, so that closing and reopening allocations
// does not refill a leaf's bucket.
const relayIdleLeafKeep = time.Minute

// Quotas bounds what leaves may take from a supernode's relay. Zero
// fields mean the defaults (the Default* constants); Unlimited
// switches a limit off.
type Quotas struct {
	// MaxAllocationsPerLeaf is how many allocations one leaf (the node ID in
	// its credential) may hold at once.
	MaxAllocationsPerLeaf int64
	// MaxAllocations is how many allocations the relay holds at once.
	MaxAllocations int64
	// MaxBytesPerSecondPerLeaf is a token bucket over the payload bytes the
	// relay forwards for one leaf, both directions and all its allocations
	// together. Datagrams over budget are dropped, never queued.
	MaxBytesPerSecondPerLeaf int64
	// MaxBytesPerSecond is the same over all leaves together.
	MaxBytesPerSecond int64
	// MaxAllocationLifetime closes an allocation this long after it was
	// made, however often it was refreshed.
	MaxAllocationLifetime time.Duration
	// MaxBytesPerAllocation closes an allocation once it has forwarded this
	// many payload bytes. Zero (the default) means no limit.
	MaxBytesPerAllocation int64
	// MaxPendingTCPPerAddr and MaxPendingTCP bound the TURN-over-TCP
	// connections that have not yet sent an authenticated request, from one
	// IP address and in all. A connection over either is closed at once.
	MaxPendingTCPPerAddr, MaxPendingTCP int64
	// PendingTCPTimeout closes a TCP connection that has sent no
	// authenticated request this long after it was accepted.
	PendingTCPTimeout time.Duration
	// MaxTCPPerLeaf bounds the TCP connections one leaf's credential has
	// authenticated that are open at once; an authenticated request over
	// the bound is refused and its connection closed.
	MaxTCPPerLeaf int64
}

// DefaultQuotas returns the quotas of a home supernode, each explained
// at its Default* constant.
func DefaultQuotas() Quotas {
	return Quotas{
		MaxAllocationsPerLeaf:    DefaultMaxAllocationsPerLeaf,
		MaxAllocations:           DefaultMaxAllocations,
		MaxBytesPerSecondPerLeaf: DefaultMaxBytesPerSecondPerLeaf,
		MaxBytesPerSecond:        DefaultMaxBytesPerSecond,
		MaxAllocationLifetime:    DefaultMaxAllocationLifetime,
		MaxPendingTCPPerAddr:     DefaultMaxPendingTCPPerAddr,
		MaxPendingTCP:            DefaultMaxPendingTCP,
		PendingTCPTimeout:        DefaultPendingTCPTimeout,
		MaxTCPPerLeaf:            DefaultMaxTCPPerLeaf,
	}
}

// withDefaults fills zero fields from DefaultQuotas.
func (q Quotas) withDefaults() Quotas {
	d := DefaultQuotas()
	if q.MaxAllocationsPerLeaf == 0 {
		q.MaxAllocationsPerLeaf = d.MaxAllocationsPerLeaf
	}
	if q.MaxAllocations == 0 {
		q.MaxAllocations = d.MaxAllocations
	}
	if q.MaxBytesPerSecondPerLeaf == 0 {
		q.MaxBytesPerSecondPerLeaf = d.MaxBytesPerSecondPerLeaf
	}
	if q.MaxBytesPerSecond == 0 {
		q.MaxBytesPerSecond = d.MaxBytesPerSecond
	}
	if q.MaxAllocationLifetime == 0 {
		q.MaxAllocationLifetime = d.MaxAllocationLifetime
	}
	if q.MaxPendingTCPPerAddr == 0 {
		q.MaxPendingTCPPerAddr = d.MaxPendingTCPPerAddr
	}
	if q.MaxPendingTCP == 0 {
		q.MaxPendingTCP = d.MaxPendingTCP
	}
	if q.MaxTCPPerLeaf == 0 {
		q.MaxTCPPerLeaf = d.MaxTCPPerLeaf
	}
	if q.PendingTCPTimeout == 0 {
		q.PendingTCPTimeout = d.PendingTCPTimeout
	}
	return q
}

// Config configures a supernode's TURN relay (New).
type Config struct {
	// ListenUDP lists the host:port addresses TURN clients reach over UDP.
	// Each gets ListenUDPSockets sockets sharing the port. Nil means no UDP
	// listener; DefaultConfig listens on 0.0.0.0:3478.
	ListenUDP []string
	// ListenUDPSockets is how many sockets share each ListenUDP port, each
	// with its own pion reader goroutine, so that more than one core serves
	// clients. Zero means DefaultListenUDPSockets: 2 on Linux (SO_REUSEPORT: the kernel spreads
	// clients by address hash, and a client always lands on the same socket,
	// so this helps many clients rather than one fast one) and 1 elsewhere,
	// where the port cannot be shared that way.
	ListenUDPSockets int
	// ListenTCP is the host:port of TURN over TCP, for leaves on networks
	// that block UDP (the relayed leg to the peer is still UDP). Empty means
	// none; DefaultConfig listens on 0.0.0.0:3478.
	ListenTCP string
	// RelayIP is the address put in relayed candidates (XOR-RELAYED-ADDRESS)
	// and in the URLs of TURNServers: the supernode's public address. It
	// must be set. Allocations are made in its address family only: with an
	// IPv6 RelayIP, only clients that ask for IPv6 (REQUESTED-ADDRESS-FAMILY,
	// RFC 6156) get one.
	RelayIP netip.Addr
	// RelayBindIP is the local address relay sockets bind to. The zero value
	// means RelayIP; set it (e.g. to 0.0.0.0) when RelayIP is not assigned to
	// a local interface, as behind a 1:1 NAT.
	RelayBindIP netip.Addr
	// RelayPortMin and RelayPortMax bound the relay sockets' ports, for
	// firewalls that open a range. Both zero means any ephemeral port.
	RelayPortMin, RelayPortMax uint16
	// Realm is the TURN realm. Empty means DefaultRealm.
	Realm string
	// Creds issues and checks the leaves' credentials. It must not be nil.
	Creds *Creds
	// Quotas bounds allocations and bandwidth; zero fields take defaults.
	Quotas Quotas
	// SocketBuffer is the receive and send buffer, in bytes, of listening
	// and relay sockets. Zero means DefaultSocketBuffer; negative leaves
	// the OS default.
	SocketBuffer int
	// AllowPeer decides which peer addresses leaves may relay to (TURN
	// permissions, RFC 8656 §9). Nil means PublicPeer, which keeps the relay
	// from being used to reach the supernode's own LAN or loopback services.
	// It is called on the server's read goroutines and must not block.
	AllowPeer func(netip.Addr) bool
	// Logger receives the relay's logs and pion's (named "pion.turn"). Nil
	// discards them.
	Logger *zap.Logger
	// ListenPacket opens UDP sockets (listeners and relay sockets). Nil means
	// the operating system's, with SO_REUSEPORT on listeners and SocketBuffer
	// applied. Tests may inject pion's vnet or a wrapper; an injected
	// function is called once per listening socket (the extra sockets of a
	// port get the first one's resolved address) and must be safe for
	// concurrent use.
	ListenPacket func(network, address string) (net.PacketConn, error)
	// Listen opens the TURN-over-TCP listener. Nil means net.Listen.
	Listen func(network, address string) (net.Listener, error)
}

// DefaultConfig returns a relay on the standard TURN port over UDP and
// TCP with the default quotas. RelayIP and Creds must still be set.
func DefaultConfig() Config {
	addr := net.JoinHostPort("0.0.0.0", strconv.Itoa(DefaultPort))
	return Config{
		ListenUDP:        []string{addr},
		ListenUDPSockets: DefaultListenUDPSockets,
		ListenTCP:        addr,
		Realm:            DefaultRealm,
		Quotas:           DefaultQuotas(),
		SocketBuffer:     DefaultSocketBuffer,
	}
}

// withDefaults fills the zero fields that have a default: Realm,
// ListenUDPSockets, SocketBuffer and the quotas. The listeners have none: a
// Config without them listens on nothing, which Validate refuses.
func (c Config) withDefaults() Config {
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	if c.ListenUDPSockets == 0 {
		c.ListenUDPSockets = DefaultListenUDPSockets
	}
	if c.SocketBuffer == 0 {
		c.SocketBuffer = DefaultSocketBuffer
	}
	c.Quotas = c.Quotas.withDefaults()
	return c
}

// Validate reports a configuration New refuses. Its errors wrap ErrConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, why string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(why, args...)))
	}
	if c.Creds == nil {
		bad("Creds", "must be set")
	}
	if !c.RelayIP.IsValid() || c.RelayIP.IsUnspecified() {
		bad("RelayIP", "must be a concrete address")
	}
	if c.RelayBindIP.IsValid() && c.RelayIP.IsValid() && c.RelayBindIP.Unmap().Is4() != c.RelayIP.Unmap().Is4() {
		bad("RelayBindIP", "must be of RelayIP's address family")
	}
	if (c.RelayPortMin == 0) != (c.RelayPortMax == 0) || c.RelayPortMin > c.RelayPortMax {
		bad("RelayPortMin, RelayPortMax", "bad relay port range %d-%d: set both, min <= max", c.RelayPortMin, c.RelayPortMax)
	}
	if len(c.ListenUDP) == 0 && c.ListenTCP == "" {
		bad("ListenUDP, ListenTCP", "nothing to listen on: set one")
	}
	if c.ListenUDPSockets < 0 {
		bad("ListenUDPSockets", "must not be negative")
	}
	q := c.Quotas
	if q.MaxAllocationsPerLeaf < Unlimited || q.MaxAllocations < Unlimited ||
		q.MaxBytesPerSecondPerLeaf < Unlimited || q.MaxBytesPerSecond < Unlimited ||
		q.MaxAllocationLifetime < 0 || q.MaxBytesPerAllocation < 0 ||
		q.MaxPendingTCPPerAddr < Unlimited || q.MaxPendingTCP < Unlimited || q.PendingTCPTimeout < 0 ||
		q.MaxTCPPerLeaf < Unlimited {
		bad("Quotas", "must be positive, zero (default) or Unlimited")
	}
	return errors.Join(errs...)
}

// PublicPeer reports whether a is a public unicast address: not loopback,
// private (RFC 1918, RFC 4193), link-local, multicast, unspecified, CGNAT
// shared space (RFC 6598), benchmarking (RFC 2544) or reserved (240/4). It is
// the default Config.AllowPeer: relaying to anything else would let a
// leaf reach hosts and services on the supernode's side that it could not
// reach directly, the classic TURN open-proxy abuse. Documentation ranges stay
// allowed, so that the NAT lab, which uses them, can relay.
func PublicPeer(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	for _, p := range nonPublicPrefixes {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

var nonPublicPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// Stats is a snapshot of a relay's activity since it started.
type Stats struct {
	// Allocations and Leaves are the allocations open now and the leaves
	// holding them.
	Allocations, Leaves int
	// BytesRelayed and PacketsRelayed count payload forwarded, both ways.
	BytesRelayed, PacketsRelayed uint64
	// Dropped and DroppedBytes count datagrams dropped by a bandwidth quota.
	Dropped, DroppedBytes uint64
	// Refused counts refused requests: RefusedAuth (malformed, expired or
	// wrong credentials, foreign realm) + RefusedQuota (allocation quotas) +
	// RefusedPeer (permissions to peers AllowPeer rejects).
	Refused, RefusedAuth, RefusedQuota, RefusedPeer uint64
	// Capped counts allocations the relay closed for reaching
	// MaxAllocationLifetime or MaxBytesPerAllocation.
	Capped uint64
	// Refusals breaks the refusals down by reason (RefusedAuth covers
	// Refusals.Auth, Detached and Revoked), with the TCP connections refused
	// and the allocations evicted or revoked.
	Refusals RefusalCounts
	// Attached is how many leaves are attached (Attach) now; PendingTCP how
	// many TCP connections have not authenticated yet.
	Attached, PendingTCP int
	// PerLeaf is the usage of each leaf that holds an allocation or held one
	// in the last minute, by leaf ID.
	PerLeaf []LeafStats
}

// LeafStats is one leaf's use of the relay.
type LeafStats struct {
	// Leaf is the leaf's node ID, as in its credential.
	Leaf string
	// Allocations is how many allocations the leaf holds now.
	Allocations int
	// BytesRelayed, PacketsRelayed and Dropped are as in Stats, for
	// this leaf, since its entry was created.
	BytesRelayed, PacketsRelayed, Dropped uint64
}

// Relay is a supernode's TURN relay (RFC 8656) for its leaves: pion/turn's
// server with per-leaf credentials (Creds), allocation and bandwidth
// quotas, a lifetime cap, statistics, and socket settings for throughput.
//
// pion/turn gives three seams, and the relay uses each for what it is sure to
// see: the AuthHandler maps a credential to its leaf (pion's "user ID", which
// then tags the allocation); the QuotaHandler refuses an allocation over quota
// with a proper 486; and the RelayAddressGenerator, which pion asks for every
// relay socket, counts allocations by the socket's life (race-free, unlike
// counting events) and wraps the socket to meter and police its datagrams in
// both directions. Closing that socket is how a cap ends an allocation: pion
// deletes an allocation whose relay socket fails. Underneath pion, sockets
// are read and written in batches (relay_batch.go), which is most of what
// makes the relay keep up with coturn (BenchmarkRelayVsCoturn).
//
// A Relay is safe for concurrent use.
type Relay struct {
	cfg     Config
	quotas  Quotas
	log     *zap.Logger
	server  *turn.Server
	bindIP  netip.Addr
	limiter *rate.Limiter // over all leaves; nil when unlimited

	udpAddrs []netip.AddrPort // one per ListenUDP entry, as bound
	tcpAddr  netip.AddrPort   // zero without a TCP listener

	// relayIP is Config.RelayIP until SetRelayIP changes it: a supernode
	// behind a home router learns its public address after the relay has
	// started, and again when the router's address changes.
	relayIP atomic.Pointer[netip.Addr]

	// loops counts the read loops pion runs on sockets the relay owns
	// (listeners, relay sockets, TCP connections); each is done when its
	// socket's read fails, which is how every pion loop ends. Close waits
	// for them, so that no goroutine outlives the relay.
	loops     sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	// Counters of Stats that no lock guards.
	ref        refusals
	capped     atomic.Uint64
	bufferWarn sync.Once

	// mu guards the fields below.
	mu       sync.Mutex
	closed   bool
	leaves   map[string]*relayLeaf
	allocs   map[*relayAlloc]struct{}
	tcpConns map[*relayTCPConn]struct{}
	// tcpByRemote finds a TCP connection by its client's address, which
	// is the source address pion reports for its requests.
	tcpByRemote map[netip.AddrPort]*relayTCPConn
	// pendingTCP counts the unauthenticated TCP connections per client IP;
	// pendingTotal is their sum.
	pendingTCP   map[netip.Addr]int
	pendingTotal int
	// tcpPerLeaf counts the open TCP connections each leaf's credential
	// authenticated (MaxTCPPerLeaf).
	tcpPerLeaf map[string]int
	// attached maps the leaves attached now (Attach) to their credential
	// floor: a credential of the leaf must expire after it.
	attached  map[string]int64
	total     int       // allocations open, including those being bound
	allocSeq  uint64    // numbers allocations in the order they were made
	retired   relayUse  // usage of closed allocations
	lastSweep time.Time // of idle leaves
}

// relayUse is forwarded and dropped traffic.
type relayUse struct {
	bytes, packets, dropped, droppedBytes uint64
}

func (u *relayUse) add(v relayUse) {
	u.bytes += v.bytes
	u.packets += v.packets
	u.dropped += v.dropped
	u.droppedBytes += v.droppedBytes
}

// relayLeaf is one leaf's quota state. allocs, idleSince and retired are
// guarded by Relay.mu; limiter is safe on its own.
type relayLeaf struct {
	id        string
	allocs    int // including those being bound
	limiter   *rate.Limiter
	idleSince time.Time
	retired   relayUse
}

// New opens the relay's sockets and starts serving. Close releases
// everything.
func New(cfg Config) (*Relay, error) {
	cfg = cfg.withDefaults()
	cfg.RelayIP, cfg.RelayBindIP = cfg.RelayIP.Unmap(), cfg.RelayBindIP.Unmap()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Relay{
		cfg:      cfg,
		quotas:   cfg.Quotas,
		log:      cfg.Logger,
		bindIP:   cfg.RelayBindIP,
		leaves:   make(map[string]*relayLeaf),
		allocs:   make(map[*relayAlloc]struct{}),
		tcpConns: make(map[*relayTCPConn]struct{}),

		tcpByRemote: make(map[netip.AddrPort]*relayTCPConn),
		pendingTCP:  make(map[netip.Addr]int),
		tcpPerLeaf:  make(map[string]int),
		attached:    make(map[string]int64),
	}
	if r.log == nil {
		r.log = zap.NewNop()
	}
	r.log = r.log.Named("relay")
	r.ref.log, r.ref.lines.Every = r.log, refusalLogInterval
	if !r.bindIP.IsValid() {
		r.bindIP = cfg.RelayIP
	}
	r.limiter = newRelayLimiter(r.quotas.MaxBytesPerSecond)
	relayIP := cfg.RelayIP
	r.relayIP.Store(&relayIP)

	var pcs []turn.PacketConnConfig
	var lns []turn.ListenerConfig
	fail := func(err error) (*Relay, error) {
		for _, pc := range pcs {
			_ = pc.PacketConn.Close()
		}
		for _, l := range lns {
			_ = l.Listener.Close()
		}
		return nil, err
	}
	for _, addr := range cfg.ListenUDP {
		conns, err := r.listenUDP(addr)
		if err != nil {
			return fail(err)
		}
		for _, c := range conns {
			lc := &relayListenConn{PacketConn: c, done: r.loops.Done}
			gen := &relayAddressGenerator{r: r}
			if bc := newRelayBatchConn(c); bc != nil {
				lc.reader = newRelayBatchReader(bc, relayListenBatch)
				lc.queue = newRelaySendQueue(relayListenBatch)
				gen.queue = lc.queue
			}
			pcs = append(pcs, turn.PacketConnConfig{
				PacketConn:            lc,
				RelayAddressGenerator: gen,
				PermissionHandler:     r.permit,
			})
		}
		r.udpAddrs = append(r.udpAddrs, relayAddrPort(conns[0].LocalAddr()))
	}
	if cfg.ListenTCP != "" {
		listen := cfg.Listen
		if listen == nil {
			listen = net.Listen
		}
		l, err := listen("tcp", cfg.ListenTCP)
		if err != nil {
			return fail(fmt.Errorf("relay: listen tcp %s: %w", cfg.ListenTCP, err))
		}
		r.tcpAddr = relayAddrPort(l.Addr())
		lns = append(lns, turn.ListenerConfig{
			Listener:              &relayTCPListener{Listener: l, r: r},
			RelayAddressGenerator: &relayAddressGenerator{r: r},
			PermissionHandler:     r.permit,
		})
	}

	// One read loop per listener. turn.NewServer validates its whole
	// configuration before it starts any, so on error none runs.
	r.loops.Add(len(pcs) + len(lns))
	srv, err := turn.NewServer(turn.ServerConfig{
		PacketConnConfigs: pcs,
		ListenerConfigs:   lns,
		LoggerFactory:     logbridge.Pion(cfg.Logger),
		Realm:             cfg.Realm,
		AuthHandler:       r.authenticate,
		QuotaHandler:      r.allowAllocation,
		EventHandler: turn.EventHandler{
			OnAuth: r.onAuth,
		},
		// RFC 6156: an Allocate without REQUESTED-ADDRESS-FAMILY asks for
		// IPv4, whatever the family of the socket it arrived on. The relay
		// serves RelayIP's family only, so this makes the answer predictable.
		StrictAddressFamily: true,
	})
	if err != nil {
		return fail(fmt.Errorf("relay: %w", err))
	}
	r.server = srv
	r.log.Info("TURN relay listening",
		zap.Stringers("udp", r.udpAddrs), zap.Int("udp_sockets_per_port", cfg.ListenUDPSockets),
		zap.Stringer("tcp", r.tcpAddr), zap.Stringer("relay_ip", cfg.RelayIP))
	return r, nil
}

// listenUDP opens the ListenUDPSockets sockets of one listening address. The
// extra sockets bind the first one's resolved address, so that a port of 0
// gives one shared ephemeral port. A failure on an extra socket leaves the
// relay with fewer readers, which is worth a warning, not a refusal to start.
func (r *Relay) listenUDP(addr string) ([]net.PacketConn, error) {
	first, err := r.listenPacket("udp", addr, true)
	if err != nil {
		return nil, fmt.Errorf("relay: listen udp %s: %w", addr, err)
	}
	conns := []net.PacketConn{first}
	for len(conns) < r.cfg.ListenUDPSockets {
		c, err := r.listenPacket("udp", first.LocalAddr().String(), true)
		if err != nil {
			r.log.Warn("fewer listening sockets than configured",
				zap.String("addr", addr), zap.Int("sockets", len(conns)), zap.Error(err))
			break
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// listenPacket opens one UDP socket, through cfg.ListenPacket if set.
// reusePort asks for SO_REUSEPORT, which only listening sockets get: two relay
// sockets must never share a port.
func (r *Relay) listenPacket(network, addr string, reusePort bool) (net.PacketConn, error) {
	if r.cfg.ListenPacket != nil {
		return r.cfg.ListenPacket(network, addr)
	}
	var lc net.ListenConfig
	if reusePort && relayReusePort && r.cfg.ListenUDPSockets > 1 {
		lc.Control = controlRelayReusePort
	}
	pc, err := lc.ListenPacket(context.Background(), network, addr)
	if err != nil {
		return nil, err
	}
	if uc, ok := pc.(*net.UDPConn); ok && r.cfg.SocketBuffer > 0 {
		got, err := setRelaySocketBuffers(uc, r.cfg.SocketBuffer)
		if err != nil || got < r.cfg.SocketBuffer {
			r.bufferWarn.Do(func() {
				r.log.Warn("socket buffers smaller than configured; raise net.core.rmem_max/wmem_max or run with CAP_NET_ADMIN",
					zap.Int("want", r.cfg.SocketBuffer), zap.Int("got", got), zap.Error(err))
			})
		}
	}
	return pc, nil
}

// relayAddrPort converts a *net.UDPAddr or *net.TCPAddr; other kinds give the
// zero AddrPort.
func relayAddrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort()
	case *net.TCPAddr:
		return a.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// TURNServers issues a credential for leaf and returns the relay's URLs with
// it, ready for ice.Config.TURN: one per UDP listening port, and one for TURN
// over TCP if there is a TCP listener. The URLs name RelayIP with the ports
// the listeners are bound to; a supernode whose listeners are reached on
// other ports (port forwarding) must rewrite them.
//
// Only an attached leaf (Attach) gets a credential; for any other leaf
// TURNServers returns nil. The credential works while the leaf stays
// attached, and never again once it has detached, even if it attaches anew.
func (r *Relay) TURNServers(leaf identity.NodeID, now time.Time) []ice.TURNServer {
	r.mu.Lock()
	floor, ok := r.attached[leaf.String()]
	r.mu.Unlock()
	if !ok {
		return nil
	}
	cred := r.cfg.Creds.issue(leaf, now, floor)
	var out []ice.TURNServer
	relayIP := r.RelayIP()
	url := func(port uint16, transport string) string {
		return "turn:" + netip.AddrPortFrom(relayIP, port).String() + "?transport=" + transport
	}
	for _, a := range r.udpAddrs {
		out = append(out, ice.TURNServer{URL: url(a.Port(), "udp"), Username: cred.Username, Credential: cred.Password})
	}
	if r.tcpAddr.IsValid() {
		out = append(out, ice.TURNServer{URL: url(r.tcpAddr.Port(), "tcp"), Username: cred.Username, Credential: cred.Password})
	}
	return out
}

// RelayIP is the address relayed candidates and TURNServers name now.
func (r *Relay) RelayIP() netip.Addr { return *r.relayIP.Load() }

// SetRelayIP changes the address put in relayed candidates and URLs from
// now on; allocations made before keep the address they were given. It
// must be a concrete address of the family the relay sockets bind to,
// since the sockets stay where they are.
func (r *Relay) SetRelayIP(ip netip.Addr) error {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsUnspecified() {
		return fmt.Errorf("%w: RelayIP %s must be a concrete address", ErrConfig, ip)
	}
	if ip.Is4() != r.bindIP.Unmap().Is4() {
		return fmt.Errorf("%w: RelayIP %s is not of the relay sockets' address family (%s)", ErrConfig, ip, r.bindIP)
	}
	if prev := r.relayIP.Swap(&ip); *prev != ip {
		r.log.Info("relay address changed", zap.Stringer("from", *prev), zap.Stringer("to", ip))
	}
	return nil
}

// UDPAddrs returns the bound address of each ListenUDP entry (its sockets
// share it).
func (r *Relay) UDPAddrs() []netip.AddrPort { return slices.Clone(r.udpAddrs) }

// TCPAddr returns the bound TURN-over-TCP address; zero without one.
func (r *Relay) TCPAddr() netip.AddrPort { return r.tcpAddr }

// Stats returns a snapshot of the relay's activity.
func (r *Relay) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	ref := r.ref.Snapshot()
	s := Stats{
		RefusedAuth:  ref.Auth + ref.Detached + ref.Revoked,
		RefusedQuota: ref.Quota,
		RefusedPeer:  ref.Peer,
		Capped:       r.capped.Load(),
		Allocations:  len(r.allocs),
		Refusals:     ref,
		Attached:     len(r.attached),
		PendingTCP:   r.pendingTotal,
	}
	s.Refused = s.RefusedAuth + s.RefusedQuota + s.RefusedPeer
	total := r.retired
	perLeaf := make(map[*relayLeaf]*relayUse, len(r.leaves))
	for _, l := range r.leaves {
		u := l.retired
		perLeaf[l] = &u
	}
	for a := range r.allocs {
		u := a.use()
		total.add(u)
		if lu := perLeaf[a.leaf]; lu != nil {
			lu.add(u)
		}
	}
	s.BytesRelayed, s.PacketsRelayed, s.Dropped, s.DroppedBytes = total.bytes, total.packets, total.dropped, total.droppedBytes
	for l, u := range perLeaf {
		if l.allocs > 0 {
			s.Leaves++
		}
		s.PerLeaf = append(s.PerLeaf, LeafStats{
			Leaf: l.id, Allocations: l.allocs,
			BytesRelayed: u.bytes, PacketsRelayed: u.packets, Dropped: u.dropped,
		})
	}
	slices.SortFunc(s.PerLeaf, func(a, b LeafStats) int {
		switch {
		case a.Leaf < b.Leaf:
			return -1
		case a.Leaf > b.Leaf:
			return 1
		}
		return 0
	})
	return s
}

// Close stops the relay: it closes the listeners, every TURN-over-TCP
// connection and every allocation, and returns once pion's read loops on
// them have ended. It is idempotent.
func (r *Relay) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		allocs := make([]*relayAlloc, 0, len(r.allocs))
		for a := range r.allocs {
			allocs = append(allocs, a)
		}
		tcps := make([]*relayTCPConn, 0, len(r.tcpConns))
		for c := range r.tcpConns {
			tcps = append(tcps, c)
		}
		r.mu.Unlock()

		// pion's Server.Close closes the listeners but not the connections
		// accepted on the TCP one, nor (until its loops notice) the
		// allocations; close those here so that nothing is left running.
		r.closeErr = r.server.Close()
		for _, c := range tcps {
			_ = c.Close()
		}
		for _, a := range allocs {
			_ = a.Close()
		}
		r.loops.Wait()
		r.log.Info("TURN relay closed")
	})
	return r.closeErr
}

// authenticate is the pion AuthHandler. The user ID it returns, the leaf's
// node ID, is what pion tags the allocation with and hands to allowAllocation
// and the address generator, and what it compares on Refresh, so a leaf may
// refresh with a newer credential than the one it allocated with.
//
// It also ties the credential to the leaf's attachment: pion asks it for
// every authenticated request (Allocate, Refresh, CreatePermission,
// ChannelBind), so a leaf that detached can neither allocate nor keep an
// allocation alive, whatever the expiry in its user name.
func (r *Relay) authenticate(ra *turn.RequestAttributes) (string, []byte, bool) {
	if ra.Realm != r.cfg.Realm {
		// The realm is the client's text: its length only.
		r.ref.refuse(refusedAuth, zap.String("why", "foreign realm"), zap.Int("realm_len", len(ra.Realm)),
			zap.Stringer("from", ra.SrcAddr))
		return "", nil, false
	}
	exp, leaf, key, err := r.cfg.Creds.check(ra.Username, ra.Realm)
	if err != nil {
		// Check's errors quote at most a bounded user name (maxRelayUsernameLen).
		r.ref.refuse(refusedAuth, zap.Error(err), zap.Stringer("from", ra.SrcAddr),
			zap.String("method", ra.Method.String()))
		return "", nil, false
	}
	id := leaf.String()
	r.mu.Lock()
	floor, attached := r.attached[id]
	r.mu.Unlock()
	switch {
	case !attached:
		r.ref.refuse(refusedDetached, zap.String("leaf", leaf.Short()), zap.Stringer("from", ra.SrcAddr))
		return "", nil, false
	case exp <= floor:
		r.ref.refuse(refusedRevoked, zap.String("leaf", leaf.Short()), zap.Stringer("from", ra.SrcAddr))
		return "", nil, false
	}
	if ta, isTCP := ra.SrcAddr.(*net.TCPAddr); isTCP && r.tcpOverLeafCap(ta.AddrPort(), id) {
		// Refused before MESSAGE-INTEGRITY is checked, so that the
		// request does nothing (no allocation on a connection about to
		// close). Only connections this leaf's valid requests
		// authenticated count, so a client without the leaf's key
		// cannot use this to lock the leaf out.
		r.ref.refuse(refusedTCPPerLeaf, zap.String("leaf", leaf.Short()), zap.Stringer("from", ra.SrcAddr))
		return "", nil, false
	}
	return id, key, true
}

// onAuth counts requests whose MESSAGE-INTEGRITY did not match the key
// authenticate derived: a wrong password, or a user name altered to claim
// another leaf or a later expiry.
//
// A request that passed is what takes a TCP connection out of the pending
// state (MaxPendingTCPPerAddr, PendingTCPTimeout): only a client holding a
// live credential of an attached leaf gets that far.
func (r *Relay) onAuth(src, _ net.Addr, _, username, _, method string, ok bool) {
	if !ok {
		r.ref.refuse(refusedAuth, zap.String("why", "bad message integrity"),
			zap.Int("username_len", len(username)), zap.Stringer("from", src), zap.String("method", method))
		return
	}
	if ta, isTCP := src.(*net.TCPAddr); isTCP {
		_, leaf, err := parseRelayUsername(username)
		if err == nil {
			r.tcpAuthenticated(ta.AddrPort(), leaf.String())
		}
	}
}

// allowAllocation is the pion QuotaHandler: it answers 486 (Allocation Quota
// Reached, RFC 8656 §7.2) when the leaf or the relay is at its quota. The
// address generator enforces the same limits atomically, as two Allocate
// requests of one leaf on different sockets may pass here together.
func (r *Relay) allowAllocation(leaf, _ string, src net.Addr) bool {
	r.mu.Lock()
	_, err := r.quotaLocked(leaf)
	r.mu.Unlock()
	if err != nil {
		r.refuseAllocation(err, src)
		return false
	}
	return true
}

// refuseAllocation counts and logs an allocation refused with err.
func (r *Relay) refuseAllocation(err error, src net.Addr) {
	why := refusedQuota
	if errors.Is(err, ErrDetached) {
		why = refusedDetached
	}
	fields := []zap.Field{zap.Error(err)}
	if src != nil {
		fields = append(fields, zap.Stringer("from", src))
	}
	r.ref.refuse(why, fields...)
}

// quotaLocked reports whether leaf may make one more allocation, and, if the
// relay is full, which allocation of another leaf gives way to it.
//
// The fairness rule, when the relay holds MaxAllocations: the newest
// allocation of the leaf holding the most gives way if that leaf holds at
// least two more than the one asking. So the relay refuses a leaf for the
// total only when no leaf holds more than one allocation above it, which
// makes the shares max-min fair: with n leaves asking, each is sure of
// min(MaxAllocationsPerLeaf, ⌊MaxAllocations/n⌋) allocations, and many
// identities can no longer take every allocation from a leaf that holds
// fewer than they do. Only attached leaves count at all (Attach), so each
// identity costs an attachment, which the supernode bounds with its leaf
// slots. The newest allocation gives way because it has carried the least
// of a transfer.
func (r *Relay) quotaLocked(leaf string) (*relayAlloc, error) {
	if r.closed {
		return nil, ErrClosed
	}
	if _, ok := r.attached[leaf]; !ok {
		return nil, fmt.Errorf("%w: leaf %s", ErrDetached, relayShortLeaf(leaf))
	}
	held := 0
	if l := r.leaves[leaf]; l != nil {
		held = l.allocs
		if max := r.quotas.MaxAllocationsPerLeaf; max != Unlimited && int64(l.allocs) >= max {
			return nil, fmt.Errorf("%w: leaf %s holds %d allocations", ErrQuota, relayShortLeaf(leaf), l.allocs)
		}
	}
	if max := r.quotas.MaxAllocations; max != Unlimited && int64(r.total) >= max {
		var victim *relayAlloc
		for a := range r.allocs {
			if a.released || a.leaf.id == leaf {
				continue
			}
			if victim == nil || a.leaf.allocs > victim.leaf.allocs ||
				a.leaf == victim.leaf && a.seq > victim.seq {
				victim = a
			}
		}
		if victim == nil || victim.leaf.allocs < held+2 {
			return nil, fmt.Errorf("%w: relay holds %d allocations, no leaf holds two more than this one's %d",
				ErrQuota, r.total, held)
		}
		return victim, nil
	}
	return nil, nil
}

// permit is the pion PermissionHandler, applied to CreatePermission and
// ChannelBind (RFC 8656 §9).
func (r *Relay) permit(client net.Addr, peer net.IP) bool {
	a, ok := netip.AddrFromSlice(peer)
	allow := r.cfg.AllowPeer
	if allow == nil {
		allow = PublicPeer
	}
	if ok && allow(a.Unmap()) {
		return true
	}
	r.ref.refuse(refusedPeer, zap.Stringer("peer", peer), zap.Stringer("from", client))
	return false
}

// reserve takes an allocation slot for leaf, evicting another leaf's
// allocation if the fairness rule (quotaLocked) says so.
func (r *Relay) reserve(leaf string) (*relayLeaf, error) {
	r.mu.Lock()
	victim, err := r.quotaLocked(leaf)
	if err != nil {
		r.mu.Unlock()
		return nil, err
	}
	if victim != nil {
		// Its slot is this leaf's from now on; the socket closes below.
		r.releaseLocked(victim.leaf, victim)
		defer victim.end("evicted for a leaf holding fewer", &r.ref.evicted)
	}
	defer r.mu.Unlock()
	now := time.Now()
	if now.Sub(r.lastSweep) > relayIdleLeafKeep {
		r.sweepLocked(now)
	}
	l := r.leaves[leaf]
	if l == nil {
		l = &relayLeaf{id: leaf, limiter: newRelayLimiter(r.quotas.MaxBytesPerSecondPerLeaf)}
		r.leaves[leaf] = l
	}
	l.allocs++
	r.total++
	return l, nil
}

// release returns a slot taken by reserve, folding the allocation's usage (if
// any) into the totals.
func (r *Relay) release(l *relayLeaf, a *relayAlloc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.releaseLocked(l, a)
}

// releaseLocked is release, once per allocation: an evicted or revoked
// allocation gives its slot up before its socket has closed.
func (r *Relay) releaseLocked(l *relayLeaf, a *relayAlloc) {
	if a != nil {
		if a.released {
			return
		}
		a.released = true
		delete(r.allocs, a)
		u := a.use()
		r.retired.add(u)
		l.retired.add(u)
	}
	l.allocs--
	r.total--
	if l.allocs == 0 {
		l.idleSince = time.Now()
	}
}

// sweepLocked forgets leaves idle for relayIdleLeafKeep, so that the map
// holds only leaves that relay now or did a minute ago.
func (r *Relay) sweepLocked(now time.Time) {
	r.lastSweep = now
	for id, l := range r.leaves {
		if l.allocs == 0 && now.Sub(l.idleSince) > relayIdleLeafKeep {
			delete(r.leaves, id)
		}
	}
}

// newRelayLimiter returns a token bucket of bytesPerSecond, or nil for
// Unlimited.
func newRelayLimiter(bytesPerSecond int64) *rate.Limiter {
	if bytesPerSecond <= 0 {
		return nil
	}
	burst := max(int(float64(bytesPerSecond)*relayBurstTime.Seconds()), relayMinBurst)
	return rate.NewLimiter(rate.Limit(bytesPerSecond), burst)
}

// relayShortLeaf abbreviates a leaf ID for logs like identity.NodeID.Short.
func relayShortLeaf(id string) string {
	if len(id) > 10 {
		return id[:10]
	}
	return id
}

// relayAddressGenerator is the pion RelayAddressGenerator: it binds relay
// sockets in the configured range and wraps them in relayAlloc. Each
// listening socket has its own, because pion keeps the allocations of each
// listening socket apart and writes to their relay sockets only from that
// socket's read goroutine, whose send queue (nil for TCP) they then share.
type relayAddressGenerator struct {
	r     *Relay
	queue *relaySendQueue
}

// Validate implements turn.RelayAddressGenerator.
func (g *relayAddressGenerator) Validate() error { return nil }

// AllocatePacketConn implements turn.RelayAddressGenerator. pion calls it
// once per Allocate, after authentication and allowAllocation.
func (g *relayAddressGenerator) AllocatePacketConn(c turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	r := g.r
	if c.UserID == "" {
		// pion probes for an even port (EVEN-PORT) with an empty user ID.
		return nil, nil, errRelayUnsupported
	}
	leaf, err := r.reserve(c.UserID)
	if err != nil {
		r.refuseAllocation(err, nil)
		return nil, nil, err
	}
	pc, port, err := r.bindRelay(c.Network, c.RequestedPort)
	if err != nil {
		r.release(leaf, nil)
		r.log.Warn("cannot open relay socket", zap.Error(err))
		return nil, nil, err
	}
	a := &relayAlloc{PacketConn: pc, r: r, leaf: leaf, done: r.loops.Done}
	if bc := newRelayBatchConn(pc); bc != nil {
		a.batch, a.queue = bc, g.queue
		a.reader = newRelayBatchReader(bc, relayAllocBatch)
	}
	r.mu.Lock()
	if _, attached := r.attached[leaf.id]; r.closed || !attached {
		// Closed, or the leaf detached while its socket was being bound.
		r.mu.Unlock()
		_ = pc.Close()
		r.release(leaf, nil)
		if r.closed {
			return nil, nil, ErrClosed
		}
		return nil, nil, fmt.Errorf("%w: leaf %s", ErrDetached, relayShortLeaf(leaf.id))
	}
	r.allocSeq++
	a.seq = r.allocSeq
	r.allocs[a] = struct{}{}
	r.loops.Add(1) // pion starts the allocation's read loop on return
	r.mu.Unlock()
	if d := r.quotas.MaxAllocationLifetime; d > 0 {
		a.capTimer.Store(time.AfterFunc(d, func() { a.capped("lifetime") }))
	}
	relayAddr := &net.UDPAddr{IP: r.RelayIP().AsSlice(), Port: int(port)}
	r.log.Debug("allocation", zap.String("leaf", relayShortLeaf(leaf.id)), zap.Stringer("relay", relayAddr))
	return a, relayAddr, nil
}

// AllocateListener implements turn.RelayAddressGenerator: RFC 6062 TCP
// allocations are not offered.
func (g *relayAddressGenerator) AllocateListener(turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, errRelayUnsupported
}

// AllocateConn implements turn.RelayAddressGenerator: RFC 6062 TCP
// allocations are not offered.
func (g *relayAddressGenerator) AllocateConn(turn.AllocateConnConfig) (net.Conn, error) {
	return nil, errRelayUnsupported
}

// relayPortTries is how many ports of a configured range bindRelay tries
// before giving up; a range that full means the relay is at capacity anyway.
const relayPortTries = 64

// bindRelay opens a relay socket of network ("udp4" or "udp6") on bindIP, in
// the port range if one is set, and returns it with its port.
func (r *Relay) bindRelay(network string, requestedPort int) (net.PacketConn, uint16, error) {
	if want4 := network == "udp4"; want4 != r.bindIP.Unmap().Is4() {
		return nil, 0, fmt.Errorf("%w: %s requested, relay address is %s", errRelayUnsupported, network, r.RelayIP())
	}
	ip := r.bindIP.Unmap()
	try := func(port uint16) (net.PacketConn, uint16, error) {
		pc, err := r.listenPacket(network, netip.AddrPortFrom(ip, port).String(), false)
		if err != nil {
			return nil, 0, err
		}
		return pc, relayAddrPort(pc.LocalAddr()).Port(), nil
	}
	lo, hi := int(r.cfg.RelayPortMin), int(r.cfg.RelayPortMax)
	if requestedPort != 0 {
		if lo != 0 && (requestedPort < lo || requestedPort > hi) || requestedPort > 65535 {
			return nil, 0, fmt.Errorf("relay: requested port %d outside %d-%d", requestedPort, lo, hi)
		}
		return try(uint16(requestedPort))
	}
	if lo == 0 {
		return try(0)
	}
	n := hi - lo + 1
	start := rand.IntN(n)
	var errs []error
	for i := range min(n, relayPortTries) {
		pc, port, err := try(uint16(lo + (start+i)%n))
		if err == nil {
			return pc, port, nil
		}
		errs = append(errs, err)
	}
	return nil, 0, fmt.Errorf("relay: no free port in %d-%d: %w", lo, hi, errors.Join(errs...))
}

// relayAlloc is one allocation's relay socket. pion reads it on the
// allocation's own goroutine (peer → leaf) and writes it on a listener's
// goroutine (leaf → peer); both pass through admit, which meters, polices and
// caps. Over-budget datagrams are dropped: queueing them would stall the
// listener goroutine that serves every other client on that socket, and the
// senders' congestion control reacts to drops.
type relayAlloc struct {
	net.PacketConn
	r        *Relay
	leaf     *relayLeaf
	done     func() // marks pion's read loop on this socket ended
	capTimer atomic.Pointer[time.Timer]

	// batch, reader and queue are nil when the socket is not an OS UDP
	// socket; queue is also nil for allocations made over TCP.
	batch  relayBatchConn
	reader *relayBatchReader
	queue  *relaySendQueue

	bytes, packets, dropped, droppedBytes atomic.Uint64

	closing            atomic.Bool // set by the first of capped, end and Close
	closeOnce, readEnd sync.Once
	closeErr           error

	// seq and released are guarded by Relay.mu: the allocation's place in
	// the order allocations were made (eviction takes the newest), and
	// whether its slot has been given back.
	seq      uint64
	released bool
}

// end closes the allocation for the relay's own reason (eviction,
// revocation), counting it in n. Its slot was released already.
func (a *relayAlloc) end(why string, n *atomic.Uint64) {
	if a.closing.Swap(true) {
		return
	}
	n.Add(1)
	a.r.log.Debug("allocation ended", zap.String("why", why), zap.String("leaf", relayShortLeaf(a.leaf.id)))
	a.closeOnce.Do(a.close)
}

// use returns the allocation's counters.
func (a *relayAlloc) use() relayUse {
	return relayUse{
		bytes: a.bytes.Load(), packets: a.packets.Load(),
		dropped: a.dropped.Load(), droppedBytes: a.droppedBytes.Load(),
	}
}

// admit decides whether an n-byte datagram may pass, and counts it.
func (a *relayAlloc) admit(n int) bool {
	now := time.Now()
	if lim := a.leaf.limiter; lim != nil && !lim.AllowN(now, n) {
		a.drop(n)
		return false
	}
	if lim := a.r.limiter; lim != nil && !lim.AllowN(now, n) {
		a.drop(n)
		return false
	}
	b := a.bytes.Add(uint64(n))
	a.packets.Add(1)
	if max := a.r.quotas.MaxBytesPerAllocation; max > 0 && b >= uint64(max) {
		// Let the datagram that reached the cap pass; the next read or
		// write fails and pion deletes the allocation.
		a.capped("volume")
	}
	return true
}

func (a *relayAlloc) drop(n int) {
	a.dropped.Add(1)
	a.droppedBytes.Add(uint64(n))
}

// ReadFrom reads the next datagram a peer sent that fits the budget.
func (a *relayAlloc) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		var n int
		var from net.Addr
		var err error
		if a.reader != nil {
			n, from, err = a.reader.readFrom(p)
		} else {
			n, from, err = a.PacketConn.ReadFrom(p)
		}
		if err != nil {
			a.readEnd.Do(a.done)
			return n, from, err
		}
		if a.admit(n) {
			return n, from, nil
		}
	}
}

// WriteTo sends a leaf's datagram to a peer if it fits the budget. A dropped
// datagram reports success, as a datagram lost in the network would.
func (a *relayAlloc) WriteTo(p []byte, to net.Addr) (int, error) {
	if !a.admit(len(p)) {
		return len(p), nil
	}
	if ua, ok := to.(*net.UDPAddr); ok && a.queue != nil {
		a.queue.add(a, p, ua)
		return len(p), nil
	}
	return a.PacketConn.WriteTo(p, to)
}

// capped ends the allocation for reaching a cap.
func (a *relayAlloc) capped(why string) {
	if a.closing.Swap(true) {
		return
	}
	a.r.capped.Add(1)
	a.r.log.Info("allocation capped", zap.String("cap", why), zap.String("leaf", relayShortLeaf(a.leaf.id)),
		zap.Uint64("bytes", a.bytes.Load()))
	a.closeOnce.Do(a.close)
}

// Close closes the relay socket and releases the allocation's slot. pion
// calls it when the allocation ends; the relay calls it for caps and Close.
func (a *relayAlloc) Close() error {
	a.closing.Store(true)
	a.closeOnce.Do(a.close)
	return a.closeErr
}

func (a *relayAlloc) close() {
	if t := a.capTimer.Load(); t != nil {
		t.Stop()
	}
	a.closeErr = a.PacketConn.Close()
	a.r.release(a.leaf, a)
}

// relayListenConn is a listening UDP socket. It reads in batches, sends the
// relay writes queued while pion handled a batch before reading the next
// (see relay_batch.go), and tells the relay when pion's read loop on it ends.
type relayListenConn struct {
	net.PacketConn
	reader  *relayBatchReader // nil: one datagram per read
	queue   *relaySendQueue   // nil with reader
	done    func()
	readEnd sync.Once
}

// ReadFrom implements net.PacketConn.
func (c *relayListenConn) ReadFrom(p []byte) (int, net.Addr, error) {
	var n int
	var from net.Addr
	var err error
	if c.reader != nil {
		if !c.reader.buffered() {
			c.queue.flush()
		}
		n, from, err = c.reader.readFrom(p)
	} else {
		n, from, err = c.PacketConn.ReadFrom(p)
	}
	if err != nil {
		c.readEnd.Do(c.done)
	}
	return n, from, err
}

// relayTCPListener tracks the TURN-over-TCP connections it accepts, which
// pion's Server.Close leaves open, and bounds how many there are.
type relayTCPListener struct {
	net.Listener
	r       *Relay
	readEnd sync.Once
}

// Accept implements net.Listener.
func (l *relayTCPListener) Accept() (net.Conn, error) {
	r := l.r
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			l.readEnd.Do(r.loops.Done)
			return nil, err
		}
		remote := relayAddrPort(c.RemoteAddr())
		remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
		ip := remote.Addr()
		tc := &relayTCPConn{Conn: c, r: r, remote: remote, pending: true}
		q := r.quotas
		var why refusal
		r.mu.Lock()
		switch {
		case r.closed:
			r.mu.Unlock()
			_ = c.Close()
			l.readEnd.Do(r.loops.Done)
			return nil, net.ErrClosed
		case q.MaxAllocations != Unlimited && int64(len(r.tcpConns)) >= 2*q.MaxAllocations:
			// Each connection costs pion a goroutine before it has
			// authenticated anything; twice the allocation quota leaves room
			// for clients that connect without allocating.
			why = refusedTCPTotal
		case q.MaxPendingTCPPerAddr != Unlimited && int64(r.pendingTCP[ip]) >= q.MaxPendingTCPPerAddr:
			why = refusedTCPPerAddr
		case q.MaxPendingTCP != Unlimited && int64(r.pendingTotal) >= q.MaxPendingTCP:
			why = refusedTCPPending
		}
		if why != 0 {
			r.mu.Unlock()
			_ = c.Close()
			r.ref.refuse(why, zap.Stringer("from", remote))
			continue
		}
		r.tcpConns[tc] = struct{}{}
		r.tcpByRemote[remote] = tc
		r.pendingTCP[ip]++
		r.pendingTotal++
		r.loops.Add(1)
		r.mu.Unlock()
		if d := q.PendingTCPTimeout; d > 0 {
			// A fixed deadline from accept, which Read does not move while
			// the connection is pending, so that trickled bytes buy nothing.
			_ = c.SetReadDeadline(time.Now().Add(d))
		}
		return tc, nil
	}
}

// relayTCPConn is one TURN-over-TCP client connection. It is pending
// until a request on it authenticates (onAuth), and counts against
// MaxPendingTCPPerAddr and MaxPendingTCP until then.
type relayTCPConn struct {
	net.Conn
	r         *Relay
	remote    netip.AddrPort
	authed    atomic.Bool // mirrors !pending for Read, which takes no lock
	readEnd   sync.Once
	closeOnce sync.Once

	// pending and leaf are guarded by Relay.mu; leaf is the leaf whose
	// credential authenticated the connection.
	pending bool
	leaf    string
}

// Read implements net.Conn. A pending connection keeps the deadline set on
// accept; an authenticated one is closed once idle for relayTCPIdle.
func (c *relayTCPConn) Read(p []byte) (int, error) {
	authed := c.authed.Load()
	if authed {
		_ = c.Conn.SetReadDeadline(time.Now().Add(relayTCPIdle))
	}
	n, err := c.Conn.Read(p)
	if err != nil {
		var ne net.Error
		if !authed && !c.authed.Load() && errors.As(err, &ne) && ne.Timeout() {
			c.r.ref.refuse(refusedTCPNoAuth, zap.Stringer("from", c.remote))
		}
		c.readEnd.Do(c.r.loops.Done)
	}
	return n, err
}

// Close implements net.Conn.
func (c *relayTCPConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		r := c.r
		r.mu.Lock()
		delete(r.tcpConns, c)
		if r.tcpByRemote[c.remote] == c {
			delete(r.tcpByRemote, c.remote)
		}
		r.unpendLocked(c)
		if c.leaf != "" {
			if r.tcpPerLeaf[c.leaf]--; r.tcpPerLeaf[c.leaf] <= 0 {
				delete(r.tcpPerLeaf, c.leaf)
			}
		}
		r.mu.Unlock()
	})
	return err
}

// unpendLocked takes c out of the pending counts, once.
func (r *Relay) unpendLocked(c *relayTCPConn) {
	if !c.pending {
		return
	}
	c.pending = false
	ip := c.remote.Addr()
	if r.pendingTCP[ip]--; r.pendingTCP[ip] <= 0 {
		delete(r.pendingTCP, ip)
	}
	r.pendingTotal--
}

// tcpOverLeafCap reports whether an authenticated request of leaf on the TCP
// connection from remote would take the leaf past MaxTCPPerLeaf: the
// connection is not yet the leaf's, and the leaf holds as many as the cap.
// The connection is then closed.
func (r *Relay) tcpOverLeafCap(remote netip.AddrPort, leaf string) bool {
	q := r.quotas.MaxTCPPerLeaf
	if q == Unlimited {
		return false
	}
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	r.mu.Lock()
	c := r.tcpByRemote[remote]
	over := c != nil && c.leaf != leaf && int64(r.tcpPerLeaf[leaf]) >= q
	r.mu.Unlock()
	if over {
		_ = c.Close()
	}
	return over
}

// tcpAuthenticated marks the TCP connection from remote as authenticated
// by leaf: it leaves the pending counts, its first-request deadline gives
// way to the idle one, and it closes when leaf detaches.
func (r *Relay) tcpAuthenticated(remote netip.AddrPort, leaf string) {
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	r.mu.Lock()
	c := r.tcpByRemote[remote]
	if c == nil {
		r.mu.Unlock()
		return
	}
	wasPending := c.pending
	r.unpendLocked(c)
	if c.leaf == "" {
		if q := r.quotas.MaxTCPPerLeaf; q != Unlimited && int64(r.tcpPerLeaf[leaf]) >= q {
			// Two connections of the leaf authenticated at once, both
			// past authenticate's check: the later one goes.
			r.mu.Unlock()
			r.ref.refuse(refusedTCPPerLeaf, zap.Stringer("from", remote))
			_ = c.Close()
			return
		}
		c.leaf = leaf
		r.tcpPerLeaf[leaf]++
	}
	r.mu.Unlock()
	if wasPending {
		c.authed.Store(true)
		_ = c.Conn.SetReadDeadline(time.Now().Add(relayTCPIdle))
	}
}
