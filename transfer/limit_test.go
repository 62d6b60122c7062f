package transfer

import (
	"context"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/wire"
)

// TestBandwidthLimits: an uploader's UpLimit and a downloader's DownLimit
// each hold a real download to the limit (within the bucket's burst), and
// the byte counters say what moved. Only the upper bound on the rate is
// asserted: a slow machine can make a transfer slower, never faster.
func TestBandwidthLimits(t *testing.T) {
	const size = 2 << 20
	const limit = 1 << 20 // bytes per second
	for _, tc := range []struct {
		name     string
		up, down float64
	}{
		{"up limit", limit, 0},
		{"down limit", 0, limit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNet()
			src := newMapSource()
			path := randomFile(t, t.TempDir(), "f.bin", size)
			id := src.share(t, path)
			up := newTestEngine(t, n, testEngineOpts{source: src, config: func(c *Config) { c.UpLimit = tc.up }})
			down := newTestEngine(t, n, testEngineOpts{config: func(c *Config) { c.DownLimit = tc.down }})
			start := time.Now()
			res, err := down.Download(context.Background(), Request{Content: id, Name: "f.bin", OutDir: t.TempDir(),
				Sources: []wire.Source{up.asSource()}})
			if err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			sameFile(t, path, res.Path)
			// The bucket starts full: one burst goes at once, the rest at
			// the limit.
			burst := float64(newLimiter(limit).Burst())
			if min := time.Duration((size - burst) / limit * float64(time.Second)); took < min {
				t.Fatalf("%d bytes in %v at a limit of %d B/s: faster than the limit allows (%v at least)", size, took, limit, min)
			}
			us, ds := up.Stats(), down.Stats()
			if us.BytesSent != size || ds.BytesReceived != size {
				t.Fatalf("bytes sent %d, received %d, want %d each", us.BytesSent, ds.BytesReceived, size)
			}
			if us.UpLimit != tc.up || ds.DownLimit != tc.down {
				t.Fatalf("limits reported %v up, %v down", us.UpLimit, ds.DownLimit)
			}
			t.Logf("%s: %d bytes in %v (%.0f B/s, limit %d)", tc.name, size, took.Round(time.Millisecond), size/took.Seconds(), limit)
		})
	}
}
