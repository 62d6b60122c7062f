package leaf

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/choice"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/transfer"
	"github.com/canopy-p2p/canopy/wire"
)

// ErrNotAttached is returned when the leaf has no supernode to work through.
var ErrNotAttached = errors.New("leaf: not attached to any supernode")

// Peer is a supernode the leaf knows of.
type Peer struct {
	ID      identity.NodeID `json:"id"`
	Control string          `json:"control"`
}

// Leaf is a running leaf. Its maintain goroutine owns the choice of supernodes;
// each attachment has a reader goroutine and an uploader goroutine.
type Leaf struct {
	cfg    Config
	id     identity.NodeID
	log    *zap.Logger
	engine *transfer.Engine

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex // guards the fields below
	cands   map[string]*candidate
	atts    map[identity.NodeID]*attachment
	dialing map[string]bool
	pending map[wire.MsgID]chan wire.QueryHit
	closed  bool
	// lostAll is when the leaf last found itself without any attachment
	// (or started), for Orphaned.
	lostAll time.Time
	// lastSuccessors are the successors named by attachments that are gone.
	lastSuccessors []wire.PeerInfo
	// chosen is Choose's scratch space, reused by fillAttachments.
	chosen []int
	// orphanings counts the times the leaf lost its last attachment.
	orphanings int
}

// candidate is a supernode address the leaf may attach to.
type candidate struct {
	addr     string
	id       identity.NodeID // zero for a seed whose ID is not known yet
	failures int
	next     time.Time // no dial before this
	lastErr  string
	lastFail time.Time
	// load (percent) and slots are the supernode's load as a supernode last
	// reported it; known is false until one did.
	load  uint8
	slots uint16
	known bool
	// rtt is the round trip measured while the leaf was attached to it.
	rtt time.Duration
	// successor marks a leaf named as an emergency successor after the
	// last supernode went: it may have promoted, so it is dialled like a
	// supernode while the leaf is short of links (quickly while it has none),
	// and if it has not, its refusal names the supernodes it knows, which is
	// how leaves stranded on one side of a split ring find the other.
	successor bool
	// tiebreak spreads leaves over equal supernodes (choice.Candidate).
	tiebreak uint64
}

// Start starts the leaf: it begins attaching to supernodes at once.
func Start(cfg Config) (*Leaf, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Leaf{
		cfg:     cfg,
		id:      cfg.Creds.ID().ID,
		log:     cfg.Logger.Named("leaf"),
		cands:   make(map[string]*candidate),
		atts:    make(map[identity.NodeID]*attachment),
		dialing: make(map[string]bool),
		pending: make(map[wire.MsgID]chan wire.QueryHit),
		lostAll: time.Now(),
	}
	tc := cfg.Transfer
	tc.Identity = cfg.Creds.ID()
	tc.Signal = l.sendSignal
	// Every connection gathers with the STUN/TURN services and credentials
	// the supernodes handed out last (they change while the leaf runs).
	tc.ICEServers = l.ICEServers
	if cfg.Library != nil {
		tc.Source = cfg.Library
	}
	if tc.Logger == nil {
		tc.Logger = cfg.Logger
	}
	var err error
	if l.engine, err = transfer.New(tc); err != nil {
		return nil, fmt.Errorf("leaf: transfer engine: %w", err)
	}
	for _, s := range cfg.Seeds {
		l.cands[s] = &candidate{addr: s, tiebreak: rand.Uint64()}
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.maintain()
	return l, nil
}

// ID is the leaf's node ID.
func (l *Leaf) ID() identity.NodeID { return l.id }

// AddSupernodes adds supernodes the leaf may attach to (from a host cache, or
// the node's own supernode role).
func (l *Leaf) AddSupernodes(peers ...Peer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range peers {
		l.addCandidateLocked(wire.PeerInfo{ID: p.ID, Control: p.Control})
	}
}

// addCandidateLocked adds or refreshes a supernode candidate; l.mu is held.
func (l *Leaf) addCandidateLocked(p wire.PeerInfo) *candidate {
	c, ok := l.cands[p.Control]
	if !ok {
		c = &candidate{addr: p.Control, id: p.ID, tiebreak: rand.Uint64()}
		l.cands[p.Control] = c
	}
	if c.id.IsZero() {
		c.id = p.ID
	}
	if p.Known {
		c.load, c.slots, c.known = p.Load, p.Slots, true
	}
	c.successor = false // named as a supernode now
	return c
}

// Attachment describes a link to a supernode.
type Attachment struct {
	ID      identity.NodeID `json:"id"`
	Control string          `json:"control"`
	Since   time.Time       `json:"since"`
	// Files is how many of our files the supernode reported holding.
	Files int `json:"files"`
	// IndexError is the supernode's complaint about our last index upload.
	IndexError string `json:"index_error,omitempty"`
}

// Attachments lists the supernodes the leaf is attached to.
func (l *Leaf) Attachments() []Attachment {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Attachment, 0, len(l.atts))
	for _, a := range l.atts {
		out = append(out, a.describe())
	}
	slices.SortFunc(out, func(a, b Attachment) int { return a.Since.Compare(b.Since) })
	return out
}

// Known lists every supernode the leaf has heard of.
func (l *Leaf) Known() []Peer {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Peer
	for _, c := range l.cands {
		if !c.id.IsZero() {
			out = append(out, Peer{ID: c.id, Control: c.addr})
		}
	}
	return out
}

// IndexChanged tells the leaf that its library changed, so that every
// supernode receives the delta.
func (l *Leaf) IndexChanged() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.atts {
		a.kickUpload()
	}
}

// Close detaches from every supernode and stops transfers. It is idempotent.
func (l *Leaf) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	atts := make([]*attachment, 0, len(l.atts))
	for _, a := range l.atts {
		atts = append(atts, a)
	}
	l.mu.Unlock()
	l.cancel()
	l.engine.Close()
	for _, a := range atts {
		a.conn.Close("leaf shutting down")
	}
	l.wg.Wait()
}

// maintain keeps the leaf attached to cfg.Attach supernodes and pings them.
func (l *Leaf) maintain() {
	defer l.wg.Done()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastPing := time.Now()
	for {
		l.fillAttachments()
		if time.Since(lastPing) > l.cfg.IdleTimeout/3 {
			lastPing = time.Now()
			l.pingAll()
		}
		select {
		case <-l.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// fillAttachments dials candidates while fewer than Attach links are up or
// being set up (a link being handed over does not count), choosing them with
// the choice core: least recently failed, then by load and round-trip time,
// with a random tiebreak so that leaves spread over equal supernodes.
// Candidates in their retry back-off are not considered; successors only
// while the leaf is orphaned.
func (l *Leaf) fillAttachments() {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closeLeavingLocked(now)
	want := l.cfg.Attach - l.stayingLocked() - len(l.dialing)
	if want <= 0 {
		return
	}
	var ready []*candidate
	var cands []choice.Candidate
	for _, c := range l.cands {
		if l.dialing[c.addr] || now.Before(c.next) {
			continue
		}
		if _, ok := l.atts[c.id]; ok && !c.id.IsZero() {
			continue
		}
		ready = append(ready, c)
		cand := choice.Candidate{Load: 0, FreeSlots: 1, RTT: c.rtt, Tiebreak: c.tiebreak}
		if c.known {
			cand.Load, cand.FreeSlots = float64(c.load)/100, int(c.slots)
		}
		if now.Sub(c.lastFail) < l.cfg.Choice.RetryAfter {
			cand.Failures = c.failures
		}
		cands = append(cands, cand)
	}
	p := l.cfg.Choice
	p.K = want
	l.chosen = choice.Choose(p, cands, l.chosen[:0])
	if len(l.chosen) == 0 && len(ready) > 0 {
		// Every candidate looks full or overloaded by its last report, which
		// may be stale: try the best of them anyway rather than none.
		p.MaxLoad = math.Inf(1)
		for i := range cands {
			cands[i].FreeSlots = max(cands[i].FreeSlots, 1)
		}
		l.chosen = choice.Choose(p, cands, l.chosen[:0])
	}
	for _, i := range l.chosen {
		c := ready[i]
		l.dialing[c.addr] = true
		l.wg.Add(1)
		go l.attach(c.addr, c.id)
	}
}

// attach dials one supernode and, if it welcomes us, serves the attachment.
func (l *Leaf) attach(addr string, want identity.NodeID) {
	defer l.wg.Done()
	a, err := l.dial(addr, want)
	l.mu.Lock()
	delete(l.dialing, addr)
	c := l.cands[addr]
	if err != nil {
		if c != nil {
			c.failures++
			c.lastErr = err.Error()
			c.lastFail = time.Now()
			back := min(l.cfg.RetryBackoff<<min(c.failures-1, 16), l.cfg.MaxBackoff)
			if c.successor && len(l.atts) == 0 {
				// A successor may promote any moment, and an orphaned
				// leaf has nothing better: keep trying it.
				back = l.cfg.RetryBackoff
			}
			c.next = time.Now().Add(back)
		}
		l.mu.Unlock()
		l.log.Debug("attach failed", zap.String("supernode", addr), zap.Error(err))
		return
	}
	if c != nil {
		c.failures, c.lastErr, c.id, c.successor = 0, "", a.conn.Peer(), false
	}
	if _, dup := l.atts[a.conn.Peer()]; dup || l.closed || l.stayingLocked() >= l.cfg.Attach {
		l.mu.Unlock()
		a.conn.Close("already attached")
		return
	}
	l.atts[a.conn.Peer()] = a
	l.wg.Add(2)
	l.mu.Unlock()
	l.log.Info("attached", zap.String("supernode", a.conn.Peer().Short()), zap.String("addr", addr))
	go l.upload(a)
	l.serve(a)
}

func (l *Leaf) dial(addr string, want identity.NodeID) (*attachment, error) {
	conn, err := link.Dial(l.ctx, addr, l.cfg.Creds, want, l.log)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*attachment, error) {
		conn.Close(err.Error())
		return nil, err
	}
	hello := wire.Hello{Role: wire.RoleLeaf, Software: l.cfg.Software, Control: l.cfg.Control, Candidate: l.cfg.Candidate}
	l.mu.Lock()
	for id, a := range l.atts {
		hello.Supernodes = append(hello.Supernodes, wire.PeerInfo{ID: id, Control: a.addr})
	}
	l.mu.Unlock()
	if err := conn.SendBody(wire.TypeHello, &hello); err != nil {
		return fail(err)
	}
	e, err := conn.Recv(link.HandshakeTimeout)
	if err != nil {
		return fail(err)
	}
	switch e.Type {
	case wire.TypeWelcome:
		var w wire.Welcome
		if err := e.Decode(&w); err != nil {
			return fail(err)
		}
		if w.Role != wire.RoleSupernode {
			return fail(fmt.Errorf("%s answered as a %s", addr, w.Role))
		}
		l.learn(w.Supernodes)
		return &attachment{conn: conn, addr: addr, since: time.Now(), kick: make(chan struct{}, 1)}, nil
	case wire.TypeRefuse:
		var r wire.Refuse
		if err := e.Decode(&r); err != nil {
			return fail(err)
		}
		l.learn(r.Supernodes)
		conn.Close("refused")
		return nil, fmt.Errorf("%s refused: %s", addr, r.Reason)
	default:
		return fail(fmt.Errorf("unexpected %s in answer to hello", e.Type))
	}
}

// learn adds supernodes named by a supernode to the candidates.
func (l *Leaf) learn(peers []wire.PeerInfo) {
	if len(peers) == 0 {
		return
	}
	l.mu.Lock()
	for _, p := range peers {
		if p.ID != l.id && !p.ID.IsZero() && p.Control != "" {
			l.addCandidateLocked(p)
		}
	}
	l.mu.Unlock()
	if l.cfg.OnSupernodes != nil {
		l.cfg.OnSupernodes(l.Known())
	}
}

// serve reads an attachment's link until it closes; it owns the link's reads.
func (l *Leaf) serve(a *attachment) {
	defer l.wg.Done()
	defer func() {
		l.mu.Lock()
		if l.atts[a.conn.Peer()] == a {
			l.lastSuccessors = l.successorsLocked()
			delete(l.atts, a.conn.Peer())
		}
		now := time.Now()
		if c := l.cands[a.addr]; c != nil {
			// Re-dial a lost supernode after a pause, not in a tight loop.
			c.next = now.Add(l.cfg.RetryBackoff)
			c.rtt = a.conn.RTT()
		}
		if len(l.atts) == 0 {
			l.orphanings++
			// The last supernode is gone: retry every candidate now rather
			// than when their back-offs end, and name the successors as
			// candidates in case the ring has died with it.
			l.lostAll = now
			for _, c := range l.cands {
				if c.addr != a.addr {
					c.next = now
				}
			}
			for _, p := range l.lastSuccessors {
				if p.ID != l.id && l.cands[p.Control] == nil {
					l.cands[p.Control] = &candidate{addr: p.Control, id: p.ID, successor: true, tiebreak: rand.Uint64()}
				}
			}
		}
		l.mu.Unlock()
		l.log.Info("detached", zap.String("supernode", a.conn.Peer().Short()), zap.String("reason", a.conn.Reason()))
	}()
	a.conn.Serve(l.cfg.IdleTimeout, func(e wire.Envelope) error { return l.message(a, e) })
}

func (l *Leaf) message(a *attachment, e wire.Envelope) error {
	switch e.Type {
	case wire.TypeQueryHit:
		var qh wire.QueryHit
		if err := e.Decode(&qh); err != nil {
			return err
		}
		l.mu.Lock()
		ch := l.pending[e.ID]
		l.mu.Unlock()
		if ch != nil {
			select {
			case ch <- qh:
			default: // the searcher is not keeping up; drop rather than block the link
			}
		}
	case wire.TypeSignal:
		var s wire.Signal
		if err := e.Decode(&s); err != nil {
			return err
		}
		l.engine.HandleSignal(s)
	case wire.TypeIndexAck:
		var ack wire.IndexAck
		if err := e.Decode(&ack); err != nil {
			return err
		}
		a.acked(ack)
		if ack.Error != "" {
			l.log.Warn("supernode refused part of our index", zap.String("supernode", a.conn.Peer().Short()), zap.String("error", ack.Error))
		}
	case wire.TypeGuidance:
		var g wire.Guidance
		if err := e.Decode(&g); err != nil {
			return err
		}
		l.guided(a, g)
	case wire.TypeICEServers:
		var ice wire.ICEServers
		if err := e.Decode(&ice); err != nil {
			return err
		}
		l.iceReceived(a, ice)
	case wire.TypeHandover:
		var h wire.Handover
		if err := e.Decode(&h); err != nil {
			return err
		}
		l.handover(a, h)
	case wire.TypeDialBackResult:
		var r wire.DialBackResult
		if err := e.Decode(&r); err != nil {
			return err
		}
		if l.cfg.OnDialBack != nil {
			l.cfg.OnDialBack(a.conn.Peer(), r)
		}
	case wire.TypeBye:
		var b wire.Bye
		_ = e.Decode(&b)
		a.conn.Close("supernode said bye: " + b.Reason)
	default:
		return fmt.Errorf("unexpected %s from a supernode", e.Type)
	}
	return nil
}

func (l *Leaf) pingAll() {
	l.mu.Lock()
	atts := make([]*attachment, 0, len(l.atts))
	for _, a := range l.atts {
		atts = append(atts, a)
	}
	l.mu.Unlock()
	for _, a := range atts {
		a.conn.Ping()
	}
}

// links returns the attachments' links, in no particular order.
func (l *Leaf) links() []*link.Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*link.Conn, 0, len(l.atts))
	for _, a := range l.atts {
		out = append(out, a.conn)
	}
	return out
}
