package sim

import (
	"github.com/canopy-p2p/canopy/sim/des"
	"github.com/canopy-p2p/canopy/sim/report"
)

// seriesColumns are the time series every run writes, one row per
// Scenario.SampleEvery.
var seriesColumns = []string{
	"hours", "online", "leaves", "supernodes", "leaves_per_supernode", "orphans",
	"promotions", "demotions", "queries", "search_success", "hops", "latency_ms",
	"messages_per_query", "supernode_up_kBps", "relay_share",
}

type seriesRecorder struct {
	s     *report.Series
	last  des.Time
	every des.Time
}

// sample records one row of the time series and schedules the next.
func (m *model) sample() {
	now := m.sim.Now()
	iv := m.interval
	secs := (now - m.series.last).Duration().Seconds()
	m.series.last = now
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	q := float64(iv.queries)
	up := div((iv.queryBytes+iv.relayBytes)/1e3, float64(len(m.sns))*secs)
	m.series.s.Add(
		now.Hours(),
		float64(m.st.online),
		float64(m.st.leaves),
		float64(len(m.sns)),
		div(float64(m.st.leaves), float64(len(m.sns))),
		float64(m.st.orphans),
		float64(iv.promotions),
		float64(iv.demotions),
		q,
		div(float64(iv.successes), q),
		div(float64(iv.hops), float64(iv.successes)),
		div(iv.latencyMS, float64(iv.successes)),
		div(float64(iv.messages), q),
		up,
		div(iv.relayBytes, iv.relayBytes+iv.queryBytes),
	)
	m.interval = intervalStats{}
	m.sim.After(m.series.every, evSample, 0, 0)
}

// percentile returns the p-th percentile (0–1) of the first-hit latency
// histogram, in milliseconds.
func (st *stats) percentile(p float64) float64 {
	var total uint64
	for _, c := range st.latencies {
		total += c
	}
	if total == 0 {
		return 0
	}
	want := uint64(p * float64(total))
	var acc uint64
	for ms, c := range st.latencies {
		acc += c
		if acc > want {
			return float64(ms)
		}
	}
	return float64(len(st.latencies) - 1)
}
