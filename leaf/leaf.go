package leaf

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

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
	// netAsks are the network requests waiting for their answer.
	netAsks map[wire.MsgID]chan wire.NetworkInfo
	closed  bool
	// lostAll is when the leaf last found itself without any attachment
	// (or started), for Orphaned.
	lostAll time.Time
	// lastSuccessors are the successors named by every attachment lost
	// since the leaf last attached (see keptSuccessors).
	lastSuccessors []wire.PeerInfo
	// orphanings counts the times the leaf lost its last attachment.
	orphanings int
	// stepIn is the last step-in request heeded (zero when none).
	stepIn StepInRequest

	// stepIns counts step-in requests; stepInLog rate-limits the log line
	// of a refused one.
	stepIns   stepInCounters
	stepInLog rate.Sometimes
}

// candidate is a supernode address the leaf may attach to.
type candidate struct {
	addr     string
	id       identity.NodeID // zero for a seed whose ID is not known yet
	failures int
	next     time.Time // no dial before this
	lastErr  string
	lastFail time.Time
	// seen is when the leaf last attached to or detached from it, or a
	// supernode last named it: how fresh the leaf's knowledge of it is, for
	// eviction from a full candidate set.
	seen time.Time
	// seed marks an address from Config.Seeds, which is never evicted.
	seed bool
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
		netAsks: make(map[wire.MsgID]chan wire.NetworkInfo),
		lostAll: time.Now(),

		stepInLog: rate.Sometimes{Interval: stepInLogInterval},
	}
	tc := cfg.Transfer
	tc.Identity = cfg.Creds.ID()
	tc.Signal = l.sendSignal
	// Every connection gathers with the STUN/TURN services and credentials
	// the supernodes handed out last (they change while the leaf runs).
	tc.ICEServers = l.ICEServers
	if tc.Source == nil && cfg.Library != nil {
		tc.Source = cfg.Library
	}
	if tc.Logger == nil {
		tc.Logger = cfg.Logger
	}
	var err error
	if l.engine, err = transfer.New(tc); err != nil {
		return nil, fmt.Errorf("leaf: transfer engine: %w", err)
	}
	// Seeds are never evicted, so they all enter even beyond MaxCandidates:
	// the operator asked for them.
	for _, s := range cfg.Seeds {
		l.cands[s] = &candidate{addr: s, seed: true, seen: l.lostAll, tiebreak: rand.Uint64()}
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
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range peers {
		l.addCandidateLocked(wire.PeerInfo{ID: p.ID, Control: p.Control}, now)
	}
}

// addCandidateLocked adds or refreshes a supernode candidate, evicting another
// when the set is full (evict); it returns nil when the set is full of
// candidates that may not be evicted. l.mu is held.
func (l *Leaf) addCandidateLocked(p wire.PeerInfo, now time.Time) *candidate {
	c, ok := l.cands[p.Control]
	if !ok {
		if c = l.admitLocked(p.Control, false, now); c == nil {
			return nil
		}
		c.id = p.ID
	}
	if c.id.IsZero() {
		c.id = p.ID
	}
	if p.Known {
		c.load, c.slots, c.known = p.Load, p.Slots, true
	}
	c.successor = false // named as a supernode now
	c.seen = now
	return c
}

// admitLocked makes room for a new candidate at addr, as evict decides, and
// adds it; it returns nil when there is no room. A successor needs no room
// (see evict). l.mu is held.
func (l *Leaf) admitLocked(addr string, successor bool, now time.Time) *candidate {
	// One eviction makes room unless the set has outgrown the bound, which
	// it does when a successor is named as a supernode: then evict until the
	// bound holds again.
	for !successor {
		s, cands, _ := l.stateLocked()
		victim, ok := evict(policyOf(&l.cfg), s.cands)
		if !ok {
			l.log.Debug("candidate set full of supernodes in use and seeds; not adding one", zap.String("addr", addr))
			return nil
		}
		if victim < 0 {
			break
		}
		l.log.Debug("candidate evicted", zap.String("addr", cands[victim].addr), zap.String("for", addr),
			zap.Int("failures", cands[victim].failures), zap.Duration("unseen", now.Sub(cands[victim].seen)))
		delete(l.cands, cands[victim].addr)
	}
	c := &candidate{addr: addr, successor: successor, seen: now, tiebreak: rand.Uint64()}
	l.cands[addr] = c
	return c
}

// stateLocked copies the leaf's attachment state for the decisions in
// plan.go; cands and atts are the candidates and attachments in the order of
// s.cands and s.links. l.mu is held.
func (l *Leaf) stateLocked() (s attachState, cands []*candidate, atts []*attachment) {
	s.lostAll, s.dialing = l.lostAll, len(l.dialing)
	attachedAddr := make(map[string]bool, len(l.atts))
	for _, a := range l.atts {
		atts = append(atts, a)
		s.links = append(s.links, linkView{leavingSince: a.leavingSince})
		attachedAddr[a.addr] = true
	}
	for _, c := range l.cands {
		_, byID := l.atts[c.id]
		cands = append(cands, c)
		s.cands = append(s.cands, candView{
			addr: c.addr, failures: c.failures, next: c.next, lastFail: c.lastFail, seen: c.seen,
			load: c.load, slots: c.slots, known: c.known, rtt: c.rtt,
			successor: c.successor, seed: c.seed, tiebreak: c.tiebreak,
			attached: (byID && !c.id.IsZero()) || attachedAddr[c.addr],
			dialing:  l.dialing[c.addr],
		})
	}
	return s, cands, atts
}

// maxSuccessorHints bounds the successors a hello names: a supernode names
// at most 8, and an orphan keeps those of the few it lost at once.
const maxSuccessorHints = 16

// successorHintAge is how long after the leaf was last orphaned its hellos
// name successors: an emergency election is over within seconds, and a
// successor that has not promoted by then will not, so naming it for longer
// would only cost supernodes a dial each.
const successorHintAge = 5 * time.Minute

// successorHintsLocked returns the successors the leaf holds as candidates
// and has not attached to (Hello.Successors), in address order, at most
// maxSuccessorHints; none once successorHintAge has passed since the leaf
// was last orphaned. l.mu is held.
func (l *Leaf) successorHintsLocked() []wire.PeerInfo {
	if time.Since(l.lostAll) > successorHintAge {
		return nil
	}
	var out []wire.PeerInfo
	for _, c := range l.cands {
		if c.successor && !c.id.IsZero() && c.id != l.id {
			out = append(out, wire.PeerInfo{ID: c.id, Control: c.addr})
		}
	}
	slices.SortFunc(out, func(a, b wire.PeerInfo) int { return strings.Compare(a.Control, b.Control) })
	return out[:min(len(out), maxSuccessorHints)]
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

// fillAttachments carries out plan: it closes the links of supernodes handing
// the leaf over once it holds enough others, and dials candidates while fewer
// than Attach links are up or being set up.
func (l *Leaf) fillAttachments() {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	s, cands, atts := l.stateLocked()
	pl := plan(policyOf(&l.cfg), s, now)
	for _, st := range pl.close {
		// Closing waits for the link's writer; the plan is made again each
		// tick until the reader has removed the attachment.
		go atts[st.index].conn.Close("handed over to another supernode")
	}
	for _, st := range pl.dial {
		c := cands[st.index]
		l.log.Debug("dialling supernode", zap.String("addr", c.addr), zap.String("why", st.why))
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
			c.next = c.lastFail.Add(retryBackoff(policyOf(&l.cfg), c.failures, c.successor, len(l.atts) == 0))
		}
		l.mu.Unlock()
		l.log.Debug("attach failed", zap.String("supernode", addr), zap.Error(err))
		return
	}
	if c != nil {
		c.failures, c.lastErr, c.id, c.successor, c.seen = 0, "", a.conn.Peer(), false, a.since
	}
	_, dup := l.atts[a.conn.Peer()]
	if s, _, _ := l.stateLocked(); l.closed || !keepLink(policyOf(&l.cfg), s, dup) {
		l.mu.Unlock()
		a.conn.Close("already attached")
		return
	}
	l.atts[a.conn.Peer()] = a
	l.lastSuccessors = nil // the live links name fresher ones
	l.wg.Add(2)
	l.mu.Unlock()
	l.log.Info("attached", zap.String("supernode", a.conn.Peer().Short()), zap.String("addr", addr))
	go l.upload(a)
	l.peopleAttachments()
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
	hello.Successors = l.successorHintsLocked()
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
	now := time.Now()
	l.mu.Lock()
	for _, p := range peers {
		if p.ID != l.id && !p.ID.IsZero() && p.Control != "" {
			l.addCandidateLocked(p, now)
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
		l.removeLocked(a.conn.Peer(), a, a.conn.RTT(), time.Now())
		l.mu.Unlock()
		l.log.Info("detached", zap.String("supernode", a.conn.Peer().Short()), zap.String("reason", a.conn.Reason()))
		l.peopleAttachments()
	}()
	a.conn.Serve(l.cfg.IdleTimeout, func(e wire.Envelope) error { return l.message(a, e) })
}

// removeLocked forgets the attachment a to supernode peer, whose link has
// gone, keeping the successors it named, and carries out lost for it. l.mu
// is held.
func (l *Leaf) removeLocked(peer identity.NodeID, a *attachment, rtt time.Duration, now time.Time) {
	if l.atts[peer] == a {
		l.lastSuccessors = keptSuccessors(l.lastSuccessors, l.successorsLocked())
		delete(l.atts, peer)
	}
	l.detachedLocked(a.addr, rtt, now)
}

// detachedLocked carries out lost for the link to addr that has just gone
// (and been removed from l.atts): it pauses re-dials of that supernode and,
// when it was the last link, retries every other candidate at once and adds
// the successors. rtt is the link's last round-trip time. l.mu is held.
func (l *Leaf) detachedLocked(addr string, rtt time.Duration, now time.Time) {
	s, cands, _ := l.stateLocked()
	lostIdx := slices.IndexFunc(cands, func(c *candidate) bool { return c.addr == addr })
	lp := lost(policyOf(&l.cfg), s, lostIdx, l.lastSuccessors, l.id)
	if lostIdx >= 0 {
		c := cands[lostIdx]
		c.next = now.Add(lp.pause)
		c.rtt = rtt
		c.seen = now
	}
	if lp.orphaned {
		l.orphanings++
		l.lostAll = now
		for _, i := range lp.retryNow {
			cands[i].next = now
		}
		for _, p := range lp.successors {
			l.admitLocked(p.Control, true, now).id = p.ID
		}
	}
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
	case wire.TypeStepIn:
		var m wire.StepIn
		if err := e.Decode(&m); err != nil {
			return err
		}
		l.steppingIn(a, m)
	case wire.TypeBye:
		var b wire.Bye
		_ = e.Decode(&b)
		a.conn.Close("supernode said bye: " + b.Reason)
	case wire.TypeNetworkInfo:
		return l.networkInfo(e)
	default:
		if handled, err := l.peopleMessage(a, e); handled {
			return err
		}
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
