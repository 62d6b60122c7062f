package supernode

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/canopy-p2p/canopy/gossip"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/index"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/routing"
	"github.com/canopy-p2p/canopy/wire"
)

// ErrFull is returned by AcceptLeaf when every leaf slot is taken.
var ErrFull = errors.New("supernode: no free leaf slot")

// errClosed is returned by AcceptLeaf when the supernode has stopped.
var errClosed = errors.New("supernode: closed")

// Supernode serves leaves and routes queries and signals across the ring. Each
// link has one reader goroutine owned by the Supernode; writes go through the
// link's bounded send queue.
type Supernode struct {
	cfg   Config
	id    identity.NodeID
	log   *zap.Logger
	idx   *index.Index
	ring  *gossip.Ring
	seen  *seenTable
	start time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// ringChanged wakes maintain when gossip reports a membership change, so
	// that links to new members are dialled at once rather than on the next tick.
	ringChanged chan struct{}

	mu      sync.Mutex               // guards the fields below
	members map[identity.NodeID]bool // ring members, from gossip events
	leaves  map[identity.NodeID]*leafSlot
	peers   map[identity.NodeID]map[*link.Conn]*peerLink
	dialing map[identity.NodeID]bool
	// sigDialing holds the signals waiting for a signalling link being
	// dialled, by ring member (see signalLink).
	sigDialing map[identity.NodeID][]wire.Signal
	// view is the peer-view rule's state between two runs of linkRing.
	view   viewState
	closed bool
	// demoting is set by Handover: new leaves are refused while the
	// attached ones move on.
	demoting bool
	// lastLeaf is when the last leaf detached (or the supernode started).
	lastLeaf time.Time
	stats    Stats

	// limitLog and indexLog let through one line a while about leaves over
	// their query rate and about refused index updates, so that a flood of
	// refusals is not a flood of log lines.
	limitLog, indexLog logLimiter
}

// Stats counts what a supernode has done.
type Stats struct {
	QueriesFromLeaves uint64
	QueriesFromPeers  uint64
	DuplicateQueries  uint64
	// QueriesLimited counts leaf queries over the leaf's rate; each was
	// answered with a "slow down" (SlowDowns). RefusalsPaced counts the
	// refusals (slow downs and dropped signals) for which the leaf's link
	// was read more slowly, the leaf outrunning DefaultRefusalRate.
	QueriesLimited uint64
	SlowDowns      uint64
	RefusalsPaced  uint64
	// IndexUpdatesPaced counts index updates for which a leaf's link was
	// read more slowly, the leaf being over its index rate.
	IndexUpdatesPaced uint64
	HitsRouted        uint64
	SignalsRelayed    uint64
	SignalsDropped    uint64
	SignalsLimited    uint64
	// FromNonMembers counts queries, hits and signals dropped because the
	// supernode that sent them is not a member of the ring.
	FromNonMembers uint64
	LinksRefused   uint64
	// DialBacks counts reachability dial-backs made for leaves; DialBacksLimited
	// those refused by the per-leaf rate limit.
	DialBacks        uint64
	DialBacksLimited uint64
	// GuidanceSent counts guidance broadcasts to the leaves.
	GuidanceSent uint64
}

type leafSlot struct {
	conn *link.Conn
	// queries and signals limit what one leaf can make the ring do,
	// refusals what it is refused at full speed (see DefaultRefusalRate),
	// and updates how fast its index changes are applied; all are used
	// only by the slot's reader goroutine.
	queries  *rate.Limiter
	refusals *rate.Limiter
	updates  *rate.Limiter
	signals  *rate.Limiter
	// dialBacks limits the reachability checks one leaf can ask for.
	dialBacks *rate.Limiter
	since     time.Time
	// candidate is the leaf's Hello.Candidate: its user allows promotion.
	candidate bool
	// reachable is the address of the leaf's last successful dial-back, ""
	// when none succeeded. Guarded by Supernode.mu.
	reachable string
	// heard are the other supernodes the leaf said it is attached to.
	heard []wire.PeerInfo
}

// Start starts the supernode's ring membership. Links come in through
// AcceptLeaf and AcceptPeer from the node's listener.
func Start(cfg Config) (*Supernode, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Supernode{
		cfg:   cfg,
		id:    cfg.Creds.ID().ID,
		log:   cfg.Logger.Named("supernode"),
		idx:   index.New(cfg.Index),
		seen:  newSeenTable(cfg.SeenTTL, 100_000),
		start: time.Now(),
		// No leaf yet: the idle clock starts with the supernode.
		lastLeaf: time.Now(),
		members:  make(map[identity.NodeID]bool),
		leaves:   make(map[identity.NodeID]*leafSlot),
		peers:    make(map[identity.NodeID]map[*link.Conn]*peerLink),
		dialing:  make(map[identity.NodeID]bool),

		sigDialing: make(map[identity.NodeID][]wire.Signal),

		ringChanged: make(chan struct{}, 1),
	}
	host, port, err := splitHostPort(cfg.GossipAddr)
	if err != nil {
		return nil, fmt.Errorf("supernode: gossip address: %w", err)
	}
	// Others reach our gossip port at the host they reach our control port at.
	advHost, _, err := splitHostPort(cfg.Control)
	if err != nil {
		return nil, fmt.Errorf("supernode: control address: %w", err)
	}
	s.ring, err = gossip.Start(gossip.Config{
		NodeID:        s.id,
		BindAddr:      host,
		BindPort:      port,
		AdvertiseAddr: advHost,
		Meta:          s.meta,
		Events:        s.ringEvent,
		Logger:        cfg.Logger,
		Profile:       gossip.Profile(cfg.GossipProfile),
	})
	if err != nil {
		return nil, fmt.Errorf("supernode: gossip: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.maintain()
	s.log.Info("supernode started", zap.String("id", s.id.Short()), zap.String("control", cfg.Control), zap.String("gossip", s.ring.LocalAddr()))
	return s, nil
}

// ID is the supernode's node ID.
func (s *Supernode) ID() identity.NodeID { return s.id }

// GossipAddr is the address memberlist listens on.
func (s *Supernode) GossipAddr() string { return s.ring.LocalAddr() }

func (s *Supernode) meta() gossip.Meta {
	s.mu.Lock()
	n := len(s.leaves)
	s.mu.Unlock()
	free := max(s.cfg.MaxLeaves-n, 0)
	return gossip.Meta{
		Version:  1,
		NodeID:   s.id,
		Control:  s.cfg.Control,
		Software: s.cfg.Software,
		Proto:    wire.Version,
		Leaves:   uint16(min(n, 65535)),
		Slots:    uint16(min(free, 65535)),
		Load:     uint8(min(100, n*100/max(s.cfg.MaxLeaves, 1))),
		Uptime:   uint32(time.Since(s.start) / time.Second),
	}
}

// Join bootstraps ring membership through supernodes at the given control
// addresses: it asks each for its gossip address and joins memberlist there.
// It returns how many seeds were reached.
func (s *Supernode) Join(ctx context.Context, controls []string) (int, error) {
	var gossipAddrs []string
	var errs []error
	for _, addr := range controls {
		c, err := link.Dial(ctx, addr, s.cfg.Creds, identity.NodeID{}, s.log)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if c.Peer() == s.id {
			c.Close("dialled myself")
			continue
		}
		w, err := s.hello(c)
		if err != nil {
			c.Close(err.Error())
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		if w.Gossip != "" {
			gossipAddrs = append(gossipAddrs, w.Gossip)
		}
		s.addPeer(c, true)
	}
	if len(gossipAddrs) == 0 {
		return 0, errors.Join(append(errs, errors.New("supernode: no seed answered as a supernode"))...)
	}
	n, err := s.ring.Join(gossipAddrs)
	if err != nil {
		return n, fmt.Errorf("supernode: join ring: %w", err)
	}
	return n, nil
}

// hello introduces this supernode on a link it dialled and reads the answer.
func (s *Supernode) hello(c *link.Conn) (wire.Welcome, error) {
	var w wire.Welcome
	if err := c.SendBody(wire.TypeHello, &wire.Hello{Role: wire.RoleSupernode, Software: s.cfg.Software, Control: s.cfg.Control, Gossip: s.ring.LocalAddr()}); err != nil {
		return w, err
	}
	e, err := c.Recv(link.HandshakeTimeout)
	if err != nil {
		return w, err
	}
	switch e.Type {
	case wire.TypeWelcome:
		err = e.Decode(&w)
		if err == nil && w.Role != wire.RoleSupernode {
			err = fmt.Errorf("peer is a %s, not a supernode", w.Role)
		}
		return w, err
	case wire.TypeRefuse:
		var r wire.Refuse
		_ = e.Decode(&r)
		return w, fmt.Errorf("refused: %s", r.Reason)
	default:
		return w, fmt.Errorf("unexpected %s in answer to hello", e.Type)
	}
}

// AcceptLeaf takes a link whose peer said hello as a leaf. It answers with a
// welcome (or a refusal naming other supernodes) and serves the leaf until the
// link closes. The link is the supernode's from the call on: every path that
// does not serve it closes it, so the caller never has to.
func (s *Supernode) AcceptLeaf(c *link.Conn, h wire.Hello) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		// A node's accept goroutine can get here after the role stopped
		// (a crash emulation, a demotion): nobody else will close the link,
		// and an open link keeps its writer goroutine and socket forever.
		c.Close("supernode shutting down")
		return errClosed
	}
	if old, ok := s.leaves[c.Peer()]; ok {
		// The leaf reconnected before its old link timed out: the new link wins.
		s.mu.Unlock()
		old.conn.Close("replaced by a new link from the same leaf")
		s.mu.Lock()
		if s.closed {
			// The supernode stopped while the old link closed, and has
			// already closed the links it knew of: this one is not among them.
			s.mu.Unlock()
			c.Close("supernode shutting down")
			return errClosed
		}
	}
	if s.demoting {
		s.stats.LinksRefused++
		s.mu.Unlock()
		_ = c.SendBody(wire.TypeRefuse, &wire.Refuse{Reason: "supernode is demoting", Supernodes: s.others(16)})
		c.Close("demoting")
		return ErrDemoting
	}
	if len(s.leaves) >= s.cfg.MaxLeaves {
		s.stats.LinksRefused++
		s.mu.Unlock()
		_ = c.SendBody(wire.TypeRefuse, &wire.Refuse{Reason: "no free leaf slot", Supernodes: s.others(16)})
		c.Close("no free leaf slot")
		return ErrFull
	}
	slot := &leafSlot{
		conn:     c,
		queries:  rate.NewLimiter(s.cfg.QueryRate, s.cfg.QueryBurst),
		refusals: rate.NewLimiter(DefaultRefusalRate, DefaultRefusalRate),
		updates:  rate.NewLimiter(s.cfg.IndexRate, s.cfg.IndexBurst),
		signals:  rate.NewLimiter(s.cfg.SignalRate, s.cfg.SignalBurst),
		// One dial-back per observer per DialBackInterval is all a leaf's
		// reachability tracker uses; the burst covers a re-check right after
		// the first one failed.
		dialBacks: rate.NewLimiter(rate.Every(s.cfg.DialBackInterval), 3),
		since:     time.Now(),
		candidate: h.Candidate,
		heard:     h.Supernodes[:min(len(h.Supernodes), maxHeard)],
	}
	s.leaves[c.Peer()] = slot
	s.wg.Add(1)
	s.mu.Unlock()

	err := c.SendBody(wire.TypeWelcome, &wire.Welcome{
		Role: wire.RoleSupernode, Software: s.cfg.Software, Gossip: s.ring.LocalAddr(),
		Supernodes: s.others(16), Observed: c.RemoteAddr().String(),
	})
	if err != nil {
		s.dropLeaf(slot)
		c.Close("welcome not sent: " + err.Error())
		s.wg.Done()
		return err
	}
	s.log.Info("leaf attached", zap.String("leaf", c.Peer().Short()), zap.String("software", h.Software))
	s.sendGuidance(s.guidance(), slot)
	s.sendICEServers(slot, time.Now())
	go s.serveLeaf(slot)
	return nil
}

// AcceptPeer takes a link whose peer said hello as a supernode. Links other
// supernodes dialled are bounded (routing.AcceptInbound), so that a
// supernode's degree stays within its view plus ViewParams.MaxInbound.
func (s *Supernode) AcceptPeer(c *link.Conn, h wire.Hello) error {
	s.mu.Lock()
	ok, why := routing.AcceptInbound(s.cfg.View, s.inboundLocked())
	if !ok {
		s.stats.LinksRefused++
	}
	s.mu.Unlock()
	err := c.SendBody(wire.TypeWelcome, &wire.Welcome{
		Role: wire.RoleSupernode, Software: s.cfg.Software, Gossip: s.ring.LocalAddr(),
		Supernodes: s.others(16), Observed: c.RemoteAddr().String(),
	})
	if err != nil {
		c.Close(err.Error())
		return err
	}
	if !ok {
		// Refused after the welcome, not before: a supernode joining the
		// ring through this one still learns the gossip address it needs.
		// The dialler takes the goodbye as a refusal and picks another.
		c.Close(why)
		return fmt.Errorf("supernode: peer link refused: %s", why)
	}
	s.log.Debug("ring peer linked", zap.String("peer", c.Peer().Short()), zap.String("control", h.Control))
	s.addPeer(c, false)
	return nil
}

// others lists up to n other ring members, those with the most free slots first.
func (s *Supernode) others(n int) []wire.PeerInfo {
	members := s.ring.Members()
	slices.SortFunc(members, func(a, b gossip.Member) int { return int(b.Meta.Slots) - int(a.Meta.Slots) })
	var out []wire.PeerInfo
	for _, m := range members {
		if m.Self || m.Meta.Slots == 0 {
			continue
		}
		out = append(out, wire.PeerInfo{ID: m.Meta.NodeID, Control: m.Meta.Control,
			Load: m.Meta.Load, Slots: m.Meta.Slots, Known: true})
		if len(out) == n {
			break
		}
	}
	return out
}

// Members returns the ring as this supernode sees it (itself included).
func (s *Supernode) Members() []gossip.Member { return s.ring.Members() }

// ringEvent keeps the member set current and wakes maintain to link new
// members. It runs on the ring's event goroutine.
func (s *Supernode) ringEvent(ev gossip.Event) {
	s.mu.Lock()
	if ev.Kind == gossip.EventLeave {
		delete(s.members, ev.Member.Meta.NodeID)
	} else {
		s.members[ev.Member.Meta.NodeID] = true
	}
	s.mu.Unlock()
	select {
	case s.ringChanged <- struct{}{}:
	default:
	}
}

// isMember reports whether id is a ring member. The set follows gossip
// events, which trail the ring's own table by a moment; a miss is confirmed
// against the table before it counts.
func (s *Supernode) isMember(id identity.NodeID) bool {
	s.mu.Lock()
	known := s.members[id]
	s.mu.Unlock()
	if known {
		return true
	}
	for _, m := range s.ring.Members() {
		if m.Meta.NodeID == id {
			return true
		}
	}
	return false
}

// Linked reports whether a control link to the ring member id is up.
func (s *Supernode) Linked(id identity.NodeID) bool {
	return s.peerLink(id) != nil
}

// Leaves returns the IDs of the attached leaves.
func (s *Supernode) Leaves() []identity.NodeID {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]identity.NodeID, 0, len(s.leaves))
	for id := range s.leaves {
		out = append(out, id)
	}
	return out
}

// Stats returns a copy of the counters.
func (s *Supernode) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// IndexStats describes the partial index.
func (s *Supernode) IndexStats() index.Stats { return s.idx.Stats() }

// IndexCounters returns what the partial index refused, and how often it
// let searches in during a large change.
func (s *Supernode) IndexCounters() index.CountersSnapshot { return s.idx.Counters().Snapshot() }

// IndexBytes returns the memory the partial index accounts for.
func (s *Supernode) IndexBytes() int64 { return s.idx.Bytes() }

func (s *Supernode) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// Close leaves the ring gracefully and closes every link. It is idempotent.
func (s *Supernode) Close() error { return s.stop(false) }

// Abort stops the supernode the way a crash would: the ring is not told and
// links drop without a goodbye, so leaves and peers find out by the broken
// connection and the ring by failure detection. For failure tests and
// emulations.
func (s *Supernode) Abort() error { return s.stop(true) }

func (s *Supernode) stop(abort bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := s.conns()
	s.mu.Unlock()
	s.cancel()
	var err error
	if abort {
		err = s.ring.Shutdown()
	} else {
		err = s.ring.Close()
	}
	for _, c := range conns {
		if abort {
			c.Abort("supernode crashed")
		} else {
			c.Close("supernode shutting down")
		}
	}
	s.wg.Wait()
	return err
}
