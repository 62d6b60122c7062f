package supernode

import (
	"time"

	"golang.org/x/time/rate"

	"github.com/canopy-p2p/canopy/gossip"
	"github.com/canopy-p2p/canopy/wire"
)

// Network requests from leaves (canopy network): the answer is built from
// the ring's signed metadata, which the supernode holds anyway, so one
// costs a walk over the members and a message of at most ~400 KB.
const (
	// DefaultNetworkRate and DefaultNetworkBurst bound one leaf's network
	// requests: a person looking at the network asks once in a while; a
	// web page refreshing it asks every few seconds.
	DefaultNetworkRate  = rate.Limit(1)
	DefaultNetworkBurst = 5
	// DefaultFilesPublish is the least time between two republications of
	// the gossip metadata caused only by the index's file count changing
	// (leaves come and go at once): the count is for people looking at the
	// network, and an index changes with every upload, which must not
	// turn into gossip traffic.
	DefaultFilesPublish = 30 * time.Second
)

// networkRequest answers a leaf's NetworkRequest with the ring as this
// supernode sees it, or, over the leaf's rate, with RetryAfterMs only.
func (s *Supernode) networkRequest(l *leafSlot, e wire.Envelope) error {
	var req wire.NetworkRequest
	if err := e.Decode(&req); err != nil {
		return err
	}
	var info wire.NetworkInfo
	now := time.Now()
	if !l.network.AllowN(now, 1) {
		wait := time.Duration((1 - l.network.TokensAt(now)) / float64(l.network.Limit()) * float64(time.Second))
		info.RetryAfterMs = uint32(min(max(wait, time.Millisecond), maxRetryAfter).Milliseconds())
		s.paceRefusal(l)
	} else {
		max := int(req.Max)
		if max <= 0 || max > wire.MaxNetworkMembers {
			max = wire.MaxNetworkMembers
		}
		info = s.NetworkInfo(max, now)
	}
	out, err := wire.New(wire.TypeNetworkInfo, &info)
	if err != nil {
		return err
	}
	out.ID = e.ID
	_ = l.conn.Send(out)
	return nil
}

// NetworkInfo is the ring as this supernode sees it: up to max members
// (sorted by node ID, as Members returns them) and totals over all of
// them. Its own entry has its live figures; the others' are from their
// signed metadata, their uptime advanced by the time since they signed it.
func (s *Supernode) NetworkInfo(max int, now time.Time) wire.NetworkInfo {
	members := s.ring.Members()
	info := wire.NetworkInfo{Supernodes: len(members)}
	for _, m := range members {
		nm := memberInfo(m, now)
		if m.Self {
			live := s.meta()
			nm.Leaves, nm.Slots, nm.Load, nm.Uptime = live.Leaves, live.Slots, live.Load, live.Uptime
			nm.Files = uint32(min(s.idx.Stats().Files, 1<<32-1))
		}
		info.Leaves += int(nm.Leaves)
		info.Files += int(nm.Files)
		if len(info.Members) < max {
			info.Members = append(info.Members, nm)
		}
	}
	return info
}

func memberInfo(m gossip.Member, now time.Time) wire.NetworkMember {
	up := uint64(m.Meta.Uptime)
	if !m.Meta.Issued.IsZero() && now.After(m.Meta.Issued) {
		up += uint64(now.Sub(m.Meta.Issued) / time.Second)
	}
	return wire.NetworkMember{
		ID: m.Meta.NodeID, Control: m.Meta.Control, Load: m.Meta.Load, Leaves: m.Meta.Leaves,
		Slots: m.Meta.Slots, Software: m.Meta.Software, Uptime: uint32(min(up, 1<<32-1)),
		Files: m.Meta.Files, Self: m.Self,
	}
}
