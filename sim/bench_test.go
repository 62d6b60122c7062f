package sim

import (
	"context"
	"testing"
)

// BenchmarkRun simulates 20,000 nodes for 6 hours with the default scenario
// and reports events per second.
func BenchmarkRun(b *testing.B) {
	sc := DefaultScenario()
	sc.Nodes, sc.Hours = 20_000, 6
	var events uint64
	for b.Loop() {
		res, err := Run(context.Background(), sc, Options{})
		if err != nil {
			b.Fatal(err)
		}
		events += res.Summary.Events
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}
