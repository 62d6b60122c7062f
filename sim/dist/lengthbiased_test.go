package dist

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestLengthBiasedMeans checks each length-biased sampler against its closed
// form: the mean of the length-biased law is E[X²]/E[X].
func TestLengthBiasedMeans(t *testing.T) {
	wb := Weibull{K: 0.59, Lambda: 41.9}
	g := func(x float64) float64 { return math.Gamma(x) }
	cases := []struct {
		name string
		s    Sampler
		want float64
	}{
		{"weibull", wb, wb.Lambda * g(1+2/wb.K) / g(1+1/wb.K)},
		{"weibull k=2", Weibull{K: 2, Lambda: 10}, 10 * g(2) / g(1.5)},
		{"lognormal", LogNormal{Mu: 1, Sigma: 0.5}, math.Exp(1 + 1.5*0.25)},
		{"exponential", Exponential{Rate: 0.25}, 8},
		{"fixed", Fixed{Value: 3}, 3},
	}
	r := rand.New(rand.NewPCG(7, 8))
	const n = 400_000
	for _, c := range cases {
		sum := 0.0
		for range n {
			sum += c.s.LengthBiased(r)
		}
		if got := sum / n; math.Abs(got-c.want)/c.want > 0.02 {
			t.Errorf("%s: length-biased mean %.4g, want %.4g", c.name, got, c.want)
		}
	}
}

func TestGammaMoments(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, a := range []float64{1, 1.5, 3.9, 10} {
		const n = 300_000
		var sum, sq float64
		for range n {
			x := gamma(r, a)
			sum += x
			sq += x * x
		}
		mean, variance := sum/n, sq/n-(sum/n)*(sum/n)
		if math.Abs(mean-a)/a > 0.01 || math.Abs(variance-a)/a > 0.03 {
			t.Errorf("Gamma(%g): mean %.4g variance %.4g, both want %g", a, mean, variance, a)
		}
	}
}
