// Package routing is the pure decision core that says where a supernode sends a
// query next. It takes the query's state and the supernode's view of its ring
// peers and returns the targets with the reason for the choice; it does no I/O,
// so the node and the simulator run the same rule.
package routing

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"

	"github.com/canopy-p2p/canopy/identity"
)

// Defaults of the routing rule, as DefaultParams returns them.
const (
	// DefaultMaxFanout is 32: Gnutella ultrapeers kept about 32 ultrapeer
	// neighbours (LimeWire) and gtk-gnutella 42–50 (docs/field-numbers.md).
	DefaultMaxFanout = 32
	// DefaultMaxTTL is 4 hops, twice the budget of a new query
	// (wire.DefaultTTL): a peer may search somewhat deeper than this node's
	// leaves do, but a crafted query cannot circulate.
	DefaultMaxTTL uint8 = 4
)

// NoFanoutCap, as Params.MaxFanout, forwards a query to every ring peer.
// Any value of zero or less means the same.
const NoFanoutCap = -1

// Params are the routing rule's tunables.
type Params struct {
	// MaxFanout caps how many ring peers one supernode forwards a query to;
	// a supernode with a larger ring view picks this many, least loaded
	// first. NoFanoutCap (or any value ≤ 0): no cap. Default
	// DefaultMaxFanout.
	MaxFanout int
	// MaxTTL is the largest TTL accepted from a peer; larger values are clamped
	// so that a crafted query cannot circulate. Default DefaultMaxTTL.
	MaxTTL uint8
	// Reach is how many supernodes the origin's budget for a leaf's query
	// aims to reach (see OriginTTL); zero means DefaultReach.
	Reach int
}

// DefaultParams returns the rule used by the node.
func DefaultParams() Params {
	return Params{MaxFanout: DefaultMaxFanout, MaxTTL: DefaultMaxTTL, Reach: DefaultReach}
}

// Query is what the rule needs to know about a query in hand.
type Query struct {
	// TTL is the hop budget the query arrived with (for a leaf's query, the
	// budget the origin supernode gives it).
	TTL uint8
	// From is the ring peer the query came from; zero when it came from a leaf.
	From identity.NodeID
}

// Peer is a ring member as the forwarding supernode sees it.
type Peer struct {
	ID identity.NodeID
	// Load is the peer's published load, 0–100.
	Load uint8
	// Linked says a control link to the peer is up, so forwarding costs nothing
	// to set up.
	Linked bool
}

// Decision is where to forward a query and with which TTL.
type Decision struct {
	Targets []identity.NodeID
	// TTL is the budget the forwarded copies carry (the arrival TTL minus one).
	TTL    uint8
	Reason string
}

// Forward decides which peers receive a copy of q. A query is forwarded while
// its TTL after this hop stays positive, never back to the peer it came from,
// and to at most MaxFanout peers. When there are more, linked peers come
// first, then less loaded ones (ties broken by ID, so the choice is
// deterministic); when all fit, they all get it, in the order given, and
// nothing is sorted.
func Forward(p Params, q Query, peers []Peer) Decision {
	ttl := min(q.TTL, p.MaxTTL)
	if ttl <= 1 {
		return Decision{Reason: "TTL exhausted: answered locally only"}
	}
	n := 0
	for _, pe := range peers {
		if pe.ID != q.From {
			n++
		}
	}
	if n == 0 {
		return Decision{TTL: ttl - 1, Reason: "no other ring peers"}
	}
	if p.MaxFanout <= 0 || n <= p.MaxFanout {
		d := Decision{TTL: ttl - 1, Reason: "flood to every ring peer", Targets: make([]identity.NodeID, 0, n)}
		for _, pe := range peers {
			if pe.ID != q.From {
				d.Targets = append(d.Targets, pe.ID)
			}
		}
		return d
	}
	// The order is linked first, then least loaded, then by ID. Each
	// candidate carries that order packed into one integer (the ID's
	// leading bits stand for the ID), so that most comparisons are one
	// integer compare; equal keys fall back to the whole ID. The simulator
	// calls this for every view rebuild of every supernode.
	cands := make([]rankedPeer, 0, n)
	for i, pe := range peers {
		if pe.ID != q.From {
			cands = append(cands, rankedPeer{key: rankKey(pe), i: int32(i)})
		}
	}
	less := func(a, b rankedPeer) int {
		if c := cmp.Compare(a.key, b.key); c != 0 {
			return c
		}
		return bytes.Compare(peers[a.i].ID[:], peers[b.i].ID[:])
	}
	// Only the first MaxFanout in order are wanted: move them to the front
	// (a selection, linear on average), then sort just those. The order is
	// total (IDs differ), so the result is the full sort's prefix.
	selectFirst(cands, p.MaxFanout, less)
	slices.SortFunc(cands[:p.MaxFanout], less)
	d := Decision{TTL: ttl - 1, Reason: "fan-out capped: linked and least-loaded peers first", Targets: make([]identity.NodeID, p.MaxFanout)}
	for i, c := range cands[:p.MaxFanout] {
		d.Targets[i] = peers[c.i].ID
	}
	return d
}

// rankedPeer is a forwarding candidate, peers[i], with its rank packed into
// key; it stays small so that the sort moves little.
type rankedPeer struct {
	key uint64
	i   int32
}

// rankKey packs Forward's order into an integer: the top bit is 0 for a
// linked peer, the next 8 bits are the load, the low 55 bits the ID's
// leading bits. Keys compare as the (linked, load, ID) triple does, except
// that two IDs sharing their first 55 bits compare equal and need the whole
// ID.
func rankKey(p Peer) uint64 {
	var k uint64
	if !p.Linked {
		k = 1 << 63
	}
	k |= uint64(p.Load) << 55
	return k | binary.BigEndian.Uint64(p.ID[:8])>>9
}

// selectFirst reorders s so that its k smallest elements by cmp come first,
// in no particular order (Hoare's quickselect with a median-of-three pivot;
// deterministic for a given input). It needs 0 < k < len(s).
func selectFirst[T any](s []T, k int, cmp func(a, b T) int) {
	lo, hi := 0, len(s)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		// Median of three into s[mid].
		if cmp(s[mid], s[lo]) < 0 {
			s[mid], s[lo] = s[lo], s[mid]
		}
		if cmp(s[hi], s[lo]) < 0 {
			s[hi], s[lo] = s[lo], s[hi]
		}
		if cmp(s[hi], s[mid]) < 0 {
			s[hi], s[mid] = s[mid], s[hi]
		}
		pivot := s[mid]
		i, j := lo, hi
		for i <= j {
			for cmp(s[i], pivot) < 0 {
				i++
			}
			for cmp(s[j], pivot) > 0 {
				j--
			}
			if i <= j {
				s[i], s[j] = s[j], s[i]
				i++
				j--
			}
		}
		// Now s[lo..j] <= pivot <= s[i..hi]; keep the side holding index k-1.
		switch {
		case k-1 <= j:
			hi = j
		case k-1 >= i:
			lo = i
		default:
			return
		}
	}
}
