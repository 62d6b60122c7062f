package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/people"
)

// peopleDB is the people database's file in the data directory.
const peopleDB = "people.db"

// sseKeepAlive is how often the event stream sends a comment when nothing
// happens, so that a client (or a proxy) sees the stream is alive.
const sseKeepAlive = 15 * time.Second

// openPeople opens the node's person (people.db). A damaged database
// stops the node: it holds the user's contacts and messages.
func (n *Node) openPeople() error {
	svc, err := people.Open(people.Config{
		Identity:  n.id,
		DBPath:    filepath.Join(n.cfg.DataDir, peopleDB),
		Logger:    n.log,
		AfterStep: n.cfg.PeopleAfterStep,
	})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.people = svc
	return nil
}

// People returns the node's person.
func (n *Node) People() *people.Service { return n.people }

// peopleCounters is what Status shows of the people protocol: the
// person's counters and, on a supernode, what it did with other leaves'
// parcels.
func (n *Node) peopleCounters() *api.PeopleCounters {
	if n.people == nil {
		return nil
	}
	st := n.people.Stats()
	pc := &api.PeopleCounters{
		LettersIn: st.LettersIn, LettersOut: st.LettersOut, RefusedLetters: st.Refused, Duplicates: st.Duplicates,
		FromBlocked: st.Blocked, RequestsLimited: st.RequestsLimited, Unsolicited: st.Unsolicited,
		PresenceRefused: st.PresenceRefused, PresenceReplayed: st.PresenceReplayed, PresenceExpired: st.PresenceExpired,
		StrangerRecords: st.StrangerRecords, AnswersHeld: st.AnswersHeld, AnswersWaiting: st.AnswersWaiting,
	}
	if sn := n.Supernode(); sn != nil {
		ps := sn.PeopleStats()
		pc.Supernode = &api.PeopleSupernodeCounters{
			ParcelsRelayed: ps.ParcelsRelayed, ParcelsStored: ps.ParcelsStored, MailHeld: ps.MailHeld, MailBytes: ps.MailBytes,
			RefusedRecipientFull: ps.RefusedRecipientFull, RefusedSenderQuota: ps.RefusedSenderQuota,
			RefusedStoreFull: ps.RefusedStoreFull, RefusedRateLimit: ps.ParcelsLimited, RefusedNoRoute: ps.RefusedNoRoute,
			Malformed: ps.Malformed, PublishesRefused: ps.PublishesRefused,
		}
	}
	return pc
}

// peopleAPI registers the people endpoints (api/people.go).
func (n *Node) peopleAPI(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/profile", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, n.people.Profile())
	})
	mux.HandleFunc("POST /v1/profile", func(w http.ResponseWriter, r *http.Request) {
		var req api.ProfileSet
		if !n.readJSON(w, r, &req) {
			return
		}
		p, err := n.people.SetProfile(req)
		answer(w, p, err)
	})
	mux.HandleFunc("GET /v1/contacts", func(w http.ResponseWriter, r *http.Request) {
		cs, err := n.people.Contacts()
		answer(w, cs, err)
	})
	mux.HandleFunc("POST /v1/contacts", func(w http.ResponseWriter, r *http.Request) {
		var req api.ContactAdd
		if !n.readJSON(w, r, &req) {
			return
		}
		id, err := identity.ParseNodeID(req.ID)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("not a node ID (nothing was sent): %w", err))
			return
		}
		c, err := n.people.Add(r.Context(), id, req.Name, req.Message)
		answer(w, c, err)
	})
	mux.HandleFunc("GET /v1/contacts/requests", func(w http.ResponseWriter, r *http.Request) {
		rs, err := n.people.Requests()
		answer(w, rs, err)
	})
	withID := func(f func(w http.ResponseWriter, r *http.Request, id identity.NodeID)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			id, err := identity.ParseNodeID(r.PathValue("id"))
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Errorf("not a node ID: %w", err))
				return
			}
			f(w, r, id)
		}
	}
	mux.HandleFunc("POST /v1/contacts/{id}/accept", withID(func(w http.ResponseWriter, r *http.Request, id identity.NodeID) {
		c, err := n.people.Accept(id)
		answer(w, c, err)
	}))
	mux.HandleFunc("POST /v1/contacts/{id}/deny", withID(func(w http.ResponseWriter, r *http.Request, id identity.NodeID) {
		answer(w, struct{}{}, n.people.Deny(id))
	}))
	mux.HandleFunc("POST /v1/contacts/{id}/remove", withID(func(w http.ResponseWriter, r *http.Request, id identity.NodeID) {
		answer(w, struct{}{}, n.people.Remove(id))
	}))
	mux.HandleFunc("POST /v1/contacts/{id}/trust", withID(func(w http.ResponseWriter, r *http.Request, id identity.NodeID) {
		var req api.TrustSet
		if !n.readJSON(w, r, &req) {
			return
		}
		t, err := people.ParseTrust(req.Trust)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		c, err := n.people.SetTrust(id, t)
		answer(w, c, err)
	}))
	mux.HandleFunc("POST /v1/contacts/{id}/appear-offline", withID(func(w http.ResponseWriter, r *http.Request, id identity.NodeID) {
		var req api.AppearOffline
		if !n.readJSON(w, r, &req) {
			return
		}
		c, err := n.people.AppearOffline(id, req.On)
		answer(w, c, err)
	}))
	mux.HandleFunc("GET /v1/messages", func(w http.ResponseWriter, r *http.Request) {
		var peer *identity.NodeID
		if s := r.URL.Query().Get("contact"); s != "" {
			id, err := identity.ParseNodeID(s)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Errorf("contact: not a node ID: %w", err))
				return
			}
			peer = &id
		}
		limit := 0
		if s := r.URL.Query().Get("limit"); s != "" {
			var err error
			if limit, err = strconv.Atoi(s); err != nil || limit < 1 {
				writeError(w, http.StatusBadRequest, fmt.Errorf("limit %q is not a positive number", s))
				return
			}
		}
		ms, err := n.people.Messages(peer, limit)
		answer(w, ms, err)
	})
	mux.HandleFunc("POST /v1/messages", func(w http.ResponseWriter, r *http.Request) {
		var req api.MessageSend
		if !n.readJSON(w, r, &req) {
			return
		}
		id, err := identity.ParseNodeID(req.To)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("to: not a node ID (nothing was sent): %w", err))
			return
		}
		m, err := n.people.Send(id, req.Text)
		answer(w, m, err)
	})
	mux.HandleFunc("GET /v1/events", n.handleEvents)
}

// answer writes v, or the error with the status its kind calls for.
func answer(w http.ResponseWriter, v any, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.Is(err, people.ErrNotContact), errors.Is(err, people.ErrNoRequest), errors.Is(err, people.ErrNotFound):
		writeError(w, http.StatusNotFound, err)
	case errors.Is(err, people.ErrSelf), errors.Is(err, people.ErrBlocked), errors.Is(err, people.ErrTooLong):
		writeError(w, http.StatusBadRequest, err)
	default:
		writeError(w, http.StatusBadRequest, err)
	}
}

// handleEvents streams presence changes, messages in, message states,
// requests and contact changes as server-sent events (event: KIND, data:
// the api.Event in JSON), until the client goes or the node stops.
func (n *Node) handleEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, errors.New("streaming not supported"))
		return
	}
	events, stop := n.people.Subscribe()
	defer stop()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": canopy events\n\n")
	fl.Flush()
	keep := time.NewTicker(sseKeepAlive)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keep.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		case e, ok := <-events:
			if !ok {
				return
			}
			b, err := json.Marshal(e)
			if err != nil {
				continue
			}
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Kind, b)
		}
		fl.Flush()
	}
}
