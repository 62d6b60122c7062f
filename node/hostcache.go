package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/internal/atomicfile"
	"github.com/canopy-p2p/canopy/internal/quarantine"
	"github.com/canopy-p2p/canopy/leaf"
)

// maxCachedHosts bounds the host cache file.
const maxCachedHosts = 200

// maxHostCacheSize bounds the host cache file openHostCache reads. update
// writes at most maxCachedHosts entries of about 100 bytes (indented, with a
// 52-character ID and an IP address and port) and a host name as long as DNS
// allows adds 250; 200 such entries are 70 KiB, so a larger file is not one
// this program wrote.
const maxHostCacheSize = 128 << 10

// maxReasonLen bounds the reason a damaged state file is logged with: a
// decoder's error can quote the offending value, which in a damaged file
// can be as long as the file.
const maxReasonLen = 300

// boundReason cuts an error's text to maxReasonLen bytes for a log line.
func boundReason(err error) string {
	s := err.Error()
	if len(s) <= maxReasonLen {
		return s
	}
	return strings.ToValidUTF8(s[:maxReasonLen], "") + "…"
}

// errHostCacheDamaged reports a host cache file that does not decode.
var errHostCacheDamaged = errors.New("host cache is damaged")

// hostCache persists the supernodes the node has learned of, so that a restart
// finds the network without its seeds. Writes are atomic.
type hostCache struct {
	path string
	log  *zap.Logger

	mu   sync.Mutex // guards last
	last []leaf.Peer
}

// openHostCache reads the host cache at path. A missing file is a first
// start. A damaged one costs only the start-up shortcut (the seeds still
// work, and the supernodes the leaf learns refill it), so it must not stop
// the node: it is moved aside as path.corrupt-<UTC time> (the newest
// quarantine.DefaultKeep copies are kept), logged once at WARN, and the node
// starts with an empty cache.
func openHostCache(path string, log *zap.Logger) *hostCache {
	h := &hostCache{path: path, log: log}
	peers, err := readHostCache(path)
	switch {
	case err == nil:
		h.last = usable(peers)
	case errors.Is(err, os.ErrNotExist):
	case errors.Is(err, errHostCacheDamaged):
		why := boundReason(errors.New(strings.TrimPrefix(err.Error(), errHostCacheDamaged.Error()+": ")))
		moved, qerr := quarantine.Move(path, time.Now(), quarantine.DefaultKeep)
		if moved == "" {
			// Left in place; the first update replaces it atomically.
			log.Warn("host cache is damaged and could not be moved aside; starting without it",
				zap.String("path", path), zap.String("reason", why), zap.NamedError("move_error", qerr))
			return h
		}
		fields := []zap.Field{zap.String("path", path), zap.String("reason", why), zap.String("moved_to", moved)}
		if qerr != nil {
			fields = append(fields, zap.NamedError("prune_error", qerr))
		}
		log.Warn("host cache is damaged: moved it aside and starting without it; the supernodes the node learns refill it", fields...)
	default:
		log.Warn("host cache unreadable; starting without it", zap.String("path", path), zap.Error(err))
	}
	return h
}

// readHostCache reads and decodes the file at path.
func readHostCache(path string) ([]leaf.Peer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxHostCacheSize+1))
	f.Close()
	if err != nil {
		return nil, err
	}
	return decodeHostCache(b)
}

// decodeHostCache decodes a host cache file; an error wraps
// errHostCacheDamaged.
func decodeHostCache(b []byte) ([]leaf.Peer, error) {
	if len(b) > maxHostCacheSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", errHostCacheDamaged, maxHostCacheSize)
	}
	var peers []leaf.Peer
	if err := json.Unmarshal(b, &peers); err != nil {
		return nil, fmt.Errorf("%w: %v", errHostCacheDamaged, err)
	}
	return peers, nil
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
