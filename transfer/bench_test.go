package transfer

import (
	"context"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/nat"
	"github.com/canopy-p2p/canopy/wire"
	"github.com/pion/webrtc/v4"
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

// baselineTransfer connects two peer connections directly and times size
// bytes of 60 KiB messages from data channel open to the last byte received.
func baselineTransfer(b *testing.B, size int) time.Duration {
	b.Helper()
	api, wc := nat.NewAPI(nat.ICEConfig{LoopbackOnly: true})
	pcA, err := api.NewPeerConnection(wc)
	if err != nil {
		b.Fatal(err)
	}
	pcB, err := api.NewPeerConnection(wc)
	if err != nil {
		b.Fatal(err)
	}
	a, z := newChannel(pcA), newChannel(pcB)
	defer a.close()
	defer z.close()
	pcB.OnDataChannel(func(dc *webrtc.DataChannel) { z.attach(dc) })
	dc, err := pcA.CreateDataChannel(channelLabel, nil)
	if err != nil {
		b.Fatal(err)
	}
	a.attach(dc)
	ctx := context.Background()
	offer, _ := pcA.CreateOffer(nil)
	osdp, err := gather(ctx, pcA, offer)
	if err != nil {
		b.Fatal(err)
	}
	if err := pcB.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: osdp}); err != nil {
		b.Fatal(err)
	}
	answer, _ := pcB.CreateAnswer(nil)
	asdp, err := gather(ctx, pcB, answer)
	if err != nil {
		b.Fatal(err)
	}
	if err := pcA.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: asdp}); err != nil {
		b.Fatal(err)
	}
	<-a.open
	<-z.open

	start := time.Now()
	sendErr := make(chan error, 1)
	go func() {
		msg := make([]byte, blockSize)
		for sent := 0; sent < size; sent += len(msg) {
			if err := a.send(ctx, msg); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	for got := 0; got < size; {
		select {
		case m := <-z.msgs:
			got += len(m)
		case err := <-sendErr:
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	return time.Since(start)
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
