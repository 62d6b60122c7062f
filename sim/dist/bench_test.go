package dist

import (
	"math/rand/v2"
	"testing"
)

// Each benchmark op is one sample, so ns/op reads as ns/sample.

func BenchmarkWeibull(b *testing.B) {
	benchSampler(b, Weibull{K: 0.38, Lambda: 42.4})
}

func BenchmarkLogNormal(b *testing.B) {
	benchSampler(b, LogNormal{Mu: 5.72, Sigma: 1.71})
}

func BenchmarkExponential(b *testing.B) {
	benchSampler(b, Exponential{Rate: 2})
}

func benchSampler(b *testing.B, s Sampler) {
	r := newRand()
	var sink float64
	for b.Loop() {
		sink += s.Sample(r)
	}
	_ = sink
}

func BenchmarkZipf(b *testing.B) {
	for _, tc := range []struct {
		name string
		n    int
		s    float64
	}{
		{"n=1e3/s=0.8", 1000, 0.8},
		{"n=1e6/s=0.8", 1_000_000, 0.8},
		{"n=1e6/s=1.2", 1_000_000, 1.2},
	} {
		b.Run(tc.name, func(b *testing.B) {
			z, err := NewZipf(tc.n, tc.s)
			if err != nil {
				b.Fatal(err)
			}
			r := newRand()
			var sink int
			for b.Loop() {
				sink += z.Sample(r)
			}
			_ = sink
		})
	}
}

func BenchmarkDiscrete(b *testing.B) {
	d, err := NewDiscrete([]float64{20, 45, 30, 4.9, 0.1})
	if err != nil {
		b.Fatal(err)
	}
	r := newRand()
	var sink int
	for b.Loop() {
		sink += d.Sample(r)
	}
	_ = sink
}

// BenchmarkPCG is the cost of the source alone, for reading the others.
func BenchmarkPCG(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	var sink float64
	for b.Loop() {
		sink += r.Float64()
	}
	_ = sink
}
