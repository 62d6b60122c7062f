package node

import (
	"encoding/json"
	"os"
	"sync"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/internal/atomicfile"
	"github.com/canopy-p2p/canopy/leaf"
)

// maxCachedHosts bounds the host cache file.
const maxCachedHosts = 200

// hostCache persists the supernodes the node has learned of, so that a restart
// finds the network without its seeds. Writes are atomic.
type hostCache struct {
	path string
	log  *zap.Logger

	mu   sync.Mutex // guards last
	last []leaf.Peer
}

func openHostCache(path string, log *zap.Logger) *hostCache {
	h := &hostCache{path: path, log: log}
	b, err := os.ReadFile(path)
	if err != nil {
		if !os.IsNotExist(err) {
			log.Warn("host cache unreadable", zap.Error(err))
		}
		return h
	}
	var peers []leaf.Peer
	if err := json.Unmarshal(b, &peers); err != nil {
		// A damaged cache costs only the start-up shortcut; seeds still work.
		log.Warn("host cache damaged; ignoring it", zap.String("path", path), zap.Error(err))
		return h
	}
	h.last = usable(peers)
	return h
}

// usable keeps the entries that can be dialled and checked, up to the bound.
func usable(peers []leaf.Peer) []leaf.Peer {
	var out []leaf.Peer
	for _, p := range peers {
		if !p.ID.IsZero() && p.Control != "" && len(out) < maxCachedHosts {
			out = append(out, p)
		}
	}
	return out
}

func (h *hostCache) peers() []leaf.Peer {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]leaf.Peer(nil), h.last...)
}

// update replaces the cache with the supernodes the leaf knows now.
func (h *hostCache) update(peers []leaf.Peer) {
	peers = usable(peers)
	b, err := json.MarshalIndent(peers, "", "  ")
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = peers
	if err := atomicfile.Write(h.path, b, 0o600); err != nil {
		h.log.Warn("write host cache", zap.Error(err))
	}
}
