package demo

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/nat/ice"
	"github.com/canopy-p2p/canopy/transfer"
)

// BenchmarkCrossSupernode64MiB measures, in one run on loopback, the two
// figures the end-to-end issue asks for:
//
//   - first-hit-ms: from sending a search at a leaf on supernode 1 to the first
//     hit from a leaf on supernode 2 (median of 20 searches);
//   - canopy-Mbit/s: a 64 MiB download between those two leaves — signalling
//     through both supernodes, WebRTC connection set-up, manifest, verified
//     pieces written to disk — next to baseline-Mbit/s, pion's plain data
//     channel moving 64 MiB in the same process with the same settings, and
//     their ratio.
//
// Baseline and download alternate so that the noise of a shared machine falls
// on both alike. Run: go test -run '^$' -bench CrossSupernode -benchtime 1x ./demo
func BenchmarkCrossSupernode64MiB(b *testing.B) {
	const size = 64 << 20
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := b.TempDir()
	files := SampleFiles(2, size)
	net, err := Start(ctx, dir, 2, 2, files, "-", nil)
	if net != nil {
		defer net.Close()
	}
	if err != nil {
		b.Fatal(err)
	}
	if err := net.WaitSettled(ctx); err != nil {
		b.Fatal(err)
	}
	searcher := net.Leaves[0]

	var firsts []float64
	var hit api.Hit
	for range 20 {
		res, err := searcher.Search(ctx, api.SearchRequest{Words: "sunrise timelapse", TimeoutMS: 1000, Limit: 1})
		if err != nil || len(res.Hits) == 0 {
			b.Fatalf("search: %v %+v", err, res)
		}
		firsts = append(firsts, res.FirstHitMS)
		hit = res.Hits[0]
	}
	slices.Sort(firsts)
	id, err := content.ParseID(hit.ID)
	if err != nil {
		b.Fatal(err)
	}
	src, err := searcher.Sources(ctx, id)
	if err != nil {
		b.Fatal(err)
	}

	rtcAPI, rtcCfg := ice.NewAPI(ice.Config{LoopbackOnly: true})
	baseline := func() time.Duration {
		d, err := transfer.Baseline(ctx, rtcAPI, rtcCfg, size)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	download := func(i int) time.Duration {
		out := fmt.Sprintf("%s/out%d", dir, i)
		start := time.Now()
		r, err := searcher.Get(ctx, src, out, nil)
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		if r.Size != size {
			b.Fatalf("downloaded %d bytes", r.Size)
		}
		os.RemoveAll(out)
		return d
	}
	b.ResetTimer()
	var base, got time.Duration
	for i := range b.N {
		base += baseline()
		got += download(2 * i)
		got += download(2*i + 1)
		base += baseline()
	}
	mbps := func(d time.Duration) float64 { return float64(2*b.N) * size * 8 / d.Seconds() / 1e6 }
	b.ReportMetric(firsts[len(firsts)/2], "first-hit-ms")
	b.ReportMetric(mbps(base), "baseline-Mbit/s")
	b.ReportMetric(mbps(got), "canopy-Mbit/s")
	b.ReportMetric(base.Seconds()/got.Seconds(), "ratio")
}
