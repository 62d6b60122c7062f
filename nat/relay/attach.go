package relay

import (
	"github.com/canopy-p2p/canopy/identity"
	"go.uber.org/zap"
)

// Attach records that leaf is attached to this supernode: from now on
// TURNServers issues it credentials and the relay charges allocations to
// it. Attaching a leaf that is attached already changes nothing, so that a
// leaf whose link was replaced keeps its credentials.
//
// The attachment takes a floor: the latest expiry of any credential issued
// so far. A credential of the leaf must expire after it, which every one
// issued during this attachment does (TURNServers asks Creds for that) and
// none issued before does. So a credential from an earlier attachment of the
// same leaf stays dead, and nothing but the relay's memory of who is attached
// is needed to revoke credentials.
//
// The relay keeps one entry per attached leaf; the supernode bounds their
// number with its leaf slots.
func (r *Relay) Attach(leaf identity.NodeID) {
	floor := r.cfg.Creds.maxExpiry()
	id := leaf.String()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if _, ok := r.attached[id]; !ok {
		r.attached[id] = floor
	}
}

// Detach revokes leaf's credentials and ends what it holds: its
// allocations close at once (their slots are free when Detach returns, and
// pion deletes each allocation as its relay socket's read fails, right
// after), and so do the TCP connections its credential authenticated. It
// returns how many allocations it closed. Detaching a leaf that is not
// attached closes nothing.
func (r *Relay) Detach(leaf identity.NodeID) int {
	id := leaf.String()
	r.mu.Lock()
	delete(r.attached, id)
	var allocs []*relayAlloc
	for a := range r.allocs {
		if a.leaf.id == id {
			allocs = append(allocs, a)
		}
	}
	for _, a := range allocs {
		r.releaseLocked(a.leaf, a)
	}
	var tcps []*relayTCPConn
	for c := range r.tcpConns {
		if c.leaf == id {
			tcps = append(tcps, c)
		}
	}
	r.mu.Unlock()
	for _, a := range allocs {
		a.end("leaf detached", &r.ref.revocations)
	}
	for _, c := range tcps {
		_ = c.Close()
	}
	if len(allocs) > 0 || len(tcps) > 0 {
		r.log.Debug("leaf detached: credentials revoked", zap.String("leaf", leaf.Short()),
			zap.Int("allocations", len(allocs)), zap.Int("tcp", len(tcps)))
	}
	return len(allocs)
}
