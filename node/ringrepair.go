package node

import (
	"context"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/identity"
)

// ringRepairInterval is how often a supernode looks for supernodes it hears
// of that are missing from its ring.
const ringRepairInterval = 5 * time.Second

// maxRepairJoins is how many addresses one repair round tries, so that a
// supernode that hears of many nodes spreads the dials over rounds.
const maxRepairJoins = 3

// repairBackoffMax caps the wait before an address that keeps failing is
// tried again: a successor that never promoted, a supernode long gone.
const repairBackoffMax = 160 * time.Second

// repairTargets says where one repair round tries to join, from what the
// node hears of in three ways, most certain first:
//
//   - heard: supernodes its leaves say they are attached to (alive, and
//     outside the ring: the ring is split);
//   - hints: successors its leaves were told of when their supernodes went,
//     which may have promoted and be running a ring of their own that no
//     one else knows of (RingHints);
//   - known: the supernodes its own leaf side knows of, which may be long
//     gone.
//
// An address that failed waits ringRepairInterval, doubling with each
// further failure up to repairBackoffMax, so that dead ones and leaves that
// never promoted cost little while the live ones are tried every round.
// Hints and known addresses are tried in random order so that, when there
// are many, every one comes up within a few rounds. A repairTargets is owned
// by the role loop.
type repairTargets struct {
	failed map[string]repairFailure
}

type repairFailure struct {
	n    int
	next time.Time
}

func newRepairTargets() *repairTargets {
	return &repairTargets{failed: make(map[string]repairFailure)}
}

// pick returns at most maxRepairJoins addresses to try now, heard ones
// first. It forgets the failures of addresses it no longer hears of.
func (r *repairTargets) pick(now time.Time, heard, rest []string) []string {
	live := make(map[string]bool, len(heard)+len(rest))
	due := func(addrs []string) []string {
		var out []string
		for _, a := range addrs {
			if live[a] {
				continue
			}
			live[a] = true
			if f, ok := r.failed[a]; !ok || !now.Before(f.next) {
				out = append(out, a)
			}
		}
		return out
	}
	out := due(heard)
	others := due(rest)
	rand.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	out = append(out, others...)
	for a := range r.failed {
		if !live[a] {
			delete(r.failed, a)
		}
	}
	return out[:min(len(out), maxRepairJoins)]
}

// result records how a join through addr went.
func (r *repairTargets) result(addr string, now time.Time, ok bool) {
	if ok {
		delete(r.failed, addr)
		return
	}
	f := r.failed[addr]
	f.n++
	f.next = now.Add(min(ringRepairInterval<<min(f.n-1, 16), repairBackoffMax))
	r.failed[addr] = f
}

// repairRing joins supernodes the node hears of but its ring does not hold
// (repairTargets says which). A promotion whose join failed (every seed busy
// or gone), or emergency elections that each started a ring, leave separate
// rings that know nothing of each other; memberlist merges two rings once
// one member of each has joined the other.
func (n *Node) repairRing(targets *repairTargets) {
	sn := n.Supernode()
	if sn == nil {
		return
	}
	now := time.Now()
	in := make(map[identity.NodeID]bool)
	for _, m := range sn.Members() {
		in[m.Meta.NodeID] = true
	}
	var heard, rest []string
	for _, p := range sn.HeardOf() {
		heard = append(heard, p.Control)
	}
	for _, p := range sn.RingHints(now) {
		rest = append(rest, p.Control)
	}
	for _, p := range n.leaf.Known() {
		if !in[p.ID] && p.ID != n.id.ID {
			rest = append(rest, p.Control)
		}
	}
	for _, addr := range targets.pick(now, heard, rest) {
		ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
		joined, err := sn.Join(ctx, []string{addr})
		cancel()
		targets.result(addr, time.Now(), err == nil && joined > 0)
		if err != nil {
			n.log.Debug("ring repair", zap.String("through", addr), zap.Error(err))
			continue
		}
		n.log.Info("ring repair: joined a supernode missing from the ring", zap.String("through", addr))
	}
}
