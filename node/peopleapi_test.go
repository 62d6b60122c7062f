package node_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/node"
)

func (pn *peopleNet) apiLeaf(name, sn string) (*node.Node, *api.Client) {
	pn.t.Helper()
	cfg := pn.leafConfig(name, sn)
	cfg.API = "127.0.0.1:0"
	n := pn.start(name, cfg)
	pn.published(name, sn)
	tok, err := api.ReadTokenFile(filepath.Dir(n.APITokenFile()))
	if err != nil {
		pn.t.Fatal(err)
	}
	return n, api.NewClient(n.APIAddr(), tok)
}

// events follows c's event stream into a channel until the test ends. The
// stream is open when it returns: it has every event from then on.
func events(t *testing.T, c *api.Client) <-chan api.Event {
	ch := make(chan api.Event, 100)
	st, err := c.OpenEvents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			e, err := st.Next()
			if err != nil {
				return
			}
			select {
			case ch <- e:
			default:
			}
		}
	}()
	t.Cleanup(func() { st.Close(); <-done })
	return ch
}

// waitEvent waits for an event that ok accepts.
func waitEvent(t *testing.T, ch <-chan api.Event, what string, ok func(api.Event) bool) api.Event {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case e := <-ch:
			if ok(e) {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event within 5 s", what)
		}
	}
}

// TestPeopleAPI drives two people through the local API, with each one's
// event stream: a mistyped ID is refused before anything is sent; a
// request, the accept, a status change and a message each arrive as an
// event; the message's delivery shows on the sender's stream.
func TestPeopleAPI(t *testing.T) {
	pn := newPeopleNet(t)
	pn.supernode("sn1")
	a, ca := pn.apiLeaf("a", "sn1")
	b, cb := pn.apiLeaf("b", "sn1")
	ctx := context.Background()
	evA, evB := events(t, ca), events(t, cb)

	// A mistyped ID: one that does not parse (a wrong length, a
	// character outside the alphabet), and one that parses but names no
	// node on the network. Both are refused and nothing is sent.
	var se *api.StatusError
	for _, bad := range []string{b.ID().String()[:51], "0" + b.ID().String()[1:]} {
		if _, err := ca.AddContact(ctx, api.ContactAdd{ID: bad}); !errors.As(err, &se) || se.Code != 400 {
			t.Fatalf("ID %q: %v", bad, err)
		}
	}
	typo := []byte(b.ID().String())
	typo[0] = map[bool]byte{true: 'b', false: 'a'}[typo[0] == 'a']
	if _, err := ca.AddContact(ctx, api.ContactAdd{ID: string(typo)}); !errors.As(err, &se) || se.Code != 404 {
		t.Fatalf("an ID that names nobody: %v", err)
	}
	if cs, _ := ca.Contacts(ctx); len(cs) != 0 {
		t.Fatalf("a mistyped ID left a contact: %+v", cs)
	}
	if st := a.People().Stats(); st.LettersOut != 0 {
		t.Fatalf("%d letters sent for mistyped IDs", st.LettersOut)
	}
	if _, err := ca.SetProfile(ctx, api.ProfileSet{Status: ptr("sleeping")}); !errors.As(err, &se) || se.Code != 400 {
		t.Fatalf("a bad status: %v", err)
	}

	if _, err := ca.AddContact(ctx, api.ContactAdd{ID: b.ID().String(), Name: "bob", Message: "hello from the API"}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, evB, "request", func(e api.Event) bool {
		return e.Kind == "request" && e.Request.ID == a.ID().String() && e.Request.Text == "hello from the API"
	})
	if rs, err := cb.Requests(ctx); err != nil || len(rs) != 1 {
		t.Fatalf("requests: %v %+v", err, rs)
	}
	if _, err := cb.ContactAction(ctx, a.ID().String(), "accept"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, evA, "contact", func(e api.Event) bool {
		return e.Kind == "contact" && e.Contact.ID == b.ID().String() && e.Contact.State == "contact"
	})
	if _, err := ca.SetProfile(ctx, api.ProfileSet{Status: ptr("busy"), Text: ptr("in a meeting")}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, evB, "presence", func(e api.Event) bool {
		return e.Kind == "presence" && e.Contact.ID == a.ID().String() && e.Contact.Status == "busy" && e.Contact.Text == "in a meeting"
	})
	m, err := ca.SendMessage(ctx, b.ID().String(), "over the API")
	if err != nil {
		t.Fatal(err)
	}
	waitEvent(t, evB, "message", func(e api.Event) bool {
		return e.Kind == "message" && e.Message.ID == m.ID && e.Message.Text == "over the API" && e.Message.Dir == "in"
	})
	waitEvent(t, evA, "message-state", func(e api.Event) bool {
		return e.Kind == "message-state" && e.Message.ID == m.ID && e.Message.State == "delivered"
	})
	ms, err := cb.Messages(ctx, a.ID().String(), 10)
	if err != nil || len(ms) != 1 || ms[0].Text != "over the API" {
		t.Fatalf("b's messages: %v %+v", err, ms)
	}
	if _, err := cb.SendMessage(ctx, "not-an-id", "x"); !errors.As(err, &se) || se.Code != 400 {
		t.Fatalf("a message to a bad ID: %v", err)
	}
	if _, err := ca.SetTrust(ctx, b.ID().String(), "friend"); !errors.As(err, &se) || se.Code != 400 {
		t.Fatalf("a bad trust level: %v", err)
	}
	if k, err := ca.SetTrust(ctx, b.ID().String(), "trusted"); err != nil || k.Trust != "trusted" {
		t.Fatalf("trusted: %v %+v", err, k)
	}
}
