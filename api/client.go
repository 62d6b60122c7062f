package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Client talks to a node's local API.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// NewClient returns a client for the API at addr (host:port) that sends
// token (from the node's TokenFileName, see ReadTokenFile) with every
// request. With an empty token it sends none, and the node answers 401.
func NewClient(addr, token string) *Client {
	return &Client{base: "http://" + addr, token: token, http: &http.Client{}}
}

// ErrNoNode is returned when nothing answers at the API address.
var ErrNoNode = errors.New("no Canopy node answers at that address (is `canopy up` running?)")

// ErrUnauthorized matches (errors.Is) a StatusError for a 401: the request
// carried no token or the wrong one.
var ErrUnauthorized = errors.New("the node refused the API token")

// ErrForbidden matches a StatusError for a 403: the node refused the
// request's Host, Origin or fetch metadata.
var ErrForbidden = errors.New("the node refused the request's origin")

// StatusError is a non-2xx answer of the node. Its text is the node's own
// message (the api.Error body), so that callers can show it as it is.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string { return e.Message }

// Is makes errors.Is(err, ErrUnauthorized) and errors.Is(err, ErrForbidden)
// true for a 401 and a 403.
func (e *StatusError) Is(target error) bool {
	return target == ErrUnauthorized && e.Code == http.StatusUnauthorized ||
		target == ErrForbidden && e.Code == http.StatusForbidden
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", ErrNoNode, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var e Error
		if json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&e) != nil || e.Error == "" {
			e.Error = "node answered " + resp.Status
		}
		return nil, &StatusError{Code: resp.StatusCode, Message: e.Error}
	}
	if out == nil {
		return resp, nil
	}
	defer resp.Body.Close()
	return resp, json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out)
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	_, err := c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
	return s, err
}

// NATCheck runs NAT behaviour discovery now and returns what the node knows
// of its NAT, reachability and port mapping.
func (c *Client) NATCheck(ctx context.Context) (NAT, error) {
	var n NAT
	_, err := c.do(ctx, http.MethodPost, "/v1/natcheck", nil, &n)
	return n, err
}

// Search runs a search on the network through the node.
func (c *Client) Search(ctx context.Context, req SearchRequest) (SearchResponse, error) {
	var r SearchResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/search", req, &r)
	return r, err
}

// Get downloads a file, calling onEvent for every progress line; it returns the
// final "done" event, or an error for an "error" event or a broken stream.
func (c *Client) Get(ctx context.Context, req GetRequest, onEvent func(GetEvent)) (GetEvent, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/get", req, nil)
	if err != nil {
		return GetEvent{}, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev GetEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return GetEvent{}, fmt.Errorf("bad progress line from node: %w", err)
		}
		switch ev.Event {
		case "done":
			return ev, nil
		case "error":
			return ev, errors.New(ev.Error)
		}
		if onEvent != nil {
			onEvent(ev)
		}
	}
	if err := sc.Err(); err != nil {
		return GetEvent{}, err
	}
	return GetEvent{}, errors.New("the node closed the download stream without a result")
}

// WaitReady polls the status endpoint until the node answers or ctx ends.
func (c *Client) WaitReady(ctx context.Context) error {
	for {
		if _, err := c.Status(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
