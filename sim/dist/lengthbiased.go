package dist

import (
	"math"
	"math/rand/v2"
)

// Length-biased sampling. A renewal process observed at a random instant
// (the start of a simulation that should look as if it had been running for
// ever) is inside an interval whose length L is length-biased: its density is
// x·f(x)/E[X], because long intervals are more likely to cover the instant.
// The time already spent (the age) is then U·L and the time left (1−U)·L with
// U uniform in [0,1), independent of L. Each distribution here has its
// length-biased law in closed form.

// LengthBiased samples the length-biased Weibull: (L/λ)^k ~ Gamma(1 + 1/k, 1).
func (w Weibull) LengthBiased(r *rand.Rand) float64 {
	return w.Lambda * math.Pow(gamma(r, 1+1/w.K), 1/w.K)
}

// LengthBiased samples the length-biased lognormal, which is lognormal with
// μ + σ² and the same σ.
func (l LogNormal) LengthBiased(r *rand.Rand) float64 {
	return math.Exp(l.Mu + l.Sigma*l.Sigma + l.Sigma*r.NormFloat64())
}

// LengthBiased samples the length-biased exponential: Gamma(2, 1/rate), the
// sum of two exponentials.
func (e Exponential) LengthBiased(r *rand.Rand) float64 {
	return (r.ExpFloat64() + r.ExpFloat64()) / e.Rate
}

// LengthBiased of a constant is the constant.
func (f Fixed) LengthBiased(*rand.Rand) float64 { return f.Value }

// gamma samples Gamma(a, 1) for a ≥ 1 (Marsaglia & Tsang 2000, "A simple
// method for generating gamma variables"): a squeeze-accelerated rejection
// method that accepts over 95% of candidates.
func gamma(r *rand.Rand, a float64) float64 {
	d := a - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := uniformOpen0(r)
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}
