package gossip

import (
	"errors"
	"fmt"
	"log"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/canopy-p2p/canopy/logbridge"
	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// Ring is this node's membership in the supernode ring. Its methods are safe
// for concurrent use.
type Ring struct {
	cfg      Config
	self     string // memberlist node name: the node ID's string form
	log      *zap.Logger
	ml       *memberlist.Memberlist
	meta     *metaDelegate
	table    *memberTable
	events   *eventQueue // nil when Config.Events is nil
	local    string      // LocalAddr, fixed once memberlist has bound
	gossip   netip.AddrPort
	verifier *verifier
	refusals *refusalCounters

	// metaMu serialises signing, so that Issued grows with each record.
	metaMu     sync.Mutex
	lastIssued time.Time
	lastMeta   Meta // as Config.Meta returned it, before stamping

	// mu guards the lifecycle. Operations that call into memberlist hold it
	// for reading, so Shutdown, which takes it for writing, waits for them:
	// memberlist panics on Leave after Shutdown.
	mu       sync.RWMutex
	shutdown bool
	// left is set by Leave, which holds mu only for reading.
	left atomic.Bool

	closeOnce sync.Once
	closeErr  error

	// quietLog silences memberlist's logger once it is shut down.
	quietLog func()
}

// Start creates this node's gossip listener and publishes its metadata. The
// node is alone in its own ring until Join connects it to others.
func Start(cfg Config) (*Ring, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger.Named("gossip")
	// One memberlist logger for the transport and memberlist, silenced
	// after Shutdown (see logbridge.MemberlistQuietable).
	mlog, quiet := logbridge.MemberlistQuietable(log)
	nt, err := listen(cfg, mlog)
	if err != nil {
		return nil, fmt.Errorf("gossip: start: %w", err)
	}
	mc := cfg.memberlistConfig(nt.GetAutoBindPort())
	// The address memberlist will advertise, which the signed metadata
	// must name: memberlist asks the transport the same question.
	ip, port, err := nt.FinalAdvertiseAddr(mc.AdvertiseAddr, mc.AdvertisePort)
	if err != nil {
		_ = nt.Shutdown()
		return nil, fmt.Errorf("gossip: start: %w", err)
	}
	adv, ok := netip.AddrFromSlice(ip)
	if !ok || port <= 0 || port > 65535 {
		_ = nt.Shutdown()
		return nil, fmt.Errorf("gossip: start: advertise address %v:%d", ip, port)
	}
	r := &Ring{
		cfg:      cfg,
		self:     mc.Name,
		log:      log,
		meta:     &metaDelegate{},
		gossip:   netip.AddrPortFrom(adv.Unmap(), uint16(port)),
		refusals: newRefusalCounters(log),
		quietLog: quiet,
	}
	// The metadata must be valid before memberlist starts: memberlist's
	// first alive message for this node goes through the alive filter too,
	// and a refused self would leave memberlist without a local node.
	b, err := r.localMeta()
	if err != nil {
		_ = nt.Shutdown()
		return nil, fmt.Errorf("gossip: start: %w", err)
	}
	r.meta.set(b)
	if cfg.Events != nil {
		// The queue runs before memberlist starts, which reports this node's
		// own join from inside Create.
		r.events = newEventQueue(cfg.EventQueue, cfg.Events, r.log)
	}
	emit := func(ev Event) {
		if r.events != nil {
			r.events.push(ev)
		}
	}
	// The verifier tells the table of results, and the table asks the
	// verifier: the table is made first, with a late-bound look-up.
	var v *verifier
	r.table = newMemberTable(r.self, func(m Meta) bool { return v.verified(m) }, emit, r.log)
	v = newVerifier(cfg, r.log, r.refusals, r.table.verifiedKey)
	r.verifier = v
	tr := newAuthTransport(nt, cfg, v, r.meta.get, r.refusals, r.log)

	mc.Transport = tr
	mc.Logger = mlog
	mc.Delegate = r.meta
	filter := newAliveFilter(r.log, r.refusals, v, cfg.VerifyCache)
	mc.Alive = filter
	mc.Conflict = filter
	mc.Events = &memberDelegate{self: r.self, table: r.table, log: r.log}
	ml, err := memberlist.Create(mc)
	if err != nil {
		// Create shuts the transport down itself only when it got as far
		// as using it; Shutdown is idempotent.
		_ = tr.Shutdown()
		v.close()
		if r.events != nil {
			r.events.close()
		}
		return nil, fmt.Errorf("gossip: start: %w", err)
	}
	r.ml = ml
	// Create reported this node's own join, so the table has its address;
	// memberlist never changes a node's own address after start.
	self, ok := r.table.get(r.self)
	if !ok {
		_ = r.Shutdown()
		return nil, fmt.Errorf("gossip: start: memberlist did not report the local node")
	}
	r.local = self.Addr
	r.log.Info("gossip started", zap.String("node", r.self), zap.String("addr", r.local))
	return r, nil
}

// listen binds memberlist's UDP and TCP listeners, which the authenticated
// transport wraps. A dynamic port is retried a few times, as memberlist does
// itself, because the kernel picks a free TCP port that may be taken for UDP.
func listen(cfg Config, logger *log.Logger) (*memberlist.NetTransport, error) {
	nc := &memberlist.NetTransportConfig{
		BindAddrs: []string{cfg.BindAddr},
		BindPort:  cfg.BindPort,
		Logger:    logger,
	}
	tries := 1
	if cfg.BindPort == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var nt *memberlist.NetTransport
		if nt, err = memberlist.NewNetTransport(nc); err == nil {
			return nt, nil
		}
	}
	return nil, fmt.Errorf("listen on %s:%d: %w", cfg.BindAddr, cfg.BindPort, err)
}

// localMeta asks Config.Meta for the current metadata, stamps it with this
// node's gossip address and the time, and signs it. Metadata that did not
// change keeps its bytes (and so its time): memberlist reports an update only
// when the bytes change.
func (r *Ring) localMeta() ([]byte, error) {
	r.metaMu.Lock()
	defer r.metaMu.Unlock()
	m := r.cfg.Meta()
	m.NodeID, m.Key, m.Issued, m.Gossip = r.cfg.Creds.ID().ID, [32]byte(r.cfg.Creds.ID().Public), time.Time{}, r.gossip
	m.Version = MetaVersion
	if cur := r.meta.get(); cur != nil && m == r.lastMeta {
		return cur, nil
	}
	// Strictly later than the last record, to the millisecond, even if the
	// clock has not moved on: a peer refuses a different record that is not
	// newer than the one it has.
	issued := time.Now().Truncate(time.Millisecond)
	if !issued.After(r.lastIssued) {
		issued = r.lastIssued.Add(time.Millisecond)
	}
	stamped := m
	stamped.Issued = issued
	b, err := EncodeMeta(stamped, r.cfg.Creds.ID())
	if err != nil {
		return nil, err
	}
	r.lastIssued, r.lastMeta = issued, m
	return b, nil
}

// Join contacts the members at addrs (gossip addresses, host:port) and merges
// their view of the ring into this node's. It returns how many it reached; the
// error is non-nil only if it reached none.
func (r *Ring) Join(addrs []string) (int, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if err := r.usable(); err != nil {
		return 0, err
	}
	n, err := r.ml.Join(addrs)
	if err != nil {
		return n, fmt.Errorf("gossip: join %v: %w", addrs, err)
	}
	return n, nil
}

// Members returns the live members of the ring as this node sees them, itself
// included (with Self set), sorted by name. Members whose metadata does not
// decode are never listed. A suspect member stays listed until it is declared
// dead. After Shutdown it returns nil, since the view is no longer maintained.
func (r *Ring) Members() []Member {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.shutdown {
		return nil
	}
	return r.table.list()
}

// LocalAddr returns the gossip address other members use to reach this node,
// host:port: the advertised address, with the port actually bound when
// Config.BindPort was zero.
func (r *Ring) LocalAddr() string {
	return r.local
}

// UpdateMeta calls Config.Meta again and gossips the new metadata. It waits
// until the update has been sent to at least one other member, or for timeout
// (DefaultTimeout if timeout <= 0); a node alone in the ring returns at once.
// Metadata that fails validation is not published and the error wraps
// ErrBadMeta.
func (r *Ring) UpdateMeta(timeout time.Duration) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if err := r.usable(); err != nil {
		return err
	}
	b, err := r.localMeta()
	if err != nil {
		return fmt.Errorf("gossip: update meta: %w", err)
	}
	r.meta.set(b)
	if err := r.ml.UpdateNode(orDefault(timeout)); err != nil {
		return fmt.Errorf("gossip: update meta: %w", err)
	}
	return nil
}

// Leave tells the ring that this node is leaving, so that others report it as
// gone at once instead of after failure detection. It waits until the
// message has been sent to at least one other member, or for timeout
// (DefaultTimeout if timeout <= 0). The node keeps answering gossip until
// Shutdown; it cannot rejoin.
func (r *Ring) Leave(timeout time.Duration) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.shutdown {
		return ErrClosed
	}
	// Marked even if the broadcast times out: memberlist has already marked
	// itself as leaving and will ignore this node's alive messages.
	err := r.ml.Leave(orDefault(timeout))
	r.left.Store(true)
	if err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	return nil
}

// Shutdown stops gossip without telling the ring, which then detects this
// node as failed. Call Leave first for a graceful exit, or use Close. Queued
// events are delivered before it returns, so it must not be called from the
// Events callback. It is idempotent.
func (r *Ring) Shutdown() error {
	r.mu.Lock()
	if r.shutdown {
		r.mu.Unlock()
		return nil
	}
	r.shutdown = true
	err := r.ml.Shutdown()
	r.quietLog()
	r.mu.Unlock()
	r.verifier.close()
	if r.events != nil {
		r.events.close()
	}
	if err != nil {
		return fmt.Errorf("gossip: shutdown: %w", err)
	}
	r.log.Info("gossip stopped")
	return nil
}

// Close leaves the ring gracefully, waiting up to DefaultTimeout, and shuts
// down. A leave that could not be confirmed in time (a loaded host, or
// members that are themselves going away) is logged, not returned: the node
// goes either way, and the others then notice through failure detection. It
// is idempotent and returns the first call's result.
func (r *Ring) Close() error {
	r.closeOnce.Do(func() {
		if err := r.Leave(DefaultTimeout); err != nil && !errors.Is(err, ErrClosed) {
			r.log.Warn("leave not confirmed; the ring will detect our departure by failure detection", zap.Error(err))
		}
		r.closeErr = r.Shutdown()
	})
	return r.closeErr
}

// Refusals returns how many alive messages, packets, streams and
// verifications the ring has refused, by reason.
func (r *Ring) Refusals() Refusals { return r.refusals.Snapshot() }

// Unverified returns how many members memberlist holds that are not listed
// because their verification has not succeeded (yet).
func (r *Ring) Unverified() int { return r.table.pending() }

// DroppedEvents returns how many events were dropped because the Events
// callback fell behind by more than Config.EventQueue events.
func (r *Ring) DroppedEvents() uint64 {
	if r.events == nil {
		return 0
	}
	return r.events.dropped.Load()
}

// usable reports why the ring cannot gossip, if it cannot. The caller holds
// r.mu for reading.
func (r *Ring) usable() error {
	if r.shutdown {
		return ErrClosed
	}
	if r.left.Load() {
		return ErrLeft
	}
	return nil
}

func orDefault(timeout time.Duration) time.Duration {
	if timeout <= 0 {
		return DefaultTimeout
	}
	return timeout
}
