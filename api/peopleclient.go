package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Profile returns the node's profile.
func (c *Client) Profile(ctx context.Context) (Profile, error) {
	var p Profile
	_, err := c.do(ctx, http.MethodGet, "/v1/profile", nil, &p)
	return p, err
}

// SetProfile changes the profile.
func (c *Client) SetProfile(ctx context.Context, set ProfileSet) (Profile, error) {
	var p Profile
	_, err := c.do(ctx, http.MethodPost, "/v1/profile", set, &p)
	return p, err
}

// Contacts lists the roster.
func (c *Client) Contacts(ctx context.Context) ([]Contact, error) {
	var cs []Contact
	_, err := c.do(ctx, http.MethodGet, "/v1/contacts", nil, &cs)
	return cs, err
}

// AddContact sends a contact request.
func (c *Client) AddContact(ctx context.Context, req ContactAdd) (Contact, error) {
	var out Contact
	_, err := c.do(ctx, http.MethodPost, "/v1/contacts", req, &out)
	return out, err
}

// Requests lists the contact requests waiting.
func (c *Client) Requests(ctx context.Context) ([]Request, error) {
	var rs []Request
	_, err := c.do(ctx, http.MethodGet, "/v1/contacts/requests", nil, &rs)
	return rs, err
}

// ContactAction runs accept, deny or remove on id.
func (c *Client) ContactAction(ctx context.Context, id, action string) (Contact, error) {
	var out Contact
	_, err := c.do(ctx, http.MethodPost, "/v1/contacts/"+url.PathEscape(id)+"/"+action, struct{}{}, &out)
	return out, err
}

// SetTrust sets id's trust.
func (c *Client) SetTrust(ctx context.Context, id, trust string) (Contact, error) {
	var out Contact
	_, err := c.do(ctx, http.MethodPost, "/v1/contacts/"+url.PathEscape(id)+"/trust", TrustSet{Trust: trust}, &out)
	return out, err
}

// SetAppearOffline makes the node appear offline to id (or not).
func (c *Client) SetAppearOffline(ctx context.Context, id string, on bool) (Contact, error) {
	var out Contact
	_, err := c.do(ctx, http.MethodPost, "/v1/contacts/"+url.PathEscape(id)+"/appear-offline", AppearOffline{On: on}, &out)
	return out, err
}

// Messages lists messages, of one contact when contact is set.
func (c *Client) Messages(ctx context.Context, contact string, limit int) ([]Message, error) {
	q := url.Values{}
	if contact != "" {
		q.Set("contact", contact)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/messages"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var ms []Message
	_, err := c.do(ctx, http.MethodGet, path, nil, &ms)
	return ms, err
}

// SendMessage sends a message.
func (c *Client) SendMessage(ctx context.Context, to, text string) (Message, error) {
	var m Message
	_, err := c.do(ctx, http.MethodPost, "/v1/messages", MessageSend{To: to, Text: text}, &m)
	return m, err
}

// EventStream is an open event stream: the node sends every event from
// the moment OpenEvents returned.
type EventStream struct {
	body io.ReadCloser
	sc   *bufio.Scanner
}

// OpenEvents opens the event stream.
func (c *Client) OpenEvents(ctx context.Context) (*EventStream, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/events", nil, nil)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	return &EventStream{body: resp.Body, sc: sc}, nil
}

// Next returns the next event; io.EOF when the node closed the stream.
func (s *EventStream) Next() (Event, error) {
	for s.sc.Scan() {
		data, ok := strings.CutPrefix(s.sc.Text(), "data: ")
		if !ok {
			continue // event names, comments and blank lines
		}
		var ev Event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return Event{}, fmt.Errorf("bad event from node: %w", err)
		}
		return ev, nil
	}
	if err := s.sc.Err(); err != nil {
		return Event{}, err
	}
	return Event{}, io.EOF
}

// Close ends the stream.
func (s *EventStream) Close() error { return s.body.Close() }

// Events follows the event stream until ctx ends or the node closes it,
// calling onEvent for each event.
func (c *Client) Events(ctx context.Context, onEvent func(Event)) error {
	st, err := c.OpenEvents(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	for {
		ev, err := st.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if err == io.EOF {
				return fmt.Errorf("the node closed the event stream")
			}
			return err
		}
		onEvent(ev)
	}
}
