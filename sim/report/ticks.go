package report

import (
	"math"
	"strconv"

	"gonum.org/v1/plot"
)

// hourTicks marks a time axis in hours at steps a reader counts in (1, 2, 3,
// 6, 12, 24 hours, days, weeks) rather than gonum's decimal 5s and 10s,
// which put a simulated day's ticks at 5, 10, 15, 20. Outside the ranges
// those steps suit it falls back to gonum's default ticks.
type hourTicks struct{}

// hourSteps pairs each major step with the minor step that subdivides it.
var hourSteps = []struct{ major, minor float64 }{
	{0.25, 0.05}, {0.5, 0.1}, {1, 0.25}, {2, 0.5}, {3, 1}, {6, 1}, {12, 3},
	{24, 6}, {48, 12}, {72, 24}, {168, 24}, {336, 168},
}

// maxHourTicks is the most labelled ticks hourTicks places; with 10 pt
// labels on an 8 in axis more would crowd.
const maxHourTicks = 9

// Ticks implements plot.Ticker.
func (hourTicks) Ticks(lo, hi float64) []plot.Tick {
	span := hi - lo
	for _, st := range hourSteps {
		if span/st.major > maxHourTicks {
			continue
		}
		if span/st.major < 2 {
			// Fewer than two labels: the span is too short for hour
			// steps.
			break
		}
		var ticks []plot.Tick
		// Index by integer multiples so positions do not accumulate
		// rounding error.
		for i := math.Ceil(lo / st.minor); i*st.minor <= hi; i++ {
			v := i * st.minor
			t := plot.Tick{Value: v}
			if r := math.Remainder(v, st.major); math.Abs(r) < st.minor/1e6 {
				t.Label = strconv.FormatFloat(v, 'f', -1, 64)
			}
			ticks = append(ticks, t)
		}
		return ticks
	}
	return compactTicks{}.Ticks(lo, hi)
}

// compactTicks places ticks at "nice" steps (1, 2, 2.5 or 5 times a power of
// ten) with up to maxValueTicks labels, and labels them compactly: no
// trailing zeros, and an SI suffix from 10,000 up (250k, 1.5M). gonum's
// DefaultTicks aims at three labels and pads them to a common precision
// (0.00, 250.00, 500.00), and prints a million as 1000000.
type compactTicks struct{}

// maxValueTicks is the most labelled ticks compactTicks places.
const maxValueTicks = 7

// niceSteps are the mantissas of the allowed steps, each with the number of
// minor intervals it is divided into.
var niceSteps = []struct {
	mantissa float64
	minors   float64
}{{1, 5}, {2, 4}, {2.5, 5}, {5, 5}, {10, 5}}

// Ticks implements plot.Ticker.
func (compactTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return []plot.Tick{{Value: lo, Label: valueLabel(lo)}}
	}
	span := hi - lo
	pow := math.Pow(10, math.Floor(math.Log10(span/maxValueTicks)))
	step, minors := 10*pow, 5.0
	for _, ns := range niceSteps {
		if span/(ns.mantissa*pow) <= maxValueTicks {
			step, minors = ns.mantissa*pow, ns.minors
			break
		}
	}
	minor := step / minors
	// Integer multiples of the minor step, with a small tolerance, so
	// positions do not accumulate rounding error and an edge that is
	// itself a multiple is not lost to it.
	eps := minor * 1e-9
	var ticks []plot.Tick
	for i := math.Ceil((lo - eps) / minor); i*minor <= hi+eps; i++ {
		t := plot.Tick{Value: i * minor}
		if math.Mod(i, minors) == 0 {
			t.Label = valueLabel(t.Value)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// valueLabel formats a tick value: six significant digits hide the rounding
// left by multiplying steps (0.30000000000000004) without merging the labels
// of neighbouring ticks, and values from 10,000 up get an SI suffix.
func valueLabel(v float64) string {
	if v == 0 {
		return "0" // not "-0"
	}
	a := math.Abs(v)
	for _, u := range []struct {
		div    float64
		suffix string
	}{{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if a >= u.div && a >= 1e4 {
			return strconv.FormatFloat(v/u.div, 'g', 6, 64) + u.suffix
		}
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}
