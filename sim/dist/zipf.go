package dist

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Zipf draws ranks 0..N-1 with P(rank i) ∝ 1/(i+1)^S: file popularity, where
// measured exponents are often at or below 1. math/rand's Zipf requires
// S > 1, so this is a separate implementation.
//
// It uses Hörmann and Derflinger's rejection-inversion ("Rejection-inversion
// to generate variates from monotone discrete distributions", ACM TOMACS 6(3),
// 1996), as in Apache Commons Math's ZipfDistribution sampler, rather than a
// cumulative table searched by bisection. The simulator's catalogues run to
// millions of files per scenario and sweeps build many of them; a table would
// cost 8 bytes per rank and a cache-missing binary search per draw, while
// rejection-inversion needs O(1) memory and construction, and accepts over
// 98% of its candidates for N from 2 to 10^6 and S from 0 to 10
// (TestZipfAcceptance), so a draw costs about one uniform and a few log and
// exp calls. Samples follow the exact Zipf law, not an approximation.
//
// A Zipf is immutable after NewZipf and safe for concurrent use with
// distinct *rand.Rand values.
type Zipf struct {
	n int     // number of ranks
	s float64 // exponent

	// Precomputed constants of the algorithm, named as in Commons Math.
	hIntegralX1 float64 // H(1.5) − h(1)
	hIntegralN  float64 // H(n + 0.5)
	squeeze     float64 // 2 − H⁻¹(H(2.5) − h(2)): accept k without testing when k − x ≤ squeeze
}

// NewZipf returns a Zipf over n ranks with exponent s. n must be at least 1
// and s must be finite and non-negative (s = 0 is uniform).
func NewZipf(n int, s float64) (*Zipf, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: zipf n = %d, want >= 1", ErrInvalidParameter, n)
	}
	if !(s >= 0) || math.IsInf(s, 1) {
		return nil, fmt.Errorf("%w: zipf exponent s = %v, want >= 0", ErrInvalidParameter, s)
	}
	z := &Zipf{n: n, s: s}
	z.hIntegralX1 = z.hIntegral(1.5) - 1
	z.hIntegralN = z.hIntegral(float64(n) + 0.5)
	z.squeeze = 2 - z.hIntegralInverse(z.hIntegral(2.5)-z.h(2))
	return z, nil
}

// N returns the number of ranks.
func (z *Zipf) N() int { return z.n }

// S returns the exponent.
func (z *Zipf) S() float64 { return z.s }

// Sample returns a 0-based rank: 0 is the most popular.
func (z *Zipf) Sample(r *rand.Rand) int {
	for {
		// u is uniform on (hIntegralX1, hIntegralN]; x = H⁻¹(u) has a
		// continuous density that dominates the Zipf law, and rounding it
		// to the nearest integer is accepted unless it landed in the part
		// of the hat above the true probability.
		u := z.hIntegralN + r.Float64()*(z.hIntegralX1-z.hIntegralN)
		x := z.hIntegralInverse(u)
		k := int(x + 0.5)
		if k < 1 {
			k = 1
		} else if k > z.n {
			k = z.n
		}
		kf := float64(k)
		if kf-x <= z.squeeze || u >= z.hIntegral(kf+0.5)-z.h(kf) {
			return k - 1
		}
	}
}

// Probability returns the exact probability of the 0-based rank i, computed
// by summing the normalising constant; it is O(N) and meant for tests and
// reports, not for sampling.
func (z *Zipf) Probability(i int) float64 {
	if i < 0 || i >= z.n {
		return 0
	}
	var norm float64
	// Sum the smallest terms first to limit rounding error.
	for k := z.n; k >= 1; k-- {
		norm += z.h(float64(k))
	}
	return z.h(float64(i+1)) / norm
}

// h is the unnormalised probability mass x^−s.
func (z *Zipf) h(x float64) float64 {
	return math.Exp(-z.s * math.Log(x))
}

// hIntegral is H(x) = ∫₁ˣ t^−s dt = (x^(1−s) − 1)/(1 − s), written through
// expm1 so that it is accurate near s = 1, where it tends to ln x.
func (z *Zipf) hIntegral(x float64) float64 {
	logX := math.Log(x)
	return expm1Over((1-z.s)*logX) * logX
}

// hIntegralInverse is H⁻¹.
func (z *Zipf) hIntegralInverse(x float64) float64 {
	t := x * (1 - z.s)
	if t < -1 {
		// Rounding can push t just below −1 where log1p is undefined;
		// −1 is the limit of the domain.
		t = -1
	}
	return math.Exp(log1pOver(t) * x)
}

// expm1Over returns (eˣ − 1)/x, continuous at 0 by its Taylor series.
func expm1Over(x float64) float64 {
	if math.Abs(x) > 1e-8 {
		return math.Expm1(x) / x
	}
	return 1 + x*0.5*(1+x/3*(1+0.25*x))
}

// log1pOver returns ln(1 + x)/x, continuous at 0 by its Taylor series.
func log1pOver(x float64) float64 {
	if math.Abs(x) > 1e-8 {
		return math.Log1p(x) / x
	}
	return 1 - x*(0.5-x*(1.0/3-0.25*x))
}
