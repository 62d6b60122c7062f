package dist

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Sampler is a continuous distribution the simulator can draw from and whose
// mean it can report (scenario summaries print the mean next to the
// parameters so a reader can sanity-check a session-length setting).
type Sampler interface {
	// Sample draws one value using r, the simulator's seeded source.
	Sample(r *rand.Rand) float64
	// Mean returns the distribution's expected value.
	Mean() float64
	// LengthBiased draws the length of the interval that covers a random
	// instant: density x·f(x)/Mean (see lengthbiased.go).
	LengthBiased(r *rand.Rand) float64
}

// Compile-time checks that every continuous distribution is a Sampler.
var (
	_ Sampler = Weibull{}
	_ Sampler = LogNormal{}
	_ Sampler = Exponential{}
	_ Sampler = Fixed{}
)

// uniformOpen0 returns a uniform value in (0, 1]. Inverse-CDF samplers take
// the logarithm of it, and excluding 0 keeps them finite: r.Float64 returns
// [0, 1), so 1 - r.Float64 is (0, 1].
func uniformOpen0(r *rand.Rand) float64 {
	return 1 - r.Float64()
}

// positiveFinite reports whether v is a usable scale or shape parameter.
func positiveFinite(v float64) bool {
	return v > 0 && !math.IsInf(v, 1)
}

// Weibull is the Weibull distribution with shape K and scale Lambda, the
// usual fit for P2P session lengths: Stutzbach and Rejaie (IMC 2006) report
// K = 0.38, Lambda = 42.4 minutes for a BitTorrent swarm. A shape below 1
// means a decreasing hazard: the longer a peer has stayed, the longer it is
// likely to stay, which is why uptime is a promotion criterion.
type Weibull struct {
	// K is the shape; it must be positive and finite.
	K float64
	// Lambda is the scale, in the unit of the samples; it must be positive
	// and finite.
	Lambda float64
}

// Validate reports whether the parameters are in the distribution's domain.
func (w Weibull) Validate() error {
	if !positiveFinite(w.K) {
		return fmt.Errorf("%w: weibull shape k = %v, want > 0", ErrInvalidParameter, w.K)
	}
	if !positiveFinite(w.Lambda) {
		return fmt.Errorf("%w: weibull scale lambda = %v, want > 0", ErrInvalidParameter, w.Lambda)
	}
	return nil
}

// Sample draws by inversion of the CDF, λ(−ln U)^(1/k): one uniform per
// sample, so a run's random stream does not depend on rejection loops. The
// power is taken as exp(ln(·)/k), faster than math.Pow, whose special cases
// this input never reaches; when −ln U is 0 the logarithm is −Inf and the
// sample is exactly 0.
func (w Weibull) Sample(r *rand.Rand) float64 {
	return w.Lambda * math.Exp(math.Log(-math.Log(uniformOpen0(r)))/w.K)
}

// Mean returns λ·Γ(1 + 1/k).
func (w Weibull) Mean() float64 {
	return w.Lambda * math.Gamma(1+1/w.K)
}

// Median returns λ·(ln 2)^(1/k).
func (w Weibull) Median() float64 {
	return w.Lambda * math.Pow(math.Ln2, 1/w.K)
}

// LogNormal is the distribution of exp(X) with X normal of mean Mu and
// standard deviation Sigma; the TU Delft trace archive fits Gnutella session
// lengths with Mu = 5.72, Sigma = 1.71 (minutes, unverified units).
type LogNormal struct {
	// Mu is the mean of the logarithm; it must be finite.
	Mu float64
	// Sigma is the standard deviation of the logarithm; it must be positive
	// and finite.
	Sigma float64
}

// Validate reports whether the parameters are in the distribution's domain.
func (l LogNormal) Validate() error {
	if math.IsNaN(l.Mu) || math.IsInf(l.Mu, 0) {
		return fmt.Errorf("%w: lognormal mu = %v, want finite", ErrInvalidParameter, l.Mu)
	}
	if !positiveFinite(l.Sigma) {
		return fmt.Errorf("%w: lognormal sigma = %v, want > 0", ErrInvalidParameter, l.Sigma)
	}
	return nil
}

// Sample returns exp(μ + σZ) with Z from r.NormFloat64 (a ziggurat, cheaper
// than Box–Muller and consuming a variable but seed-determined number of
// values from r).
func (l LogNormal) Sample(r *rand.Rand) float64 {
	return math.Exp(l.Mu + l.Sigma*r.NormFloat64())
}

// Mean returns exp(μ + σ²/2). With a heavy tail (σ = 1.71 gives a mean
// four times the median) sample means converge slowly; prefer Median when
// checking samples.
func (l LogNormal) Mean() float64 {
	return math.Exp(l.Mu + l.Sigma*l.Sigma/2)
}

// Median returns exp(μ).
func (l LogNormal) Median() float64 {
	return math.Exp(l.Mu)
}

// Exponential is the exponential distribution with the given Rate (events per
// unit of time): the gap between arrivals of a Poisson process, used for peer
// arrivals and query issue times.
type Exponential struct {
	// Rate is λ, the inverse of the mean; it must be positive and finite.
	Rate float64
}

// Validate reports whether the rate is in the distribution's domain.
func (e Exponential) Validate() error {
	if !positiveFinite(e.Rate) {
		return fmt.Errorf("%w: exponential rate = %v, want > 0", ErrInvalidParameter, e.Rate)
	}
	return nil
}

// Sample returns r.ExpFloat64()/Rate; math/rand/v2's ziggurat is several
// times faster than −ln(U)/λ.
func (e Exponential) Sample(r *rand.Rand) float64 {
	return r.ExpFloat64() / e.Rate
}

// Mean returns 1/λ.
func (e Exponential) Mean() float64 {
	return 1 / e.Rate
}

// Median returns ln 2/λ.
func (e Exponential) Median() float64 {
	return math.Ln2 / e.Rate
}

// Fixed is the degenerate distribution that always yields Value. Scenarios
// use it to switch randomness off for one input, e.g. to compare against a
// closed-form result.
type Fixed struct {
	// Value is the single value returned; it must be finite.
	Value float64
}

// Validate reports whether the value is finite.
func (f Fixed) Validate() error {
	if math.IsNaN(f.Value) || math.IsInf(f.Value, 0) {
		return fmt.Errorf("%w: fixed value = %v, want finite", ErrInvalidParameter, f.Value)
	}
	return nil
}

// Sample returns Value without consuming anything from r, so switching an
// input to Fixed changes the random stream seen by the others.
func (f Fixed) Sample(*rand.Rand) float64 {
	return f.Value
}

// Mean returns Value.
func (f Fixed) Mean() float64 {
	return f.Value
}
