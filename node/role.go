package node

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/leaf"
	"github.com/canopy-p2p/canopy/promotion"
	"github.com/canopy-p2p/canopy/supernode"
	"github.com/canopy-p2p/canopy/wire"
)

// maxSwitchLog bounds the role changes a node remembers for its status.
const maxSwitchLog = 32

// Switch is one role change the node made.
type Switch struct {
	At     time.Time `json:"at"`
	To     string    `json:"to"`
	Reason string    `json:"reason"`
}

// roleState is the role machine's state; the role loop writes it, status
// reads it. Guarded by Node.mu, but for act.
type roleState struct {
	// decision and input are the last evaluation, kept to explain it.
	decision  promotion.Decision
	input     promotion.Input
	decidedAt time.Time
	switches  []Switch

	// act serialises carrying out role changes: the role loop's promote and
	// demote, and a graceful stop's hand-over to a successor (handOverRing),
	// so that a demotion's handover and a stop's never run at once. It is
	// not guarded by Node.mu: take it before mu, never while holding mu.
	act sync.Mutex
}

// Timing of the recovery paths: a graceful stop of the last supernode, and
// the emergency election after its crash.
const (
	// DefaultStepInWait is how long a leaving last supernode waits for a
	// successor it asked to step in to join its ring, and how long the
	// successor heeds the request. A promotion on a LAN takes about a
	// second (gossip start, one join through the leaving supernode); the
	// successor's handshake check of its seeds may wait out one dead
	// address for 5 s (Node.reachable); 10 s covers both.
	DefaultStepInWait = 10 * time.Second
	// DefaultStepInCandidates is how many successors' waits a leaving last
	// supernode spends before it gives up and leaves its leaves to the
	// emergency election: it asks them in turn within
	// DefaultStepInCandidates × DefaultStepInWait (one whose fresh
	// dial-back fails costs only the dial). Two, so that one successor
	// that cannot promote costs one wait, and a user stopping the node
	// waits at most 2 × DefaultStepInWait plus the handover
	// (DefaultHandoverTimeout).
	DefaultStepInCandidates = 2
	// rolePollInterval is how often the role loop, between two
	// evaluations, asks for dial-backs when the verdict is short of
	// evidence and evaluates at once when the leaf is orphaned or asked to
	// step in. A 30 s RoleInterval is fine for growing a ring, but the
	// first dial-back then came 30 s after start, so a supernode that died
	// before named no successor, and the emergency election's stagger of
	// 5 s per rank (promotion.Params.EmergencyStagger) means nothing when
	// evaluations are 30 s apart. The poll costs a few locks a second.
	rolePollInterval = time.Second
)

// roleLoop owns the node's role: every RoleInterval it measures the node,
// asks the promotion policy, and carries out what it answers. It is the only
// goroutine that starts or stops the supernode role, so a promotion and a
// demotion can never overlap.
func (n *Node) roleLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(n.cfg.RoleInterval)
	defer tick.Stop()
	poll := time.NewTicker(min(rolePollInterval, n.cfg.RoleInterval))
	defer poll.Stop()
	lastTouch, lastRepair := time.Now(), time.Now()
	repair := newRepairTargets()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-poll.C:
			now := time.Now()
			n.recheckReach(now)
			if n.urgent(now) {
				n.evaluate(now)
			}
			continue
		case <-tick.C:
		}
		now := time.Now()
		if now.Sub(lastTouch) >= time.Minute {
			lastTouch = now
			if err := n.hist.Touch(now); err != nil {
				n.log.Warn("role history", zap.Error(err))
			}
		}
		n.recheckReach(now)
		n.maybeDiscoverNAT(now)
		n.evaluate(now)
		if now.Sub(lastRepair) >= ringRepairInterval {
			lastRepair = now
			n.repairRing(repair)
		}
	}
}

// urgent reports whether a leaf should be evaluated now rather than at the
// next RoleInterval: it has lost every supernode (the emergency election
// runs on seconds: EmergencyStagger) or the last supernode asked it to step
// in (which waits DefaultStepInWait for it).
func (n *Node) urgent(now time.Time) bool {
	if n.Supernode() != nil {
		return false
	}
	if _, asked := n.leaf.StepInRequest(now, DefaultStepInWait); asked {
		return true
	}
	orphaned, _ := n.leaf.Orphaned(now)
	return orphaned
}

// evaluate runs the policy once and acts on its answer.
func (n *Node) evaluate(now time.Time) promotion.Decision {
	n.role.act.Lock()
	defer n.role.act.Unlock()
	in := n.policyInput(now)
	d := promotion.Decide(n.policy, in)
	n.mu.Lock()
	n.role.decision, n.role.input, n.role.decidedAt = d, in, now
	n.mu.Unlock()
	switch d.Action {
	case promotion.Promote:
		n.promote(now, d, in)
	case promotion.Demote:
		n.demote(now, d, in)
	}
	return d
}

// policyInput measures what the policy needs. An unmeasured machine is
// reported as such (Input.HeadroomUnknown), and the policy errs towards not
// switching.
func (n *Node) policyInput(now time.Time) promotion.Input {
	sn := n.Supernode()
	in := promotion.Input{
		Role:          promotion.RoleLeaf,
		Consent:       n.Consent(),
		Uptime:        n.hist.Uptime(now),
		AvgUptime:     n.hist.AvgUptime(),
		UpBandwidth:   n.cfg.UpBandwidth,
		DownBandwidth: n.cfg.DownBandwidth,
		SinceSwitch:   n.hist.SinceSwitch(now),
		Demotions:     n.hist.Snapshot().Demotions,
		Draw:          rand.Float64(),
	}
	in.ReachKnown, in.Reachable = n.reach.verdict(now)
	// A failed sample falls back to the last good one: a minute-old
	// measurement is better than none. Without any, the policy is told so.
	if h := n.headroom.Sample(now); h.Known {
		n.lastHeadroom = h
	}
	h := n.lastHeadroom
	in.CPUHeadroom, in.MemHeadroom, in.FreeFDs, in.HeadroomUnknown = h.CPU, h.Mem, h.FreeFDs, !h.Known
	if sn != nil {
		in.Role = promotion.RoleSupernode
		in.Leaves, in.SinceLastLeaf = sn.SinceLastLeaf(now)
		in.Ring = sn.RingView()
	} else {
		in.Ring = n.leafRingView(now, &in)
		// The leaf heeded the request only from a supernode whose guidance
		// showed a ring of one, and only while it is still attached to it.
		_, in.AskedToStepIn = n.leaf.StepInRequest(now, DefaultStepInWait)
	}
	return in
}

// leafRingView is a leaf's view of the ring: the latest guidance from its
// supernodes, or an empty ring when it has lost every supernode it knows of
// (which starts the emergency election), or no view at all.
func (n *Node) leafRingView(now time.Time, in *promotion.Input) promotion.RingView {
	if orphaned, since := n.leaf.Orphaned(now); orphaned {
		in.EmergencyRank, in.EmergencyFor = n.leaf.EmergencyRank(), since
		return promotion.RingView{Known: true}
	}
	g, ok := n.leaf.Guidance()
	if !ok {
		return promotion.RingView{}
	}
	return promotion.RingView{Known: true, Supernodes: g.Supernodes, Leaves: g.Leaves,
		FreeSlots: g.FreeSlots, Load: float64(g.LoadPermille) / 1000}
}

// promote starts the supernode role: it joins the ring through the
// supernodes the node knows of (and, in an emergency, the successors that
// may have stepped in before it), and attaches its own leaf side to it.
func (n *Node) promote(now time.Time, d promotion.Decision, in promotion.Input) {
	why := d.Summary(n.policy, in)
	var seeds []string
	for _, p := range n.leaf.Known() {
		seeds = append(seeds, p.Control)
	}
	for _, p := range n.hosts.peers() {
		seeds = append(seeds, p.Control)
	}
	for _, p := range n.leaf.Successors() {
		if p.ID != n.id.ID {
			seeds = append(seeds, p.Control)
		}
	}
	slices.Sort(seeds)
	seeds = slices.Compact(seeds)
	live := n.reachable(n.ctx, seeds)
	if err := n.startSupernode(n.ctx, live); err != nil {
		n.log.Error("promotion failed", zap.Error(err))
		return
	}
	n.leaf.AddSupernodes(leaf.Peer{ID: n.id.ID, Control: n.control})
	n.switched(now, promotion.RoleSupernode, false, false, why)
}

// demote hands the leaves over, then leaves the ring. The node stops being a
// supernode for new links as soon as the handover starts (the supernode
// refuses them), and for the accept loop once its leaves have gone.
func (n *Node) demote(now time.Time, d promotion.Decision, in promotion.Input) {
	why := d.Summary(n.policy, in)
	sn := n.Supernode()
	n.log.Info("demoting: handing leaves over", zap.String("why", why), zap.Int("leaves", len(sn.Leaves())))
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.HandoverTimeout)
	err := sn.Handover(ctx, "demoting: "+why)
	cancel()
	if err != nil {
		n.log.Warn("handover incomplete", zap.Error(err))
	}
	n.mu.Lock()
	svc := n.svc
	n.sn, n.svc = nil, nil
	n.mu.Unlock()
	n.switched(time.Now(), promotion.RoleLeaf, true, d.Reason == promotion.CheckConsent, why)
	if err := sn.Close(); err != nil {
		n.log.Warn("leaving the ring", zap.Error(err))
	}
	if err := svc.close(); err != nil {
		n.log.Warn("stopping STUN/TURN", zap.Error(err))
	}
}

// switched records a role change in the history and the switch log.
func (n *Node) switched(now time.Time, to promotion.Role, demotion, forced bool, why string) {
	if err := n.hist.Switched(now, to, demotion, forced, n.policy.BackoffMax); err != nil {
		n.log.Warn("role history", zap.Error(err))
	}
	n.mu.Lock()
	n.role.switches = append(n.role.switches, Switch{At: now, To: to.String(), Reason: why})
	if len(n.role.switches) > maxSwitchLog {
		n.role.switches = slices.Delete(n.role.switches, 0, len(n.role.switches)-maxSwitchLog)
	}
	n.mu.Unlock()
	n.log.Info("role changed", zap.String("to", to.String()), zap.String("why", why))
}

// promotionStatus explains the last role decision for the status API.
func (n *Node) promotionStatus() *api.Promotion {
	now := time.Now()
	p := &api.Promotion{Consent: n.Consent().String(), Demotions: n.hist.Snapshot().Demotions}
	if d, in, at, ok := n.Decision(); ok {
		p.Action, p.Summary, p.Checks, p.DecidedAt = d.Action.String(), d.Summary(n.policy, in), d.Explain(n.policy, in), at
	} else {
		p.Action, p.Summary = "stay", "not evaluated yet: the first evaluation comes "+n.cfg.RoleInterval.String()+" after start"
	}
	p.Reachability.Verdict, p.Reachability.Evidence = n.reach.evidence(now)
	p.Reachability.ProbesReceived, _ = n.probes.get()
	for _, s := range n.Switches() {
		p.Switches = append(p.Switches, api.RoleSwitch(s))
	}
	return p
}

// Consent returns the user's current --supernode choice.
func (n *Node) Consent() promotion.Consent {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.consent
}

// SetConsent changes the user's choice while the node runs; the role loop
// acts on it at its next evaluation (a supernode whose user withdraws
// consent hands its leaves over and steps down at once).
func (n *Node) SetConsent(c promotion.Consent) error {
	if _, err := c.MarshalText(); err != nil {
		return err
	}
	n.mu.Lock()
	n.consent = c
	n.mu.Unlock()
	return nil
}

// Switches returns the role changes this run made, oldest first.
func (n *Node) Switches() []Switch {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.role.switches)
}

// Decision returns the policy's last answer, with the input it was decided
// from, and when; ok is false before the first evaluation.
func (n *Node) Decision() (d promotion.Decision, in promotion.Input, at time.Time, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.role.decision, n.role.input, n.role.decidedAt, !n.role.decidedAt.IsZero()
}

// inboundFrom is the accept path's hook: peer opened an authenticated
// control link to this node's advertised control address and said hello.
// That is a reachability check the peer made on its own, and it succeeded:
// orphaned leaves dial the successors their supernodes named every second,
// so a successor collects evidence from each of them even though no
// supernode is left to dial it back. What it proves: a TCP connection from
// peer's address reached the listening port and the TLS handshake proved
// that this node, with this key, answered — the same as a dial-back from
// peer would. A NAT cannot have let it in without a mapping for that port
// (a port forward, NAT-PMP or UPnP, or a public address): the node's own
// outbound links leave from ephemeral ports, never from the listening one,
// so no hole an outbound dial opened can carry a connection to it, and TCP
// simultaneous open would need both ends to dial each other from fixed
// ports at the same instant, which nothing here does. What it does not
// prove: reachability from beyond the peer's vantage point. A peer on the
// same LAN (or host) reaches the node without crossing its NAT, exactly as
// a supernode on that LAN dialling back would; the damping, the observer
// rule and the dial-backs from supernodes elsewhere answer for that, as
// they do for dial-backs. Probes are not counted here: a supernode's
// dial-back also reports its result over the leaf's link
// (dialBackResult), and one check must not count twice.
func (n *Node) inboundFrom(peer identity.NodeID) {
	if peer == n.id.ID {
		return // this node's leaf side attaching to its own supernode role
	}
	n.reach.inbound(time.Now(), peer.String())
}

// InboundStats counts the inbound connections offered to the reachability
// verdict as evidence.
func (n *Node) InboundStats() InboundStats { return n.reach.inboundN.Snapshot() }

// handOverRing is the first step of a graceful stop (Close): when this node
// is the last supernode of its ring, it asks a successor among its leaves
// to step in, waits until it has joined the ring, and hands every leaf over
// to it, so that the network keeps a supernode and no leaf is orphaned.
// Without a successor that steps in (no candidate passed a dial-back, or
// none promoted in time), the leaves are orphaned when the node stops and
// fall back on the emergency election. A supernode with ring peers leaves
// as before: its leaves attach to the others.
func (n *Node) handOverRing() {
	n.role.act.Lock()
	defer n.role.act.Unlock()
	sn := n.Supernode()
	if sn == nil {
		return
	}
	if leaves, _ := sn.SinceLastLeaf(time.Now()); leaves == 0 {
		return // nobody to hand over (its own leaf side stops with it)
	}
	const why = "the last supernode is stopping"
	ctx, cancel := context.WithTimeout(n.ctx, DefaultStepInCandidates*DefaultStepInWait)
	p, err := sn.StepDown(ctx, why, DefaultStepInWait)
	cancel()
	switch {
	case errors.Is(err, supernode.ErrNotLast):
		return
	case err != nil:
		n.log.Warn("stopping the last supernode: no successor stepped in; its leaves fall back on the emergency election", zap.Error(err))
		return
	}
	n.log.Info("stopping the last supernode: a successor stepped in; handing the leaves over", zap.String("successor", p.ID.Short()), zap.String("control", p.Control))
	ctx, cancel = context.WithTimeout(n.ctx, n.cfg.HandoverTimeout)
	err = sn.Handover(ctx, why+": "+p.ID.Short()+" takes over", p)
	cancel()
	if err != nil {
		n.log.Warn("handover to the successor incomplete", zap.Error(err))
	}
}

// recheckReach asks the supernodes for dial-backs when the reachability
// verdict is due for a (re-)check. Dial-backs from the node's own supernode
// role prove nothing and are not asked for (the leaf's attachment to itself
// is skipped).
func (n *Node) recheckReach(now time.Time) {
	if !n.reach.needsRecheck(now) {
		return
	}
	if sent := n.leaf.RequestDialBack(); sent > 0 {
		n.reach.asked(now, sent)
	}
}

// dialBackResult feeds a supernode's dial-back into the reachability verdict.
// It runs on a leaf link's reader goroutine.
func (n *Node) dialBackResult(from identity.NodeID, res wire.DialBackResult) {
	if from == n.id.ID {
		return // our own supernode dialling us proves nothing
	}
	n.reach.observe(time.Now(), from.String(), res.OK)
	if !res.OK {
		n.log.Debug("dial-back failed", zap.String("supernode", from.Short()), zap.String("addr", res.Addr), zap.String("error", res.Error))
	}
}

// probeAnswered counts supernodes' dial-back probes that reached this node.
type probeCounter struct {
	mu   sync.Mutex
	n    int
	last time.Time
}

func (p *probeCounter) add(now time.Time) {
	p.mu.Lock()
	p.n++
	p.last = now
	p.mu.Unlock()
}

func (p *probeCounter) get() (int, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n, p.last
}

// Supernode returns the node's supernode role, or nil while it is a leaf.
func (n *Node) Supernode() *supernode.Supernode {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sn
}
