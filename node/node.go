package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/downloads"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/leaf"
	"github.com/canopy-p2p/canopy/library"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/nat/ice"
	"github.com/canopy-p2p/canopy/people"
	"github.com/canopy-p2p/canopy/promotion"
	"github.com/canopy-p2p/canopy/supernode"
	"github.com/canopy-p2p/canopy/transfer"
	"github.com/canopy-p2p/canopy/wire"
	"github.com/canopy-p2p/canopy/wishes"
)

// Node is a running Canopy node.
type Node struct {
	cfg     Config
	id      *identity.Identity
	creds   *link.Credentials
	log     *zap.Logger
	lib     *library.Library
	leaf    *leaf.Leaf
	people  *people.Service // the node's person (people.go)
	ln      net.Listener
	control string // advertised control address
	// gate bounds the connections the listener holds before they said
	// hello; refusals counts and logs what the listener and the supernode
	// role refuse, across roles.
	gate     *link.Gate
	refusals *link.Refusals
	apiSrv   *http.Server
	apiLn    net.Listener
	hosts    *hostCache
	hits     *hitCache
	started  time.Time
	// shares are the shares with a visibility beyond Config.Shares, as
	// SetShare changed them (browse.go); sharesMu serializes SetShare.
	shares   []library.Share
	sharesMu sync.Mutex

	// apiGuard checks every API request (apiauth.go); nil when the API is
	// off. downloads is where API downloads go by default (resolveOut).
	apiGuard  *apiGuard
	downloads string
	// metrics are the node's Prometheus metrics (metrics.go), and
	// metricsCollector its collector once registered.
	metrics          *nodeMetrics
	metricsCollector prometheus.Collector
	// jobs are the download jobs (node/downloads.go).
	jobs *downloads.Manager
	// wishes runs the standing searches (wishes.go).
	wishes *wishes.Runner
	// ui is the web UI's state (node/webui.go); nil when the API is off.
	ui *uiState

	// policy is the promotion policy in force and policySource says where
	// it came from.
	policy       promotion.Params
	policySource string

	// The role machine (role.go). The role loop owns headroom and
	// lastHeadroom; hist and reach are safe for concurrent use.
	hist         *roleHistory
	headroom     *headroomMeter
	lastHeadroom Headroom
	reach        *reachState
	probes       probeCounter

	nat    natState
	advert advertState // the supernode role's advertised address (advertise.go)

	mu      sync.Mutex           // guards sn, svc, role and consent
	sn      *supernode.Supernode // nil while the node is a leaf only
	svc     *natServices         // the supernode role's STUN/TURN services
	role    roleState
	consent promotion.Consent

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
}

// Start starts a node: it loads (or creates) its identity, opens its library,
// listens for control links, decides its first role, attaches its leaf side
// and serves the local API.
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: data directory: %w", err)
	}
	n := &Node{cfg: cfg, log: cfg.Logger, started: time.Now(), hits: newHitCache(10_000), metrics: newNodeMetrics(cfg.Metrics)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.Close() // releases whatever was started before the failure
		}
	}()
	var apiToken string
	if cfg.API != Off {
		if apiToken, err = n.prepareAPI(); err != nil {
			return nil, err
		}
	}
	n.consent = cfg.Consent
	n.policy, n.policySource = promotion.DefaultParams(), "built-in defaults"
	if cfg.Policy != nil {
		if err := cfg.Policy.Validate(); err != nil {
			return nil, fmt.Errorf("node: policy: %w", err)
		}
		n.policy, n.policySource = *cfg.Policy, "set by the program embedding the node"
	} else if cfg.PolicyFile != "" {
		p, f, err := promotion.Load(cfg.PolicyFile)
		if err != nil {
			return nil, fmt.Errorf("node: policy file: %w", err)
		}
		n.policy, n.policySource = p, fmt.Sprintf("%s (%s)", cfg.PolicyFile, f.Source)
	}
	if n.id, err = identity.LoadOrCreate(cfg.DataDir); err != nil {
		return nil, err
	}
	n.log = n.log.With(zap.String("node", n.id.ID.Short()))
	if n.creds, err = link.NewCredentials(n.id); err != nil {
		return nil, err
	}
	n.refusals = link.NewRefusals(n.log, nil)
	if n.gate, err = link.NewGate(cfg.Accept); err != nil {
		return nil, fmt.Errorf("%w: Accept: %w", ErrConfig, err)
	}
	for _, d := range cfg.Shares {
		n.shares = append(n.shares, library.Share{Dir: d, Visibility: library.VisibleEveryone})
	}
	for _, d := range cfg.ShareContacts {
		n.shares = append(n.shares, library.Share{Dir: d, Visibility: library.VisibleContacts})
	}
	for _, d := range cfg.ShareTrusted {
		n.shares = append(n.shares, library.Share{Dir: d, Visibility: library.VisibleTrusted})
	}
	if n.lib, err = library.Open(library.Config{
		Shares: n.shares,
		DBPath: filepath.Join(cfg.DataDir, "library.db"),
		Logger: n.log,
	}); err != nil {
		return nil, err
	}
	if n.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("node: control listener: %w", err)
	}
	n.control = cfg.advertiseAddr(n.ln.Addr().(*net.TCPAddr))
	n.advert.obs = newObservations(DefaultMaxAddrObservers, DefaultObservedTTL)
	// A supernode from the start behind a router advertises the router's
	// mapping, so ask for it before the role starts (Map's first attempt is
	// bounded by portmap.DefaultTimeout per exchange); others map later.
	mapFirst := cfg.PortMap && cfg.Consent == promotion.ConsentAlways && cfg.Advertise == "" && needsMapping(n.control)
	if mapFirst {
		n.wg.Add(1)
		n.mapPort()
	}
	n.hosts = openHostCache(filepath.Join(cfg.DataDir, "hosts.json"), n.log)
	now := time.Now()
	var herr error
	if n.hist, herr = loadHistory(filepath.Join(cfg.DataDir, roleHistoryFile), now); herr != nil {
		n.log.Warn("role history: starting afresh", zap.Error(herr))
	}
	// Every node starts as a leaf as far as the history is concerned; a
	// supernode stint of the previous run ended with it.
	_ = n.hist.Switched(now, promotion.RoleLeaf, false, false, n.policy.BackoffMax)
	n.headroom = newHeadroomMeter(nil)
	n.headroom.Sample(now) // the first CPU sample; the role loop's next one gives a rate
	n.reach = newReachState(cfg.Reach)

	role, seeds := n.firstRole(ctx)
	if role == RoleSupernode {
		// The ring is joined below, once the control port answers: ring
		// members verify a joiner by dialling it before they let it in.
		if err = n.startSupernodeAt(ctx, nil, seeds); err != nil {
			return nil, err
		}
		why := "no supernode answered: this node starts a new network as its first supernode"
		if cfg.Consent == promotion.ConsentAlways {
			why = "you chose to run as a supernode (--supernode always)"
		}
		n.switched(now, promotion.RoleSupernode, false, false, why)
	}
	iceCfg := cfg.ICE
	if iceCfg.Logger == nil {
		iceCfg.Logger = n.log
	}
	webrtcAPI, rtcCfg := ice.NewAPI(iceCfg)
	if err = n.openPeople(); err != nil {
		return nil, err
	}
	leafSeeds := seeds
	if role == RoleSupernode {
		leafSeeds = append([]string{n.control}, seeds...)
	}
	if n.leaf, err = leaf.Start(leaf.Config{
		Creds:   n.creds,
		Library: n.lib,
		Seeds:   leafSeeds,
		Attach:  cfg.Attach,
		Transfer: transfer.Config{
			API:       webrtcAPI,
			WebRTC:    rtcCfg,
			UpLimit:   cfg.UpLimit,
			DownLimit: cfg.DownLimit,
			// Every offer and browse is judged by who asks (browse.go).
			Source: shareSource{lib: n.lib, access: n.people.AccessOf},
		},
		Software:     Software,
		OnSupernodes: n.hosts.update,
		Control:      n.control,
		Candidate:    cfg.Consent != promotion.ConsentNever,
		OnDialBack:   n.onDialBack,
		People:       n.people,
		Logger:       n.log,
	}); err != nil {
		return nil, err
	}
	n.people.Start(n.leaf)
	n.leaf.AddSupernodes(n.hosts.peers()...)

	n.wg.Add(2)
	go n.acceptLoop()
	go n.scanLoop()
	if sn := n.Supernode(); sn != nil && len(seeds) > 0 {
		n.joinRing(ctx, sn, seeds)
	}
	if cfg.PortMap && !mapFirst {
		n.wg.Add(1)
		go n.mapPort()
	}
	n.wg.Add(1)
	go n.advertLoop()
	if cfg.RoleInterval > 0 {
		n.wg.Add(1)
		go n.roleLoop()
	}
	// After the loops have started, so that opening the jobs database
	// does not hold up the first library scan; before the API, which
	// serves them.
	if err = n.startJobs(); err != nil {
		return nil, err
	}
	if err = n.startWishes(); err != nil {
		return nil, err
	}
	if err = n.registerMetrics(); err != nil {
		return nil, err
	}
	if cfg.API != Off {
		if err = n.serveAPI(apiToken); err != nil {
			return nil, err
		}
	}
	n.log.Info("node started", zap.String("id", n.id.ID.String()), zap.String("role", n.Role()),
		zap.String("control", n.control), zap.String("api", n.APIAddr()), zap.Strings("shares", cfg.Shares))
	return n, nil
}

// firstRole decides the role the node starts in. With consent never it
// starts as a leaf; with always (an operator's public node) as a supernode,
// joining the ring through the seeds that answer. With auto, when no seed
// (given or cached) answers, the node starts a new network as its first
// supernode; otherwise it starts as a leaf, and the role loop promotes it
// when it qualifies and the ring needs it.
func (n *Node) firstRole(ctx context.Context) (string, []string) {
	seeds := append([]string(nil), n.cfg.Join...)
	for _, p := range n.hosts.peers() {
		seeds = append(seeds, p.Control)
	}
	switch n.cfg.Consent {
	case promotion.ConsentNever:
		return RoleLeaf, n.cfg.Join
	case promotion.ConsentAlways:
		return RoleSupernode, n.reachable(ctx, seeds)
	}
	if live := n.reachable(ctx, seeds); len(live) > 0 {
		return RoleLeaf, n.cfg.Join
	}
	if len(seeds) > 0 {
		n.log.Warn("no seed supernode answered; starting a new network", zap.Strings("seeds", seeds))
	}
	return RoleSupernode, nil
}

// reachable returns the seeds that complete an authenticated handshake, tried
// in parallel with a short timeout.
func (n *Node) reachable(ctx context.Context, seeds []string) []string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ok := make([]bool, len(seeds))
	var wg sync.WaitGroup
	for i, s := range seeds {
		if s == n.control {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := link.Dial(ctx, s, n.creds, identity.NodeID{}, nil)
			if err != nil {
				n.log.Debug("seed unreachable", zap.String("seed", s), zap.Error(err))
				return
			}
			ok[i] = c.Peer() != n.id.ID
			c.Close("probe")
		}()
	}
	wg.Wait()
	var out []string
	for i, s := range seeds {
		if ok[i] {
			out = append(out, s)
		}
	}
	return out
}

// startSupernode starts the supernode role, advertising the control
// address others can reach (chooseAdvert), and joins the ring through seeds.
// It refuses, with ErrNoReachableAddress, when there is none.
func (n *Node) startSupernode(ctx context.Context, seeds []string) error {
	return n.startSupernodeAt(ctx, seeds, seeds)
}

// startSupernodeAt is startSupernode for a ring of which the node knows
// the members at ring but joins through seeds only (Start joins once its
// control port answers).
func (n *Node) startSupernodeAt(ctx context.Context, seeds, ring []string) error {
	adv := n.chooseAdvert(time.Now(), ring)
	if adv.Addr == "" {
		return n.refuseAdvert(time.Now(), adv)
	}
	n.log.Info("advertising as a supernode", zap.String("control", adv.Addr), zap.String("source", adv.Source), zap.String("why", adv.Reason))
	svc := n.startNATServices(adv.Addr)
	n.setNATAddrs(svc, adv.Addr)
	sn, err := supernode.Start(supernode.Config{
		ICEServers:      svc.iceServers,
		Relay:           svc,
		Creds:           n.creds,
		Control:         adv.Addr,
		GossipAddr:      n.cfg.gossipAddr(n.ln.Addr().(*net.TCPAddr)),
		GossipAdvertise: n.gossipAdvertise(adv.Addr),
		GossipProfile:   n.cfg.GossipProfile,
		MaxLeaves:       n.cfg.MaxLeaves,
		Policy:          n.policy,
		Software:        Software,
		Logger:          n.log,
		Refusals:        n.refusals,

		GuidanceInterval: n.cfg.GuidanceInterval,
		DialBackInterval: n.cfg.DialBackInterval,
	})
	if err != nil {
		_ = svc.close()
		return err
	}
	n.mu.Lock()
	n.sn, n.svc = sn, svc
	n.mu.Unlock()
	if len(seeds) > 0 {
		n.joinRing(ctx, sn, seeds)
	}
	return nil
}

// joinRing joins sn to the ring through the supernodes at seeds (control
// addresses). The control port must be answering: the members dial it to
// verify the joiner.
func (n *Node) joinRing(ctx context.Context, sn *supernode.Supernode, seeds []string) {
	if _, err := sn.Join(ctx, seeds); err != nil {
		n.log.Warn("could not join the ring through the seeds; running alone", zap.Error(err))
	}
}

// acceptLoop owns the control listener. A connection is a stranger until its
// hello: it must take a slot in the gate first (within Config.Accept, in total
// and per address), and one that finds none is closed here and now, with no
// goroutine started for it. An admitted one gets its own goroutine for the
// handshake and the hello, then is handed to a role.
func (n *Node) acceptLoop() {
	defer n.wg.Done()
	for {
		raw, err := n.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			n.log.Warn("accept", zap.Error(err))
			select {
			case <-time.After(100 * time.Millisecond): // e.g. out of descriptors: don't spin
			case <-n.ctx.Done():
				return
			}
			continue
		}
		release, why, ok := n.gate.Admit(raw.RemoteAddr())
		if !ok {
			n.refusals.Refuse(why, raw.RemoteAddr(), "")
			raw.Close()
			continue
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer release() // if the hello never came; at once if it did
			n.handshake(raw, release)
		}()
	}
}

// handshake authenticates a connection the gate admitted, reads its hello
// and dispatches it. The handshake and the hello have a deadline each
// (link.HandshakeTimeout, link.HelloTimeout), and the hello is read under
// wire.MaxHelloEnvelope, so a stranger holds its slot for at most 20 s and
// 64 KiB. release gives the slot back once the hello is in: from then on
// the role's own bounds apply (leaf slots, peer links).
func (n *Node) handshake(raw net.Conn, release func()) {
	c, err := link.Accept(n.ctx, raw, n.creds, n.log)
	if err != nil {
		n.refusals.Refuse(link.ReasonHandshake, raw.RemoteAddr(), err.Error())
		return
	}
	e, err := c.RecvMax(link.HelloTimeout, wire.MaxHelloEnvelope)
	if err != nil {
		n.refusals.Refuse(link.ReasonNoHello, c.RemoteAddr(), err.Error())
		c.CloseQuiet("no hello: " + err.Error())
		return
	}
	var h wire.Hello
	if e.Type != wire.TypeHello || e.Decode(&h) != nil {
		why := fmt.Sprintf("expected a hello, got %s", e.Type)
		n.refusals.Refuse(link.ReasonNoHello, c.RemoteAddr(), why)
		c.CloseQuiet(why)
		return
	}
	release()
	if h.Role == wire.RoleProbe {
		// A supernode checking that we are reachable: the handshake proved
		// it; say welcome so that it knows it reached the right node.
		n.probes.add(time.Now())
		_ = c.SendBody(wire.TypeWelcome, &wire.Welcome{Role: wire.RoleLeaf, Software: Software, Observed: c.RemoteAddr().String()})
		c.CloseQuiet("dial-back answered")
		return
	}
	n.inboundFrom(c.Peer())
	sn := n.Supernode()
	if sn == nil {
		// A leaf redirects to the supernodes it is attached to now, never
		// to every candidate it has heard of: when the ring has died,
		// orphaned leaves dial each other as successors, and lists of dead
		// supernodes passed back and forth would keep refilling each
		// other's candidate sets with supernodes not yet re-dialled, so
		// none would ever count as orphaned and no emergency election
		// would start.
		var alts []wire.PeerInfo
		for _, a := range n.leaf.Attachments() {
			if a.ID != n.id.ID {
				alts = append(alts, wire.PeerInfo{ID: a.ID, Control: a.Control})
			}
		}
		n.refusals.Refuse(link.ReasonNotSupernode, c.RemoteAddr(), "")
		_ = c.SendBody(wire.TypeRefuse, &wire.Refuse{Reason: "not a supernode", Supernodes: alts})
		c.CloseQuiet("not a supernode")
		return
	}
	switch h.Role {
	case wire.RoleLeaf:
		_ = sn.AcceptLeaf(c, h)
	case wire.RoleSupernode:
		_ = sn.AcceptPeer(c, h)
	default:
		why := fmt.Sprintf("unknown role %d", h.Role)
		n.refusals.Refuse(link.ReasonUnknownRole, c.RemoteAddr(), why)
		c.CloseQuiet(why)
	}
}

// LinkRefusals returns how many connections and links this node has refused
// since it started, by reason: at its listener (too many strangers, failed
// handshakes, no hello) and in its supernode role (strangers saying
// supernode, full slots, per-member link bounds), across role changes.
func (n *Node) LinkRefusals() link.RefusalCounts { return n.refusals.Snapshot() }

// PendingStrangers is how many accepted connections have not said hello yet.
func (n *Node) PendingStrangers() int { return n.gate.Pending() }

// Rescan scans the shared directories now; changes reach the supernodes as
// an incremental index upload shortly after it returns.
func (n *Node) Rescan(ctx context.Context) (library.ScanResult, error) {
	res, err := n.lib.Scan(ctx)
	if err != nil {
		return res, err
	}
	if res.Added+res.Changed+res.Removed > 0 {
		n.log.Info("library changed", zap.Int("added", res.Added), zap.Int("changed", res.Changed), zap.Int("removed", res.Removed), zap.Int("hashed", res.Hashed))
		n.leaf.IndexChanged()
	}
	return res, nil
}

// scanLoop rescans the shared directories every RescanInterval.
func (n *Node) scanLoop() {
	defer n.wg.Done()
	for {
		if _, err := n.Rescan(n.ctx); err != nil && n.ctx.Err() == nil {
			n.log.Warn("scan", zap.Error(err))
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(n.cfg.RescanInterval):
		}
	}
}

// ID returns the node's ID.
func (n *Node) ID() identity.NodeID { return n.id.ID }

// Control returns the advertised control address.
func (n *Node) Control() string { return n.control }

// Role returns the node's current role.
func (n *Node) Role() string {
	if n.Supernode() != nil {
		return RoleSupernode
	}
	return RoleLeaf
}

// APIAddr returns the local API address ("" when disabled).
func (n *Node) APIAddr() string {
	if n.apiLn == nil {
		return ""
	}
	return n.apiLn.Addr().String()
}

// Leaf returns the node's leaf side.
func (n *Node) Leaf() *leaf.Leaf { return n.leaf }

// Library returns the node's library.
func (n *Node) Library() *library.Library { return n.lib }

// Close leaves the network cleanly: the API stops, the leaf says goodbye to its
// supernodes, the supernode leaves the ring, and the library is closed. It is
// idempotent.
func (n *Node) Close() error { return n.stop(false) }

// Kill stops the node as a crash would, as far as the network can tell: its
// supernode role drops its links without goodbyes and does not tell the ring
// (which finds out by failure detection). Local state is still closed
// properly. For failure tests and emulations.
func (n *Node) Kill() error { return n.stop(true) }

func (n *Node) stop(crash bool) error {
	var errs []error
	n.closeOnce.Do(func() {
		if !crash {
			n.handOverRing()
		}
		if sn := n.Supernode(); crash && sn != nil {
			n.cancel() // the role loop must not hand leaves over now
			errs = append(errs, sn.Abort())
		}
		n.cancel()
		if n.apiSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = n.apiSrv.Shutdown(ctx)
			cancel()
		}
		n.unregisterMetrics()
		if n.ln != nil {
			n.ln.Close()
		}
		if n.wishes != nil {
			// Before the jobs it queues into.
			n.wishes.Close()
		}
		if n.jobs != nil {
			// Before the leaf: a job stopped by its engine closing would
			// fail, where one stopped with the node resumes at its start.
			errs = append(errs, n.jobs.Close())
		}
		if n.leaf != nil {
			n.leaf.Close()
		}
		n.wg.Wait() // the role loop has stopped: n.sn no longer changes
		if sn := n.Supernode(); sn != nil {
			errs = append(errs, sn.Close())
		}
		if n.svc != nil {
			errs = append(errs, n.svc.close())
		}
		errs = append(errs, n.nat.closeMappers())
		if n.hist != nil {
			if err := n.hist.Close(time.Now()); err != nil {
				n.log.Warn("role history", zap.Error(err))
			}
		}
		if n.lib != nil {
			errs = append(errs, n.lib.Close())
		}
		if n.people != nil {
			errs = append(errs, n.people.Close())
		}
		n.log.Info("node stopped")
	})
	return errors.Join(errs...)
}
