package supernode

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/canopy-p2p/canopy/gossip"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/index"
	"github.com/canopy-p2p/canopy/internal/loglimit"
	"github.com/canopy-p2p/canopy/internal/textsafe"
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
	cfg  Config
	id   identity.NodeID
	log  *zap.Logger
	idx  *index.Index
	ring *gossip.Ring
	// refusals counts and logs refused links (shared with the node).
	refusals *link.Refusals
	seen     *seenTable
	start    time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// ringChanged wakes maintain when gossip reports a membership change, so
	// that links to new members are dialled at once rather than on the next tick.
	ringChanged chan struct{}

	// control is the advertised control address: Config.Control until
	// SetControl changes it.
	control atomic.Pointer[string]

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

	// lines lets through one line a while about leaves over their query
	// rate (key "query rate") and about refused index updates ("index"),
	// so that a flood of refusals is not a flood of log lines.
	lines loglimit.Limiter[string]

	// people is the people protocol's state (people.go).
	people *peopleState
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
	// StepInsAsked counts successors asked to step in by StepDown,
	// StepInsJoined those that joined the ring in time, and
	// StepInsFailed those passed over: the fresh dial-back failed, the
	// request could not be sent, or the successor did not join in time.
	StepInsAsked, StepInsJoined, StepInsFailed uint64
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
	// dialBacks limits the reachability checks one leaf can ask for, and
	// network its network requests (network.go).
	dialBacks *rate.Limiter
	network   *rate.Limiter
	since     time.Time
	// candidate is the leaf's Hello.Candidate: its user allows promotion.
	candidate bool
	// reachable is the address of the leaf's last successful dial-back, ""
	// when none succeeded. Guarded by Supernode.mu.
	reachable string
	// heard are the other supernodes the leaf said it is attached to.
	heard []wire.PeerInfo
	// hints are the successors the leaf said may have stepped in
	// (Hello.Successors); RingHints offers them for DefaultHintTTL.
	hints []wire.PeerInfo
}

// Start starts the supernode's ring membership. Links come in through
// AcceptLeaf and AcceptPeer from the node's listener.
func Start(cfg Config) (*Supernode, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Supernode{
		lines: loglimit.Limiter[string]{Every: logEvery},
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
		refusals:    cfg.Refusals,
		people:      newPeopleState(),
	}
	if s.refusals == nil {
		s.refusals = link.NewRefusals(s.log, nil)
	}
	host, port, err := splitHostPort(cfg.GossipAddr)
	if err != nil {
		return nil, fmt.Errorf("supernode: gossip address: %w", err)
	}
	// Others reach our gossip port at the host they reach our control port
	// at, unless a port mapping says where.
	advHost, _, err := splitHostPort(cfg.Control)
	if err != nil {
		return nil, fmt.Errorf("supernode: control address: %w", err)
	}
	advPort := 0 // the bound port
	if cfg.GossipAdvertise != "" {
		advHost, advPort, _ = splitHostPort(cfg.GossipAdvertise) // Validate checked it
	}
	s.control.Store(&cfg.Control)
	// The context exists before the ring: the ring verifies members with
	// s.probe from the moment it starts.
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.ring, err = gossip.Start(gossip.Config{
		Creds:         cfg.Creds,
		BindAddr:      host,
		BindPort:      port,
		AdvertiseAddr: advHost,
		AdvertisePort: advPort,
		Meta:          s.meta,
		Verify:        s.verifyMember,
		Events:        s.ringEvent,
		Logger:        cfg.Logger,
		Profile:       gossip.Profile(cfg.GossipProfile),
	})
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("supernode: gossip: %w", err)
	}
	s.wg.Add(1)
	go s.maintain()
	s.log.Info("supernode started", zap.String("id", s.id.Short()), zap.String("control", cfg.Control), zap.String("gossip", s.ring.LocalAddr()))
	return s, nil
}

// ID is the supernode's node ID.
func (s *Supernode) ID() identity.NodeID { return s.id }

// Control is the control address the supernode advertises now.
func (s *Supernode) Control() string { return *s.control.Load() }

// SetControl changes the advertised control address, when the node learns
// that others reach it elsewhere (its router's mapping was renewed with
// another port, dial-backs confirmed a new public address), and gossips the
// new metadata at once. The ring verifies the member again at the new
// address before it trusts it there (gossip verifies per node ID and
// control address). The gossip address stays what it was: memberlist
// cannot change it while it runs.
func (s *Supernode) SetControl(addr string) error {
	if _, p, err := splitHostPort(addr); err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("%w: control address %q is not host:port", ErrConfig, addr)
	}
	if prev := s.control.Swap(&addr); *prev == addr {
		return nil
	}
	s.log.Info("advertised control address changed", zap.String("control", addr))
	return s.ring.UpdateMeta(2 * time.Second)
}

// GossipAddr is the address memberlist listens on.
func (s *Supernode) GossipAddr() string { return s.ring.LocalAddr() }

// verifyMember is the ring's admission check (gossip.Config.Verify): a
// member is listed, and offered to leaves, only once it has answered at its
// advertised control address with the key of its node ID. The check is the
// dial-back probe the supernode makes for leaves: a TLS dial expecting that
// node ID, then a probe hello that the node's accept loop answers with a
// welcome, so a TLS endpoint that merely holds the key but runs no node does
// not pass.
func (s *Supernode) verifyMember(ctx context.Context, m gossip.Meta) error {
	return s.probe(ctx, m.NodeID, m.Control)
}

func (s *Supernode) meta() gossip.Meta {
	s.mu.Lock()
	n := len(s.leaves)
	s.mu.Unlock()
	free := max(s.cfg.MaxLeaves-n, 0)
	return gossip.Meta{
		Control:  s.Control(),
		Software: s.cfg.Software,
		Proto:    wire.Version,
		Leaves:   uint16(min(n, 65535)),
		Slots:    uint16(min(free, 65535)),
		Load:     uint8(min(100, n*100/max(s.cfg.MaxLeaves, 1))),
		Uptime:   uint32(time.Since(s.start) / time.Second),
		Files:    uint32(min(s.idx.Stats().Files, 1<<32-1)),
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
		// The link is not kept: until gossip has made this supernode a
		// member, the seed takes no peer link from it (AcceptPeer refuses
		// strangers after the welcome). Once it is a member, the view rule
		// dials the links it wants (ringChanged wakes it at once).
		c.Close("joining the ring by gossip")
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
	if err := c.SendBody(wire.TypeHello, &wire.Hello{Role: wire.RoleSupernode, Software: s.cfg.Software, Control: s.Control(), Gossip: s.ring.LocalAddr()}); err != nil {
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
		return w, fmt.Errorf("refused: %s", textsafe.Bound(r.Reason, wire.MaxReasonLen))
	default:
		return w, fmt.Errorf("unexpected %s in answer to hello", e.Type)
	}
}

// AcceptLeaf takes a link whose peer said hello as a leaf. It answers with a
// welcome (or a refusal naming other supernodes) and serves the leaf until the
// link closes. The link is the supernode's from the call on: every path that
// does not serve it closes it, so the caller never has to.
//
// A leaf has one link: a new link from a leaf that already has one replaces
// it. The leaf restarted, or its network changed, before the old link timed
// out; refusing the new one would lock it out for a minute, and the key on
// both is the same, so nobody else can take a leaf's slot this way.
func (s *Supernode) AcceptLeaf(c *link.Conn, h wire.Hello) error {
	h = h.Bounded()
	others := s.others(16)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		// A node's accept goroutine can get here after the role stopped
		// (a crash emulation, a demotion): nobody else will close the link,
		// and an open link keeps its writer goroutine and socket forever.
		c.Close("supernode shutting down")
		return errClosed
	}
	old := s.leaves[c.Peer()]
	taken := len(s.leaves)
	if old != nil {
		taken-- // the leaf's own slot is its again
	}
	var why link.Reason
	var err error
	switch {
	case s.demoting:
		why, err = link.ReasonDemoting, ErrDemoting
	case taken >= s.cfg.MaxLeaves:
		why, err = link.ReasonLeafSlots, ErrFull
	}
	if why != 0 {
		s.stats.LinksRefused++
		s.mu.Unlock()
		s.refusals.Refuse(why, c.RemoteAddr(), "")
		_ = c.SendBody(wire.TypeRefuse, &wire.Refuse{Reason: why.String(), Supernodes: others})
		c.CloseQuiet(why.String())
		return err
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
		network:   rate.NewLimiter(DefaultNetworkRate, DefaultNetworkBurst),
		since:     time.Now(),
		candidate: h.Candidate,
		heard:     h.Supernodes[:min(len(h.Supernodes), maxHeard)],
		hints:     h.Successors[:min(len(h.Successors), maxHeard)],
	}
	// The new slot replaces the old in the same step, so that two links
	// arriving at once from one leaf leave one slot, and the old link's
	// reader, seeing it is no longer the leaf's slot, drops nothing.
	s.leaves[c.Peer()] = slot
	if s.cfg.Relay != nil {
		// Under the lock, so that a concurrent dropLeaf of this leaf's
		// previous slot cannot detach it after this attach.
		s.cfg.Relay.Attach(c.Peer())
	}
	s.wg.Add(1)
	s.mu.Unlock()
	if old != nil {
		s.refusals.Replaced()
		old.conn.Close("replaced by a new link from the same leaf")
	}

	err = c.SendBody(wire.TypeWelcome, &wire.Welcome{
		Role: wire.RoleSupernode, Software: s.cfg.Software, Gossip: s.ring.LocalAddr(),
		Supernodes: others, Observed: c.RemoteAddr().String(),
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
	s.peopleLeafCame(c.Peer())
	go s.serveLeaf(slot)
	return nil
}

// AcceptPeer takes a link whose peer said hello as a supernode. Only ring
// members get a peer link: the ring is the set of supernodes that gossip
// knows, by the node IDs their metadata carry, and the handshake has proved
// this peer's. A stranger is answered with a welcome (the gossip address a
// supernode joining through this one needs: see Join) and the link closes;
// nothing it sends is read. Links members dialled are bounded per member
// (MaxPeerLinks) and in all (routing.AcceptInbound), so that a supernode's
// degree stays within its view plus ViewParams.MaxInbound.
func (s *Supernode) AcceptPeer(c *link.Conn, h wire.Hello) error {
	h = h.Bounded()
	welcome := &wire.Welcome{
		Role: wire.RoleSupernode, Software: s.cfg.Software, Gossip: s.ring.LocalAddr(),
		Supernodes: s.others(16), Observed: c.RemoteAddr().String(),
	}
	member := s.isMember(c.Peer())
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close("supernode shutting down")
		return errClosed
	}
	var why link.Reason
	detail := ""
	switch {
	case !member:
		why = link.ReasonStranger
	case s.inboundFromLocked(c.Peer()) >= s.cfg.MaxPeerLinks:
		why = link.ReasonPeerLinks
	default:
		if ok, reason := routing.AcceptInbound(s.cfg.View, s.inboundLocked()); !ok {
			why, detail = link.ReasonInbound, reason
		}
	}
	if why != 0 {
		s.stats.LinksRefused++
		s.mu.Unlock()
		s.refusals.Refuse(why, c.RemoteAddr(), detail)
		// Refused after the welcome, not before: a supernode joining the
		// ring through this one still learns the gossip address it needs.
		// The dialler takes the goodbye as a refusal and picks another.
		_ = c.SendBody(wire.TypeWelcome, welcome)
		c.CloseQuiet(why.String())
		return fmt.Errorf("supernode: peer link refused: %s", why)
	}
	// The welcome is queued before the link is registered, under the same
	// lock: nothing else (a ping, a forwarded query) can go out on it
	// first, and no other link from this member can pass the bound
	// between the check and the registration.
	if err := c.SendBody(wire.TypeWelcome, welcome); err != nil {
		s.mu.Unlock()
		c.Close("welcome not sent: " + err.Error())
		return err
	}
	dup := s.insertLinkLocked(c, &peerLink{since: time.Now()})
	s.mu.Unlock()
	s.log.Debug("ring peer linked", zap.String("peer", c.Peer().Short()), zap.String("control", h.Control))
	s.startLink(c, dup)
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

// RingRefusals returns what the gossip ring refused, by reason.
func (s *Supernode) RingRefusals() gossip.Refusals { return s.ring.Refusals() }

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
