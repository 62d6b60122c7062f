package gossip

import (
	"sync"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// metaDelegate implements memberlist.Delegate to publish this node's
// metadata. Canopy sends no user messages through gossip yet, so the message
// and state-exchange hooks do nothing.
type metaDelegate struct {
	mu   sync.Mutex
	meta []byte // encoded, validated, at most MaxMetaSize bytes
}

// set replaces the metadata returned to memberlist. b must come from
// EncodeMeta: memberlist panics on metadata over its limit.
func (d *metaDelegate) set(b []byte) {
	d.mu.Lock()
	d.meta = b
	d.mu.Unlock()
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
// push/pull state exchange alike, before it admits or updates a node. Refusing
// there keeps members with undecodable metadata, or metadata naming another
// node ID than the memberlist name, out of memberlist entirely, so they never
// appear in Members or events. Without the name check a node could take
// another's name while publishing its own ID, and peers dialling that name
// would reach the wrong node.
type aliveFilter struct {
	log *zap.Logger
}

// NotifyAlive implements memberlist.AliveDelegate. It is called with
// memberlist's node lock held and must not call back into memberlist.
func (f aliveFilter) NotifyAlive(n *memberlist.Node) error {
	// The returned error is logged by memberlist at warning level, with the
	// node name, each time the node's alive message arrives.
	_, err := memberFromNode(n, "")
	return err
}

// NotifyConflict implements memberlist.ConflictDelegate. memberlist calls it
// when a second node announces a name already held at another address; it
// keeps the first. With names derived from keys this means a restarted
// supernode on a new address before its old entry died, or an impostor.
func (f aliveFilter) NotifyConflict(existing, other *memberlist.Node) {
	f.log.Warn("node name conflict",
		zap.String("member", existing.Name),
		zap.String("existing_addr", existing.Address()),
		zap.String("other_addr", other.Address()))
}
