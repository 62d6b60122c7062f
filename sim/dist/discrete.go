package dist

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Discrete draws category indexes 0..len(weights)-1 with probability
// proportional to their weights, in O(1) per draw using Vose's alias method
// ("A linear algorithm for generating random numbers with a given
// distribution", IEEE TSE 17(9), 1991). It is meant for small categorical
// mixes drawn millions of times: capacity classes, NAT kinds, free riders.
//
// A Discrete is immutable after NewDiscrete and safe for concurrent use with
// distinct *rand.Rand values.
type Discrete struct {
	prob  []float64 // prob[i]: chance of keeping column i rather than its alias
	alias []int32   // alias[i]: the category sharing column i
	p     []float64 // normalised weights, kept for Probability
}

// NewDiscrete builds the alias table for weights. Weights need not sum to 1;
// each must be finite and non-negative, and at least one must be positive.
// A zero weight is never drawn.
func NewDiscrete(weights []float64) (*Discrete, error) {
	n := len(weights)
	if n == 0 {
		return nil, ErrNoWeights
	}
	if n > math.MaxInt32 {
		return nil, fmt.Errorf("%w: %d categories, want at most %d", ErrInvalidParameter, n, math.MaxInt32)
	}
	var sum float64
	for i, w := range weights {
		if !(w >= 0) || math.IsInf(w, 1) {
			return nil, fmt.Errorf("%w: weight[%d] = %v, want finite and >= 0", ErrInvalidParameter, i, w)
		}
		sum += w
	}
	if sum == 0 {
		return nil, ErrNoWeights
	}
	if math.IsInf(sum, 1) {
		return nil, fmt.Errorf("%w: weights sum to +Inf", ErrInvalidParameter)
	}

	d := &Discrete{
		prob:  make([]float64, n),
		alias: make([]int32, n),
		p:     make([]float64, n),
	}
	// scaled[i] = n·p_i: a column of height 1 per category, to be filled
	// exactly by one "small" category and the overflow of one "large" one.
	scaled := make([]float64, n)
	small := make([]int32, 0, n)
	large := make([]int32, 0, n)
	for i, w := range weights {
		d.p[i] = w / sum
		scaled[i] = d.p[i] * float64(n)
		if scaled[i] < 1 {
			small = append(small, int32(i))
		} else {
			large = append(large, int32(i))
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s := small[len(small)-1]
		small = small[:len(small)-1]
		l := large[len(large)-1]
		large = large[:len(large)-1]
		d.prob[s] = scaled[s]
		d.alias[s] = l
		scaled[l] = scaled[l] + scaled[s] - 1
		if scaled[l] < 1 {
			small = append(small, l)
		} else {
			large = append(large, l)
		}
	}
	// Whatever remains is 1 up to rounding error (Vose's fix for the
	// numerical instability of Walker's original); give it a full column.
	for _, l := range large {
		d.prob[l] = 1
		d.alias[l] = l
	}
	for _, s := range small {
		d.prob[s] = 1
		d.alias[s] = s
	}
	return d, nil
}

// Len returns the number of categories.
func (d *Discrete) Len() int { return len(d.prob) }

// Probability returns the normalised weight of category i, or 0 when i is out
// of range.
func (d *Discrete) Probability(i int) float64 {
	if i < 0 || i >= len(d.p) {
		return 0
	}
	return d.p[i]
}

// Sample returns a category index: a uniform column, then a biased coin
// between the column's category and its alias.
func (d *Discrete) Sample(r *rand.Rand) int {
	i := r.IntN(len(d.prob))
	if r.Float64() < d.prob[i] {
		return i
	}
	return int(d.alias[i])
}
