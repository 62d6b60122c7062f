package relay

import (
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/internal/loglimit"
)

// refusal is why the relay refused a connection, a request or an
// allocation, or ended one early: a fixed vocabulary, so that counters and
// log lines carry nothing a client chose.
type refusal uint8

const (
	refusedAuth       refusal = iota + 1 // malformed, expired or wrong credential, foreign realm
	refusedDetached                      // credential of a leaf not attached now
	refusedRevoked                       // credential of an earlier attachment of the leaf
	refusedQuota                         // allocation over the leaf's or the relay's quota
	refusedPeer                          // permission to a peer AllowPeer rejects
	refusedTCPPerAddr                    // too many unauthenticated TCP connections from one address
	refusedTCPPending                    // too many unauthenticated TCP connections in all
	refusedTCPTotal                      // too many TCP connections in all
	refusedTCPNoAuth                     // no authenticated request within PendingTCPTimeout
	refusedTCPPerLeaf                    // too many authenticated TCP connections of one leaf
	refusalEnd
)

var refusalText = [refusalEnd]string{
	refusedAuth:       "bad credential",
	refusedDetached:   "credential of a leaf that is not attached",
	refusedRevoked:    "credential of an earlier attachment",
	refusedQuota:      "allocation quota reached",
	refusedPeer:       "peer address not allowed",
	refusedTCPPerAddr: "too many unauthenticated TCP connections from one address",
	refusedTCPPending: "too many unauthenticated TCP connections",
	refusedTCPTotal:   "too many TCP connections",
	refusedTCPNoAuth:  "no authenticated request in time on a TCP connection",
	refusedTCPPerLeaf: "too many TCP connections of one leaf",
}

func (r refusal) String() string {
	if r == 0 || r >= refusalEnd {
		return "refused"
	}
	return refusalText[r]
}

// RefusalCounts is a snapshot of the relay's refusals by reason since it
// started, and of the allocations it ended early, ready for a metrics
// exporter.
type RefusalCounts struct {
	// Auth: malformed, expired or wrong credentials, foreign realm, bad
	// MESSAGE-INTEGRITY.
	Auth uint64 `json:"auth"`
	// Detached: a valid credential of a leaf that is not attached (it
	// detached, or never attached to this supernode).
	Detached uint64 `json:"detached"`
	// Revoked: a credential issued during an earlier attachment of a leaf
	// that has attached again.
	Revoked uint64 `json:"revoked"`
	// Quota: allocations over MaxAllocationsPerLeaf or MaxAllocations
	// (when no other leaf holds enough to give one up).
	Quota uint64 `json:"quota"`
	// Peer: permissions to peers AllowPeer rejects.
	Peer uint64 `json:"peer"`
	// TCPPerAddr, TCPPending and TCPTotal: TCP connections closed at once
	// on accept, for MaxPendingTCPPerAddr, MaxPendingTCP and the total of
	// TCP connections.
	TCPPerAddr uint64 `json:"tcp_per_addr"`
	TCPPending uint64 `json:"tcp_pending"`
	TCPTotal   uint64 `json:"tcp_total"`
	// TCPNoAuth: TCP connections closed for sending no authenticated
	// request within PendingTCPTimeout.
	TCPNoAuth uint64 `json:"tcp_no_auth"`
	// TCPPerLeaf: authenticated requests refused, and their TCP
	// connections closed, because their leaf already had MaxTCPPerLeaf.
	TCPPerLeaf uint64 `json:"tcp_per_leaf"`
	// Evicted: allocations closed to give a leaf holding fewer its fair
	// share of a full relay.
	Evicted uint64 `json:"evicted"`
	// Revocations: allocations closed because their leaf detached.
	Revocations uint64 `json:"revocations"`
}

// refusalLogInterval is how often one kind of refusal is logged: once every
// 10 s, with the count of those not logged since. A flood of silent TCP
// connections or of stale credentials would otherwise write a line each.
const refusalLogInterval = 10 * time.Second

// refusals counts refusals by reason and logs them at most once per
// refusalLogInterval per reason. Safe for concurrent use.
type refusals struct {
	counts               [refusalEnd]atomic.Uint64
	evicted, revocations atomic.Uint64
	log                  *zap.Logger
	lines                loglimit.Limiter[refusal] // Every: refusalLogInterval
}

// refuse counts one refusal and logs it unless one of its kind was logged
// within refusalLogInterval. fields must be bounded (addresses, short IDs,
// the relay's own error texts).
func (f *refusals) refuse(why refusal, fields ...zap.Field) {
	if why == 0 || why >= refusalEnd {
		return
	}
	f.counts[why].Add(1)
	ok, n := f.lines.Allow(why, time.Now())
	if !ok {
		return
	}
	f.log.Info("refused", append(fields, zap.String("reason", why.String()), zap.Uint64("not_logged_since", n))...)
}

// Snapshot returns the counts.
func (f *refusals) Snapshot() RefusalCounts {
	c := func(r refusal) uint64 { return f.counts[r].Load() }
	return RefusalCounts{
		Auth: c(refusedAuth), Detached: c(refusedDetached), Revoked: c(refusedRevoked),
		Quota: c(refusedQuota), Peer: c(refusedPeer),
		TCPPerAddr: c(refusedTCPPerAddr), TCPPending: c(refusedTCPPending), TCPTotal: c(refusedTCPTotal),
		TCPNoAuth: c(refusedTCPNoAuth), TCPPerLeaf: c(refusedTCPPerLeaf),
		Evicted:     f.evicted.Load(),
		Revocations: f.revocations.Load(),
	}
}
