package transfer

import (
	"context"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/nat/ice"
	"github.com/canopy-p2p/canopy/wire"
	"go.uber.org/zap"
)

// BenchmarkTransfer64MiB compares, in one run, a bare data channel pair
// moving 64 MiB with the engine's settings and flow control (the baseline)
// against a Download of a 64 MiB file through the Engine (signalling,
// manifest, envelopes, verification, disk writes). Only the ratio means
// anything across machines; run with -benchtime=1x.
func BenchmarkTransfer64MiB(b *testing.B) {
	const size = 64 << 20
	var base, eng time.Duration
	for range b.N {
		// Each side runs twice, interleaved, so that warm-up and the noise of
		// a shared machine fall on both alike.
		base += baselineTransfer(b, size)
		eng += engineTransfer(b, size)
		eng += engineTransfer(b, size)
		base += baselineTransfer(b, size)
	}
	mbps := func(d time.Duration) float64 { return float64(2*b.N) * size * 8 / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(base), "baseline-Mbit/s")
	b.ReportMetric(mbps(eng), "engine-Mbit/s")
	b.ReportMetric(base.Seconds()/eng.Seconds(), "ratio")
}

func baselineTransfer(b *testing.B, size int) time.Duration {
	b.Helper()
	api, wc := ice.NewAPI(ice.Config{LoopbackOnly: true})
	d, err := Baseline(context.Background(), api, wc, size)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// engineTransfer times one Download of a size-byte file from one source.
func engineTransfer(b *testing.B, size int) time.Duration {
	b.Helper()
	n := newTestNet()
	src := newMapSource()
	id := src.share(b, randomFile(b, b.TempDir(), "f.bin", size))
	up := newTestEngine(b, n, testEngineOpts{source: src, logger: zap.NewNop()})
	down := newTestEngine(b, n, testEngineOpts{logger: zap.NewNop()})
	defer up.Close()
	defer down.Close()
	start := time.Now()
	res, err := down.Download(context.Background(), Request{Content: id, Name: "f.bin", OutDir: b.TempDir(),
		Sources: []wire.Source{up.asSource()}})
	if err != nil {
		b.Fatal(err)
	}
	d := time.Since(start)
	if res.Size != int64(size) {
		b.Fatalf("size %d", res.Size)
	}
	return d
}
