package transfer

import (
	"slices"
	"time"

	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/identity"
)

// Uploads is what this node serves now and who waits for it: a sharer's
// view of its upload slots and queue, as Soulseek and eMule show theirs.
type Uploads struct {
	// Slots is Config.MaxUploads, PerPeer Config.MaxUploadsPerPeer and
	// MaxQueue Config.MaxQueue.
	Slots, PerPeer, MaxQueue int
	// Active are the uploads holding a slot, the oldest first.
	Active []ActiveUpload
	// Queue are the requests waiting for a slot, in the order they will be
	// admitted (Position 1 first).
	Queue []QueuedUpload
}

// ActiveUpload is one upload holding a slot.
type ActiveUpload struct {
	Peer    identity.NodeID
	Content content.ID
	// Name is the file's name on this node; Size its size.
	Name string
	Size int64
	// Sent counts the piece bytes sent so far, block by block. A
	// downloader with other sources asks this one for only some pieces,
	// so Sent may stay below Size when the upload ends.
	Sent    int64
	Started time.Time
	Conn    ConnInfo
}

// QueuedUpload is one request waiting for an upload slot.
type QueuedUpload struct {
	Peer     identity.NodeID
	Content  content.ID
	Position int
	// Priority is Config.UploadPriority's for the peer when it was queued.
	Priority int
	// Since is when it first asked, LastAsked when it last did (it leaves
	// the queue when it stops asking).
	Since, LastAsked time.Time
}

// Uploads returns the uploads in progress and the upload queue now.
func (e *Engine) Uploads() Uploads {
	e.mu.Lock()
	out := Uploads{Slots: e.cfg.MaxUploads, PerPeer: e.cfg.MaxUploadsPerPeer, MaxQueue: e.queue.max,
		Queue: make([]QueuedUpload, 0, len(e.queue.entries))}
	var ups []*upload
	for _, s := range e.sessions {
		if s.slot && s.up != nil {
			ups = append(ups, s.up)
		}
	}
	e.queue.expire(time.Now())
	for i, q := range e.queue.entries {
		out.Queue = append(out.Queue, QueuedUpload{Peer: q.peer, Content: q.content, Position: i + 1,
			Priority: q.prio, Since: q.since, LastAsked: q.asked})
	}
	e.mu.Unlock()
	// The channels' locks are taken outside the engine's.
	out.Active = make([]ActiveUpload, 0, len(ups))
	for _, u := range ups {
		out.Active = append(out.Active, ActiveUpload{Peer: u.peer, Content: u.id, Name: u.name, Size: u.m.Size,
			Sent: u.sent.Load(), Started: u.started, Conn: u.ch.connInfo()})
	}
	slices.SortFunc(out.Active, func(a, b ActiveUpload) int { return a.Started.Compare(b.Started) })
	return out
}
