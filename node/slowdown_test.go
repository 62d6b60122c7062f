package node_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/demo"
	"github.com/canopy-p2p/canopy/node"
	"github.com/canopy-p2p/canopy/promotion"
)

// TestAPISearchOverTheRateIsTooManyRequests: searches that the supernode
// refuses for their rate reach the API's caller as 429 with Retry-After, not
// as an empty result or a bad request.
func TestAPISearchOverTheRateIsTooManyRequests(t *testing.T) {
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
	codes := make([]int, searches)
	retry := make([]string, searches)
	var wg sync.WaitGroup
	for i := range searches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, "http://"+l.APIAddr()+"/v1/search",
				jsonBody(api.SearchRequest{Words: "nothing here", TimeoutMS: 500}))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			resp.Body.Close()
			codes[i], retry[i] = resp.StatusCode, resp.Header.Get("Retry-After")
		}()
	}
	wg.Wait()
	var ok, slow int
	for i, c := range codes {
		switch c {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			slow++
			if retry[i] == "" || strings.HasPrefix(retry[i], "0") {
				t.Errorf("429 with Retry-After %q", retry[i])
			}
		default:
			t.Errorf("search %d: status %d", i, c)
		}
	}
	if ok == 0 || slow == 0 {
		t.Fatalf("%d searches answered, %d told to slow down: want both", ok, slow)
	}
	t.Logf("%d of %d searches answered, %d told to slow down", ok, searches, slow)
}
