package transfer

import (
	"context"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
)

// Baseline connects two peer connections of api directly, in this process,
// and times size bytes of data-channel messages of the engine's block size,
// with the engine's flow control, from channel open to the last byte received.
// It measures what pion's plain data channel does on this machine, so that
// benchmarks can report the engine's throughput as a ratio against it.
func Baseline(ctx context.Context, api *webrtc.API, wc webrtc.Configuration, size int) (time.Duration, error) {
	pcA, err := api.NewPeerConnection(wc)
	if err != nil {
		return 0, err
	}
	pcB, err := api.NewPeerConnection(wc)
	if err != nil {
		_ = pcA.Close()
		return 0, err
	}
	// No logger: a pair change in a measurement has no one to tell.
	a, z := newChannel(pcA, zap.NewNop()), newChannel(pcB, zap.NewNop())
	defer a.close()
	defer z.close()
	pcB.OnDataChannel(func(dc *webrtc.DataChannel) { z.attach(dc) })
	dc, err := pcA.CreateDataChannel(channelLabel, nil)
	if err != nil {
		return 0, err
	}
	a.attach(dc)
	offer, err := pcA.CreateOffer(nil)
	if err != nil {
		return 0, err
	}
	osdp, err := gather(ctx, pcA, offer)
	if err != nil {
		return 0, err
	}
	if err := pcB.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: osdp}); err != nil {
		return 0, err
	}
	answer, err := pcB.CreateAnswer(nil)
	if err != nil {
		return 0, err
	}
	asdp, err := gather(ctx, pcB, answer)
	if err != nil {
		return 0, err
	}
	if err := pcA.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: asdp}); err != nil {
		return 0, err
	}
	for _, c := range []*channel{a, z} {
		select {
		case <-c.open:
		case <-c.dead:
			return 0, ErrPeerClosed
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}

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
				return 0, err
			}
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return time.Since(start), nil
}
