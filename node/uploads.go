package node

import (
	"cmp"
	"net/http"
	"time"

	"github.com/canopy-p2p/canopy/api"
)

// uploadsCheckInterval is how often GET /v1/uploads/events looks at the
// uploads: a running upload's bytes change every check, so a page shows
// them moving once a second.
const uploadsCheckInterval = time.Second

// Uploads is what the node serves now and who waits for a slot, with the
// names of the peers who are contacts.
func (n *Node) Uploads() (api.Uploads, error) {
	u := n.leaf.Uploads()
	ts := n.leaf.TransferStats()
	out := api.Uploads{Slots: u.Slots, PerPeer: u.PerPeer, MaxQueue: u.MaxQueue,
		Active: make([]api.Upload, 0, len(u.Active)), Queue: make([]api.QueuedUpload, 0, len(u.Queue)),
		UploadedDirect: ts.UploadedDirect, UploadedRelayed: ts.UploadedRelayed}
	names := map[string]string{} // contacts' names by node ID
	if len(u.Active)+len(u.Queue) > 0 {
		cs, err := n.people.Contacts()
		if err != nil {
			return out, err
		}
		for _, c := range cs {
			if c.State == "contact" {
				names[c.ID] = cmp.Or(c.Name, c.Nick)
			}
		}
	}
	for _, a := range u.Active {
		out.Active = append(out.Active, api.Upload{Peer: a.Peer.String(), Contact: names[a.Peer.String()], Content: a.Content.String(),
			Name: a.Name, Size: a.Size, Sent: a.Sent, Started: a.Started.UTC(),
			Path: a.Conn.Path, Local: a.Conn.LocalType, Remote: a.Conn.RemoteType})
	}
	for _, q := range u.Queue {
		out.Queue = append(out.Queue, api.QueuedUpload{Peer: q.Peer.String(), Contact: names[q.Peer.String()], Content: q.Content.String(),
			Position: q.Position, Since: q.Since.UTC(), LastAsked: q.LastAsked.UTC()})
	}
	return out, nil
}

func (n *Node) uploadsAPI(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/uploads", func(w http.ResponseWriter, r *http.Request) {
		u, err := n.Uploads()
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, u)
	})
	mux.HandleFunc("GET /v1/uploads/events", func(w http.ResponseWriter, r *http.Request) {
		n.pushOnChange(w, r, api.UploadsEventName, uploadsCheckInterval, 0,
			func() (any, error) { return n.Uploads() }, nil, nil)
	})
}
