package node_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/internal/testwait"
)

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// awaitEvent waits up to 10 s for an event ok accepts.
func awaitEvent(ch <-chan api.Event, ok func(api.Event) bool) bool {
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-ch:
			if ok(e) {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

// BenchmarkPeopleLatency measures, on loopback with two supernodes and A
// and B on different ones, with the default timers: how long a presence
// change of A takes to show at B (B's event stream); how long a message
// from A to an online B takes to show delivered at A (B's receipt back);
// and how long after B starts again a message stored while it was offline
// reaches B. The baseline, measured in the same run over the same path, is
// a search from A answered from B's supernode (its first hit: leaf → SN1 →
// SN2 → SN1 → leaf).
func BenchmarkPeopleLatency(b *testing.B) {
	samples, offline := 40, 5
	if testing.Short() {
		samples, offline = 5, 1
	}
	for range b.N {
		pn := newPeopleNet(b)
		pn.supernode("sn1")
		pn.supernode("sn2", "sn1")
		testwait.Until(b, 15*time.Second, func() bool { return len(pn.nodes["sn2"].Supernode().Members()) == 2 }, "a ring of two")
		share := filepath.Join(pn.dir, "b-share")
		os.MkdirAll(share, 0o755)
		os.WriteFile(filepath.Join(share, "benchmark baseline.txt"), []byte("baseline"), 0o644)
		a := pn.leaf("a", "sn1")
		cfg := pn.leafConfig("b", "sn2")
		cfg.Shares = []string{share}
		bn := pn.start("b", cfg)
		testwait.Until(b, 10*time.Second, func() bool {
			as := bn.Leaf().Attachments()
			return len(as) == 1 && as[0].Files == 1
		}, "b attached with its file indexed")
		pn.published("b", "sn2")
		befriend(b, a, bn, "")
		testwait.Until(b, 15*time.Second, func() bool { k, _ := contactOf(bn, a.ID()); return k.Online }, "b sees a online")
		evA, stopA := a.People().Subscribe()
		evB, stopB := bn.People().Subscribe()

		var presence, message, search, stored []time.Duration
		var last time.Time
		for i := range samples {
			st := []string{"away", "busy"}[i%2]
			// Pacing, not polling: one change every 600 ms, within what a
			// leaf publishes (2 a second); a burst of changes beyond its
			// limiter waits, which the throttled figure below measures.
			time.Sleep(time.Until(last.Add(600 * time.Millisecond)))
			last = time.Now()
			start := time.Now()
			if _, err := a.People().SetProfile(api.ProfileSet{Status: &st}); err != nil {
				b.Fatal(err)
			}
			if !awaitEvent(evB, func(e api.Event) bool { return e.Kind == "presence" && e.Contact.Status == st }) {
				b.Fatalf("b never saw a %s", st)
			}
			presence = append(presence, time.Since(start))

			start = time.Now()
			m, err := a.People().Send(bn.ID(), fmt.Sprintf("message %d", i))
			if err != nil {
				b.Fatal(err)
			}
			if !awaitEvent(evA, func(e api.Event) bool {
				return e.Kind == "message-state" && e.Message.ID == m.ID && e.Message.State == "delivered"
			}) {
				b.Fatalf("message %d never delivered", i)
			}
			message = append(message, time.Since(start))

			start = time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			res, err := a.Leaf().Search(ctx, "benchmark baseline", 1, nil)
			cancel()
			if err != nil || len(res) != 1 {
				b.Fatalf("baseline search: %v %d", err, len(res))
			}
			search = append(search, time.Since(start))
		}
		// Eight changes 50 ms apart: the last ones wait for the leaf's
		// publish limiter (2 a second, burst 5).
		var throttled time.Duration
		for _, st := range []string{"online", "busy", "online", "busy", "online", "busy", "online", "away"} {
			start := time.Now()
			if _, err := a.People().SetProfile(api.ProfileSet{Status: &st}); err != nil {
				b.Fatal(err)
			}
			if st == "away" {
				if !awaitEvent(evB, func(e api.Event) bool { return e.Kind == "presence" && e.Contact.Status == st }) {
					b.Fatalf("b never saw a %s", st)
				}
				throttled = time.Since(start)
			}
			time.Sleep(50 * time.Millisecond)
		}
		stopA()
		stopB()

		for i := range offline {
			pn.stop("b")
			testwait.Until(b, 5*time.Second, func() bool { k, _ := contactOf(a, bn.ID()); return !k.Online }, "a sees b offline")
			m, err := a.People().Send(bn.ID(), fmt.Sprintf("stored %d", i))
			if err != nil {
				b.Fatal(err)
			}
			testwait.Until(b, 10*time.Second, func() bool { return messageState(a, m.ID) == "stored " }, "stored")
			start := time.Now() // node start included: key, databases, listener, attach
			bn = pn.start("b", cfg)
			testwait.Until(b, 10*time.Second, func() bool {
				ms, _ := bn.People().Messages(nil, 1)
				return len(ms) == 1 && ms[0].ID == m.ID
			}, "b got the stored message")
			stored = append(stored, time.Since(start))
		}
		base := percentile(search, 0.5)
		b.ReportMetric(msf(percentile(presence, 0.5)), "presence-p50-ms")
		b.ReportMetric(msf(percentile(presence, 0.95)), "presence-p95-ms")
		b.ReportMetric(msf(throttled), "presence-eighth-of-a-burst-ms")
		b.ReportMetric(msf(percentile(message, 0.5)), "delivered-p50-ms")
		b.ReportMetric(msf(percentile(message, 0.95)), "delivered-p95-ms")
		b.ReportMetric(msf(percentile(stored, 0.5)), "stored-start-to-received-ms")
		b.ReportMetric(msf(base), "baseline-hit-p50-ms")
		b.ReportMetric(float64(percentile(presence, 0.5))/float64(base), "presence/baseline")
		b.ReportMetric(float64(percentile(message, 0.5))/float64(base), "delivered/baseline")
	}
}
