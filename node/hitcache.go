package node

import (
	"sync"

	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/leaf"
)

// hitCache remembers recent search results, so that `canopy get ID` after a
// search starts from the sources the search found. It is bounded; the oldest
// entries go first.
type hitCache struct {
	max int

	mu    sync.Mutex // guards the fields below
	byID  map[content.ID]leaf.Result
	order []content.ID
}

func newHitCache(max int) *hitCache {
	return &hitCache{max: max, byID: make(map[content.ID]leaf.Result)}
}

func (c *hitCache) put(rs []leaf.Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range rs {
		if _, ok := c.byID[r.ID]; !ok {
			c.order = append(c.order, r.ID)
		}
		c.byID[r.ID] = r
	}
	for len(c.order) > c.max {
		delete(c.byID, c.order[0])
		c.order = c.order[1:]
	}
}

func (c *hitCache) get(id content.ID) (leaf.Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.byID[id]
	return r, ok
}
