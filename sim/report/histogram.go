package report

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// Histogram counts values into bins bounded by Edges: bin i holds values v
// with Edges[i] <= v < Edges[i+1], except that the last bin also holds its
// upper edge, so that a histogram of integers 0..n with edges ending at n
// counts n. Bins may have different widths (log-spaced bins suit
// heavy-tailed quantities such as leaves per supernode); the plot shows
// counts per bin, not densities.
type Histogram struct {
	// Title is the plot title.
	Title string
	// XLabel names the quantity on the x axis, with its unit.
	XLabel string
	// Edges are the bin boundaries: finite and strictly increasing,
	// len(Counts)+1 of them.
	Edges []float64
	// Counts holds the number of values in each bin.
	Counts []uint64
	// Under and Over count values below the first edge and above the last,
	// which a fixed set of bins cannot show but a reader must not miss.
	Under, Over uint64
}

// NewHistogram returns an empty Histogram with the given edges, which must
// be finite and strictly increasing, at least two of them. The edges are
// copied.
func NewHistogram(edges []float64) (*Histogram, error) {
	if err := checkEdges(edges); err != nil {
		return nil, err
	}
	return &Histogram{
		Edges:  slices.Clone(edges),
		Counts: make([]uint64, len(edges)-1),
	}, nil
}

// LinearEdges returns n+1 evenly spaced edges from lo to hi, for n bins.
func LinearEdges(lo, hi float64, n int) []float64 {
	edges := make([]float64, n+1)
	for i := range edges {
		// Computed from the ends rather than accumulated so the last
		// edge is exactly hi.
		edges[i] = lo + (hi-lo)*float64(i)/float64(n)
	}
	return edges
}

func checkEdges(edges []float64) error {
	if len(edges) < 2 {
		return fmt.Errorf("%w: %d edges, want at least 2", ErrBadHistogram, len(edges))
	}
	for i, e := range edges {
		if math.IsNaN(e) || math.IsInf(e, 0) {
			return fmt.Errorf("%w: edge %d is %v", ErrBadHistogram, i, e)
		}
		if i > 0 && e <= edges[i-1] {
			return fmt.Errorf("%w: edges not strictly increasing at %d (%v after %v)", ErrBadHistogram, i, e, edges[i-1])
		}
	}
	return nil
}

// Add counts v. NaN is dropped: it has no place on the axis, and counting it
// as under or over would misreport the tails.
func (h *Histogram) Add(v float64) {
	last := len(h.Edges) - 1
	switch {
	case math.IsNaN(v):
	case v < h.Edges[0]:
		h.Under++
	case v > h.Edges[last]:
		h.Over++
	case v == h.Edges[last]:
		h.Counts[last-1]++
	default:
		// The first edge greater than v closes v's bin.
		i := sort.Search(len(h.Edges), func(i int) bool { return h.Edges[i] > v })
		h.Counts[i-1]++
	}
}

// Total returns the number of values counted, including Under and Over.
func (h *Histogram) Total() uint64 {
	t := h.Under + h.Over
	for _, c := range h.Counts {
		t += c
	}
	return t
}
