package node_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/demo"
	"github.com/canopy-p2p/canopy/node"
	"github.com/canopy-p2p/canopy/promotion"
)

// streamNetwork is a supernode, a leaf that shares one file, and a leaf
// with the local API that searches, all attached and the file indexed.
type streamNetwork struct {
	searcher *node.Node
	token    string
}

func startStreamNetwork(t *testing.T) streamNetwork {
	t.Helper()
	dir := t.TempDir()
	cfg := demo.NodeOptions(dir, "sn", testLog(t))
	cfg.Consent = promotion.ConsentAlways
	sn, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	share := filepath.Join(dir, "shared")
	if err := os.MkdirAll(share, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(share, "Streaming Search Song.ogg"), []byte(strings.Repeat("la ", 5000)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg = demo.NodeOptions(dir, "owner", testLog(t))
	cfg.Consent, cfg.RoleInterval, cfg.Join, cfg.Shares = promotion.ConsentNever, node.NoRoleLoop, []string{sn.Control()}, []string{share}
	owner, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { owner.Close() })
	searcher, tok := startAPINode(t, func(c *node.Config) { c.Join = []string{sn.Control()} })
	waitFor(t, "the file indexed and the searcher attached", 20*time.Second, func() (bool, string) {
		a := owner.Leaf().Attachments()
		return len(a) == 1 && a[0].Files == 1 && len(searcher.Leaf().Attachments()) == 1, "not yet"
	})
	return streamNetwork{searcher: searcher, token: tok}
}

// TestSearchStreamDeliversHitsAsTheyArrive: the stream's first hit comes
// while the search still runs (a 20 s timeout, read within a deadline far
// shorter), the limit ends the stream at once, and the done event carries
// the whole result, which `canopy get` then finds in the hit cache.
func TestSearchStreamDeliversHitsAsTheyArrive(t *testing.T) {
	net := startStreamNetwork(t)
	c := api.NewClient(net.searcher.APIAddr(), net.token)
	const timeout = 20 * time.Second
	// The test's own deadline: half the search's timeout. Were the hits
	// buffered until the end, nothing would arrive before it.
	deadline := timeout / 2

	t.Run("first hit before the timeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		var got []api.SearchEvent
		_, err := c.SearchStream(ctx, api.SearchRequest{Words: "streaming song", TimeoutMS: int(timeout.Milliseconds())}, func(ev api.SearchEvent) {
			got = append(got, ev)
			cancel() // seen one: the search may go on, the test does not wait for it
		})
		if len(got) != 1 || got[0].Hit.Name != "Streaming Search Song.ogg" || got[0].ElapsedMS >= float64(timeout.Milliseconds()) {
			t.Fatalf("events %+v, error %v: want the file's hit", got, err)
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the stream ended with %v before the test let it go: want it still running", err)
		}
	})

	t.Run("limit ends the stream", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		hits := 0
		res, err := c.SearchStream(ctx, api.SearchRequest{Words: "streaming song", TimeoutMS: int(timeout.Milliseconds()), Limit: 1}, func(api.SearchEvent) { hits++ })
		if err != nil {
			t.Fatalf("search with --limit 1 and a %s timeout did not end within %s: %v", timeout, deadline, err)
		}
		if hits != 1 || len(res.Hits) != 1 || res.Hits[0].Sources != 1 || res.FirstHitMS < 0 || res.FirstHitMS > res.ElapsedMS {
			t.Fatalf("%d hit events, result %+v", hits, res)
		}
		// The whole result is what POST /v1/search answers.
		whole, err := c.Search(context.Background(), api.SearchRequest{Words: "streaming song", TimeoutMS: 300})
		if err != nil || len(whole.Hits) != 1 || whole.Hits[0].ID != res.Hits[0].ID || whole.Hits[0].Name != res.Hits[0].Name {
			t.Fatalf("POST /v1/search: %+v %v, want the stream's %+v", whole, err, res.Hits)
		}
	})

	// No timeout named: the real default one. Nothing matches, so the
	// stream ends with an empty done line after it.
	t.Run("no match, default timeout", func(t *testing.T) {
		hits := 0
		res, err := c.SearchStream(context.Background(), api.SearchRequest{Words: "nothing like it"}, func(api.SearchEvent) { hits++ })
		if err != nil || hits != 0 || len(res.Hits) != 0 || res.FirstHitMS != -1 || res.ElapsedMS < float64(api.DefaultSearchTimeout.Milliseconds()) {
			t.Fatalf("%d hits, %+v, %v", hits, res, err)
		}
	})

	t.Run("token", func(t *testing.T) {
		_, err := api.NewClient(net.searcher.APIAddr(), strings.Repeat("0", api.TokenLen)).SearchStream(context.Background(), api.SearchRequest{Words: "streaming"}, nil)
		if !errors.Is(err, api.ErrUnauthorized) {
			t.Fatalf("wrong token: %v, want 401", err)
		}
	})

	t.Run("bad request", func(t *testing.T) {
		_, err := c.SearchStream(context.Background(), api.SearchRequest{Words: "   "}, nil)
		var se *api.StatusError
		if !errors.As(err, &se) || se.Code != http.StatusBadRequest {
			t.Fatalf("empty search: %v, want 400", err)
		}
	})
}

// TestSearchStreamOverTheRateIsTooManyRequests: a streamed search that the
// supernode refuses for its rate is answered 429 with Retry-After, as
// POST /v1/search is, not a 200 stream that ends in an error line.
func TestSearchStreamOverTheRateIsTooManyRequests(t *testing.T) {
	cfg := demo.NodeOptions(t.TempDir(), "sn", testLog(t))
	cfg.Consent, cfg.API = promotion.ConsentAlways, node.Off
	sn, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	l, tok := startAPINode(t, func(c *node.Config) { c.Join = []string{sn.Control()} })
	waitFor(t, "the leaf attached", 20*time.Second, func() (bool, string) {
		return len(l.Leaf().Attachments()) == 1, "not yet"
	})
	// Twice the supernode's burst of queries at once.
	const searches = 40
	type answer struct {
		code        int
		retry, body string
	}
	answers := make([]answer, searches)
	var wg sync.WaitGroup
	for i := range searches {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, "http://"+l.APIAddr()+"/v1/search/stream",
				jsonBody(api.SearchRequest{Words: "nothing here", TimeoutMS: 500}))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			var last string
			for sc.Scan() {
				last = sc.Text()
			}
			answers[i] = answer{resp.StatusCode, resp.Header.Get("Retry-After"), last}
		})
	}
	wg.Wait()
	var ok, slow int
	for i, a := range answers {
		switch a.code {
		case http.StatusOK:
			ok++
			var ev api.SearchEvent
			if json.Unmarshal([]byte(a.body), &ev) != nil || ev.Event != api.SearchEventDone {
				t.Errorf("search %d: 200 ending in %q, want a done event", i, a.body)
			}
		case http.StatusTooManyRequests:
			slow++
			if a.retry == "" || strings.HasPrefix(a.retry, "0") {
				t.Errorf("429 with Retry-After %q", a.retry)
			}
		default:
			t.Errorf("search %d: status %d", i, a.code)
		}
	}
	if ok == 0 || slow == 0 {
		t.Fatalf("%d searches answered, %d told to slow down: want both", ok, slow)
	}
}
