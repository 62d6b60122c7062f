// Package demo starts a small Canopy network on loopback — supernodes, leaves
// and sample files — and walks through a search and a cross-supernode download,
// saying what happens at each step. `canopy demo` runs it, and the end-to-end
// tests use the same network builder.
package demo

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/nat/ice"
	"github.com/canopy-p2p/canopy/node"
	"github.com/canopy-p2p/canopy/promotion"
)

// Options configure the demo.
type Options struct {
	// Dir holds the nodes' data and shared files. Empty: a temporary directory
	// removed by Network.Close.
	Dir string
	// API is the local API address of the first leaf (node.Off: none).
	API string
	// Out receives the step-by-step narration. May be nil.
	Out io.Writer
	// Logger is the nodes' logger. May be nil.
	Logger *zap.Logger
}

// Network is a running demo network.
type Network struct {
	Supernodes []*node.Node
	Leaves     []*node.Node
	// SampleID is the content ID of the file the demo downloads.
	SampleID content.ID
	// shares is how many files each leaf was given: a leaf whose first
	// scan has not finished shows 0 shared and 0 indexed, which would
	// otherwise look settled.
	shares []int
	dir    string
	tmp    bool
}

// Close stops every node, leaves first, and removes a temporary directory.
func (n *Network) Close() {
	for _, l := range n.Leaves {
		l.Close()
	}
	for _, s := range n.Supernodes {
		s.Close()
	}
	if n.tmp {
		os.RemoveAll(n.dir)
	}
}

// NodeOptions are the settings every node of a loopback network shares.
func NodeOptions(dir, name string, log *zap.Logger) node.Config {
	return node.Config{
		DataDir: filepath.Join(dir, name, "data"),
		Listen:  "127.0.0.1:0",
		Gossip:  "127.0.0.1:0",
		// memberlist's LAN timers, not its "local" ones: a loaded machine (CI
		// runs many test binaries at once) made the local profile's short
		// probe timeouts suspect live supernodes now and then, and a
		// supernode routes only to ring members.
		GossipProfile: "lan",
		API:           node.Off,
		// No TURN relay: on loopback it would refuse every peer (a relay
		// serves public addresses only), and every supernode of a network
		// on one machine would want the same port.
		TURN:   node.Off,
		ICE:    ice.Config{LoopbackOnly: true},
		Logger: log.Named(name),
	}
}

// Start builds a network of sns supernodes and leaves leaves on loopback.
// Leaf i shares the files in files[i] (name → content) and attaches to one
// supernode only (round robin), so that searches and downloads must cross the
// ring. The first leaf serves the local API at api.
func Start(ctx context.Context, dir string, sns, leaves int, files []map[string][]byte, apiAddr string, log *zap.Logger) (*Network, error) {
	if log == nil {
		log = zap.NewNop()
	}
	net := &Network{dir: dir}
	for i := range sns {
		cfg := NodeOptions(dir, fmt.Sprintf("sn%d", i+1), log)
		cfg.Consent = promotion.ConsentAlways
		if i > 0 {
			cfg.Join = []string{net.Supernodes[0].Control()}
		}
		n, err := node.Start(ctx, cfg)
		if err != nil {
			return net, fmt.Errorf("supernode %d: %w", i+1, err)
		}
		net.Supernodes = append(net.Supernodes, n)
	}
	for i := range leaves {
		name := fmt.Sprintf("leaf%d", i+1)
		cfg := NodeOptions(dir, name, log)
		cfg.Consent = promotion.ConsentNever
		cfg.Attach = 1
		cfg.Join = []string{net.Supernodes[i%sns].Control()}
		share := filepath.Join(dir, name, "shared")
		if err := os.MkdirAll(share, 0o755); err != nil {
			return net, err
		}
		if i < len(files) {
			for fname, data := range files[i] {
				if err := os.WriteFile(filepath.Join(share, fname), data, 0o644); err != nil {
					return net, err
				}
			}
		}
		cfg.Shares = []string{share}
		if i < len(files) {
			net.shares = append(net.shares, len(files[i]))
		} else {
			net.shares = append(net.shares, 0)
		}
		if i == 0 && apiAddr != "" {
			cfg.API = apiAddr
		}
		n, err := node.Start(ctx, cfg)
		if err != nil {
			return net, fmt.Errorf("%s: %w", name, err)
		}
		net.Leaves = append(net.Leaves, n)
	}
	return net, nil
}

// WaitSettled waits until the ring is complete and every leaf's supernode holds
// the leaf's whole library.
func (n *Network) WaitSettled(ctx context.Context) error {
	for {
		if n.settled() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("network did not settle: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (n *Network) settled() bool {
	for _, s := range n.Supernodes {
		ring := s.Status().Ring
		if len(ring) != len(n.Supernodes) {
			return false
		}
		for _, m := range ring {
			if !m.Self && !m.Linked {
				return false
			}
		}
	}
	for i, l := range n.Leaves {
		st := l.Status()
		if len(st.Supernodes) == 0 || st.SharedFiles != n.shares[i] {
			return false
		}
		for _, a := range st.Supernodes {
			if a.Files != st.SharedFiles {
				return false
			}
		}
	}
	return true
}

// routingStats summarises what the supernodes did, for a failure message.
func (n *Network) routingStats() string {
	var parts []string
	for i, s := range n.Supernodes {
		if sn := s.Supernode(); sn != nil {
			st := sn.Stats()
			parts = append(parts, fmt.Sprintf("supernode %d: %d ring members, queries %d from leaves %d from peers, %d duplicate, %d hits routed, %d from non-members",
				i+1, len(sn.Members()), st.QueriesFromLeaves, st.QueriesFromPeers, st.DuplicateQueries, st.HitsRouted, st.FromNonMembers))
		}
	}
	return strings.Join(parts, "; ")
}

// SampleFiles returns the demo's shared files: a few named text files per leaf
// and one larger binary file on leaf 2, which sits on another supernode than
// leaf 1.
func SampleFiles(leaves int, bigSize int) []map[string][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	topics := []string{"ocean waves at night", "mountain sunrise", "city rain", "forest birdsong", "desert wind", "river stones"}
	out := make([]map[string][]byte, leaves)
	for i := range out {
		out[i] = map[string][]byte{}
		for j := 0; j < 2; j++ {
			t := topics[(i*2+j)%len(topics)]
			name := fmt.Sprintf("Field Recording - %s (%c).txt", t, 'A'+i)
			out[i][name] = []byte(fmt.Sprintf("Notes on %s, recorded by leaf %d.\n", t, i+1))
		}
	}
	big := make([]byte, bigSize)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	out[1%leaves]["Canopy Demo - Café Sunrise Timelapse.bin"] = big
	return out
}

// Run starts the demo network and narrates a search and a download to
// opts.Out. It returns the network still running; the caller closes it.
func Run(ctx context.Context, opts Options) (*Network, error) {
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	say := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }
	dir, tmp := opts.Dir, false
	if dir == "" {
		d, err := os.MkdirTemp("", "canopy-demo-")
		if err != nil {
			return nil, err
		}
		dir, tmp = d, true
	}
	const sns, leaves = 2, 3
	say("Starting a Canopy network on loopback: %d supernodes, %d leaves (data in %s)", sns, leaves, dir)
	files := SampleFiles(leaves, 16<<20)
	net, err := Start(ctx, dir, sns, leaves, files, opts.API, opts.Logger)
	if net != nil {
		net.tmp = tmp
	}
	if err != nil {
		return net, err
	}
	for i, s := range net.Supernodes {
		say("  supernode %d  %s  control %s", i+1, s.ID().Short(), s.Control())
	}
	for i, l := range net.Leaves {
		say("  leaf %d       %s  attached to supernode %d, sharing %d files", i+1, l.ID().Short(), i%sns+1, len(files[i]))
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := net.WaitSettled(wctx); err != nil {
		return net, err
	}
	say("The ring has formed (memberlist), the supernodes are linked (TLS), and every leaf has uploaded its index to its supernode.")

	searcher := net.Leaves[0]
	say("\n1. Leaf 1 searches for \"cafe sunrise\" (accents and case are folded).")
	res, err := searcher.Search(ctx, api.SearchRequest{Words: "cafe sunrise", TimeoutMS: 2000})
	if err != nil {
		return net, err
	}
	if len(res.Hits) == 0 {
		return net, fmt.Errorf("the search found nothing (%s)", net.routingStats())
	}
	for _, h := range res.Hits {
		say("   hit: %s  %q  %d bytes, %d source(s)", h.ID[:16], h.Name, h.Size, h.Sources)
	}
	say("   first hit after %.1f ms: leaf 1 → supernode 1 → supernode 2 → hits routed back.", res.FirstHitMS)

	hit := res.Hits[0]
	id, err := content.ParseID(hit.ID)
	if err != nil {
		return net, err
	}
	net.SampleID = id
	say("\n2. Leaf 1 downloads it from leaf 2 over a WebRTC data channel; the offer and answer travel through both supernodes.")
	src, err := searcher.Sources(ctx, id)
	if err != nil {
		return net, err
	}
	outDir := filepath.Join(dir, "leaf1", "downloads")
	r, err := searcher.Get(ctx, src, outDir, nil)
	if err != nil {
		return net, err
	}
	m, err := content.HashFile(r.Path, content.DefaultPieceSize)
	if err != nil {
		return net, err
	}
	if m.ID() != id {
		return net, fmt.Errorf("downloaded file hashes to %s, not %s", m.ID(), id)
	}
	rate := float64(r.Size) * 8 / r.Duration.Seconds() / 1e6
	say("   saved %s: %d bytes in %v (%.0f Mbit/s), every piece verified against the content ID.", r.Path, r.Size, r.Duration.Round(time.Millisecond), rate)
	say("\nDone: search across supernodes and a verified leaf-to-leaf WebRTC transfer.")
	return net, nil
}
