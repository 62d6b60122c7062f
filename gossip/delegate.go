package gossip

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// metaDelegate implements memberlist.Delegate to publish this node's
// metadata. Canopy sends no user messages through gossip yet, so the message
// and state-exchange hooks do nothing.
type metaDelegate struct {
	mu   sync.Mutex
	meta []byte // encoded, signed, validated, at most MaxMetaSize bytes
}

// set replaces the metadata returned to memberlist. b must come from
// EncodeMeta: memberlist panics on metadata over its limit.
func (d *metaDelegate) set(b []byte) {
	d.mu.Lock()
	d.meta = b
	d.mu.Unlock()
}

// get returns the current metadata, for the stream handshake.
func (d *metaDelegate) get() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.meta
}

// NodeMeta implements memberlist.Delegate. It returns the bytes prepared by
// Start or UpdateMeta rather than calling Config.Meta, so that a Meta that
// fails validation is reported to the caller instead of surfacing inside
// memberlist.
func (d *metaDelegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.meta) > limit {
		return nil
	}
	return d.meta
}

// NotifyMsg implements memberlist.Delegate.
func (d *metaDelegate) NotifyMsg([]byte) {}

// GetBroadcasts implements memberlist.Delegate.
func (d *metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState implements memberlist.Delegate.
func (d *metaDelegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate.
func (d *metaDelegate) MergeRemoteState(buf []byte, join bool) {}

// aliveFilter implements memberlist.AliveDelegate and ConflictDelegate.
//
// memberlist asks it about every alive message, from gossip and from
// push/pull state exchange alike, before it admits or updates a node. It
// refuses, so that memberlist never holds them:
//
//   - metadata that does not decode, or whose signature does not verify;
//   - a name that is not the node ID derived from the signing key (without
//     it a node could take another's name, and peers dialling that name
//     would reach the wrong node);
//   - a gossip address other than the signed one (a member relaying another
//     member's alive message cannot point it at itself);
//   - metadata older than the newest accepted for that node, or as old but
//     different (an old record replayed to roll back Slots or Control).
//
// A node that passes is admitted by memberlist but listed by the ring only
// once it is verified (Config.Verify); the filter starts that verification.
// Only authenticated senders get alive messages to memberlist at all (see
// authTransport), so a stranger cannot use this path to make the ring dial
// arbitrary addresses.
type aliveFilter struct {
	log      *zap.Logger
	refusals *refusalCounters
	verifier *verifier

	mu sync.Mutex
	// newest is the newest metadata accepted per node name. It is bounded
	// like the verification cache; a node forgotten here loses only its
	// rollback protection, and only if it was silent long enough to be the
	// least recently heard of DefaultVerifyCache nodes.
	newest *lru[string, acceptedMeta]
}

type acceptedMeta struct {
	meta Meta
	sum  [sha256.Size]byte // of the encoded metadata
}

func newAliveFilter(log *zap.Logger, refusals *refusalCounters, v *verifier, capacity int) *aliveFilter {
	return &aliveFilter{log: log, refusals: refusals, verifier: v, newest: newLRU[string, acceptedMeta](capacity)}
}

// NotifyAlive implements memberlist.AliveDelegate. It is called with
// memberlist's node lock held and must not call back into memberlist or
// block.
func (f *aliveFilter) NotifyAlive(n *memberlist.Node) error {
	m, why, err := f.check(n)
	if err != nil {
		f.refusals.refuse(why, zap.String("member", n.Name), zap.String("addr", n.Address()), zap.Error(err))
		// memberlist also logs the returned error, with the node name,
		// each time the node's alive message arrives.
		return err
	}
	f.verifier.request(m)
	return nil
}

func (f *aliveFilter) check(n *memberlist.Node) (Meta, reason, error) {
	sum := sha256.Sum256(n.Meta)
	f.mu.Lock()
	prev, known := f.newest.get(n.Name)
	f.mu.Unlock()
	var m Meta
	if known && prev.sum == sum {
		// The same record again (memberlist repeats alive messages and
		// every push/pull carries them): its signature was checked.
		m = prev.meta
	} else {
		var err error
		if m, err = DecodeMeta(n.Meta); err != nil {
			if errors.Is(err, identity.ErrBadSignature) {
				return Meta{}, reasonMetaSignature, err
			}
			return Meta{}, reasonMetaInvalid, err
		}
	}
	if m.NodeID.String() != n.Name {
		return Meta{}, reasonMetaName, fmt.Errorf("%w: name %q, node ID %s", ErrNameMismatch, n.Name, m.NodeID)
	}
	if got, ok := nodeAddrPort(n); !ok || got != m.Gossip {
		return Meta{}, reasonMetaAddr, fmt.Errorf("%w: alive from %s, signed %s", ErrAddrMismatch, n.Address(), m.Gossip)
	}
	if known && prev.sum != sum && !m.Issued.After(prev.meta.Issued) {
		return Meta{}, reasonMetaStale, fmt.Errorf("%w: issued %s, newest seen %s", ErrStaleMeta,
			m.Issued.Format(time.RFC3339Nano), prev.meta.Issued.Format(time.RFC3339Nano))
	}
	f.mu.Lock()
	// Checked again under the lock: memberlist serialises alive messages,
	// but this keeps the record monotonic whoever calls.
	if cur, ok := f.newest.get(n.Name); !ok || cur.meta.Issued.Before(m.Issued) || cur.sum == sum {
		f.newest.put(n.Name, acceptedMeta{meta: m, sum: sum})
	}
	f.mu.Unlock()
	return m, 0, nil
}

// nodeAddrPort is n's gossip address, IPv4 unmapped so that it compares with
// a signed one.
func nodeAddrPort(n *memberlist.Node) (netip.AddrPort, bool) {
	ip, ok := netip.AddrFromSlice(n.Addr)
	if !ok {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip.Unmap(), n.Port), true
}

// NotifyConflict implements memberlist.ConflictDelegate. memberlist calls it
// when a second node announces a name already held at another address; it
// keeps the first. With names derived from keys and addresses signed, this
// means a restarted supernode on a new address before its old entry died.
func (f *aliveFilter) NotifyConflict(existing, other *memberlist.Node) {
	f.log.Warn("node name conflict",
		zap.String("member", existing.Name),
		zap.String("existing_addr", existing.Address()),
		zap.String("other_addr", other.Address()))
}
