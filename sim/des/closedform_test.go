package des

import (
	"fmt"
	"math"
	"testing"
)

// Checks of the engine against closed-form results. Each run is seeded, so a
// pass or fail is reproducible; each tolerance is four standard deviations
// of the estimator at the run's length (from the known asymptotic variance),
// so the check is as strict under -race or -short, where runs are shorter,
// and a real bias of a few percent still fails the full run.

// statScale is the fraction of the full run length the statistical tests
// use: the race detector slows the engine about tenfold.
func statScale() float64 {
	if raceEnabled || testing.Short() {
		return 0.1
	}
	return 1
}

// queueRun simulates a single-server FIFO queue with Poisson arrivals at
// rate lambda per µs; service(rng) draws a service time. It returns the
// time-average number in system, the mean sojourn time of the departed
// customers, and the fraction of time the server was busy.
func queueRun(seed uint64, lambda float64, service func(s *Sim) Time, customers int) (meanN, meanSojourn, busy float64) {
	const (
		arrival uint8 = iota
		departure
	)
	s := New(seed)
	var (
		inSystem  int
		area      float64 // ∫ n(t) dt
		busyTime  Time
		lastT     Time
		arrivedAt []Time // FIFO of customers in system, by arrival time
		sojourn   float64
		departed  int
		arrived   int
	)
	interarrival := func() Time { return Time(math.Round(s.Rand().ExpFloat64() / lambda)) }
	s.At(interarrival(), arrival, 0, 0)
	s.Run(MaxTime, func(s *Sim, ev Event) {
		dt := ev.At - lastT
		area += float64(inSystem) * float64(dt)
		if inSystem > 0 {
			busyTime += dt
		}
		lastT = ev.At
		switch ev.Kind {
		case arrival:
			arrived++
			inSystem++
			arrivedAt = append(arrivedAt, ev.At)
			if inSystem == 1 {
				s.After(service(s), departure, 0, 0)
			}
			if arrived < customers {
				s.After(interarrival(), arrival, 0, 0)
			}
		case departure:
			inSystem--
			sojourn += float64(ev.At - arrivedAt[0])
			arrivedAt = arrivedAt[1:]
			departed++
			if inSystem > 0 {
				s.After(service(s), departure, 0, 0)
			}
		}
	})
	return area / float64(lastT), sojourn / float64(departed), float64(busyTime) / float64(lastT)
}

// TestMG1 checks mean number in system, mean sojourn time and utilisation of
// M/M/1 and M/D/1 queues against the Pollaczek–Khinchine formula
//
//	L = ρ + ρ²(1+C²) / (2(1−ρ)),  W = L/λ (Little),  busy = ρ,
//
// where C² is the squared coefficient of variation of service (1 for
// exponential, 0 for constant); for M/M/1 these are ρ/(1−ρ) and 1/(μ−λ). The
// tolerance uses the asymptotic variance of the time-average number in an
// M/M/1 system, 2ρ(1+ρ)/((1−ρ)^4 μT) (Whitt, "Planning queueing
// simulations", 1989), which bounds M/D/1's as well, since constant
// service is less variable.
func TestMG1(t *testing.T) {
	const meanService = 10 * Millisecond // 10^4 µs: rounding to µs is noise
	mu := 1 / float64(meanService)
	exponential := func(s *Sim) Time { return Time(math.Round(s.Rand().ExpFloat64() / mu)) }
	constant := func(*Sim) Time { return meanService }
	cases := []struct {
		name    string
		rho     float64
		cv2     float64
		service func(*Sim) Time
	}{
		{"M/M/1", 0.5, 1, exponential},
		{"M/M/1", 0.8, 1, exponential},
		{"M/D/1", 0.8, 0, constant},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/rho=%.1f", tc.name, tc.rho), func(t *testing.T) {
			rho := tc.rho
			lambda := rho * mu
			customers := int(statScale() * 4e6 * rho) // ≈ 4·10^6 mean service times
			gotL, gotW, gotBusy := queueRun(1, lambda, tc.service, customers)

			wantL := rho + rho*rho*(1+tc.cv2)/(2*(1-rho))
			wantW := wantL / lambda
			muT := float64(customers) / rho // run length in mean service times
			sdL := math.Sqrt(2 * rho * (1 + rho) / (math.Pow(1-rho, 4) * muT))
			tol := 4 * sdL / wantL // relative; W = L/λ has the same relative error
			// Utilisation is a 0/1 process with a shorter memory than n(t);
			// L's tolerance is ample for it.
			for _, c := range []struct {
				what      string
				got, want float64
			}{
				{"mean number in system", gotL, wantL},
				{"mean sojourn (µs)", gotW, wantW},
				{"utilisation", gotBusy, rho},
			} {
				if rel := math.Abs(c.got-c.want) / c.want; rel > tol {
					t.Errorf("%s = %.4g, want %.4g (off %.2f%%, tolerance %.2f%%)", c.what, c.got, c.want, 100*rel, 100*tol)
				} else {
					t.Logf("%s = %.4g, want %.4g (off %.2f%%, tolerance %.2f%%)", c.what, c.got, c.want, 100*rel, 100*tol)
				}
			}
		})
	}
}

// TestPoissonCounts checks a Poisson process built from exponential gaps:
// the number of arrivals per interval has mean and variance λT, and the
// gaps are never negative (so the clock only moves forward).
func TestPoissonCounts(t *testing.T) {
	const (
		arrival uint8 = iota
		tick
		lambda   = 20.0 // arrivals per interval
		interval = Second
	)
	intervals := int(statScale() * 50000)
	s := New(3)
	gap := func() Time { return Time(math.Round(s.Rand().ExpFloat64() / lambda * float64(interval))) }
	counts := make([]float64, 0, intervals)
	count := 0
	s.At(gap(), arrival, 0, 0)
	s.At(interval, tick, 0, 0)
	s.Run(Time(intervals)*interval, func(s *Sim, ev Event) {
		switch ev.Kind {
		case arrival:
			count++
			s.After(gap(), arrival, 0, 0)
		case tick:
			counts = append(counts, float64(count))
			count = 0
			s.After(interval, tick, 0, 0)
		}
	})
	if len(counts) != intervals {
		t.Fatalf("%d intervals counted, want %d", len(counts), intervals)
	}
	var sum, sumSq float64
	for _, c := range counts {
		sum += c
	}
	mean := sum / float64(intervals)
	for _, c := range counts {
		sumSq += (c - mean) * (c - mean)
	}
	variance := sumSq / float64(intervals-1)

	k := float64(intervals)
	// Standard errors for Poisson(λ) samples: the mean's is √(λ/k); the
	// sample variance's is √((2λ² + λ)/k) (fourth central moment 3λ² + λ).
	sdMean := math.Sqrt(lambda / k)
	sdVar := math.Sqrt((2*lambda*lambda + lambda) / k)
	if math.Abs(mean-lambda) > 4*sdMean {
		t.Errorf("mean count %.4f, want %.0f ± %.4f", mean, lambda, 4*sdMean)
	}
	if math.Abs(variance-lambda) > 4*sdVar {
		t.Errorf("count variance %.4f, want %.0f ± %.4f", variance, lambda, 4*sdVar)
	}
	t.Logf("%d intervals: mean %.4f, variance %.4f (λT = %.0f)", intervals, mean, variance, lambda)
}

// TestPeerSimSteadyState checks the benchmark workload against what it must
// be to be comparable with PeerSim: after the first cycle each cycle runs
// exactly N timers, about N messages, and about N(1 + 0.35) events are
// pending (every node's timer plus the messages in flight, whose delay
// averages 0.35 cycle).
func TestPeerSimSteadyState(t *testing.T) {
	const n = 20000
	cycles := 20
	if raceEnabled || testing.Short() {
		cycles = 5
	}
	s := New(9)
	peersimStart(s, s.Rand(), n)
	var timers, messages int
	count := func(s *Sim, ev Event) {
		if ev.Kind == kindTimer {
			timers++
		} else {
			messages++
		}
		peersimHandler(n)(s, ev)
	}
	s.Run(cycle, count)
	timers, messages = 0, 0
	var pending float64
	for c := 1; c <= cycles; c++ {
		s.Run(Time(c+1)*cycle, count)
		pending += float64(s.Pending())
	}
	if timers != n*cycles {
		t.Errorf("%d timers in %d cycles, want %d", timers, cycles, n*cycles)
	}
	// Messages per cycle are a sum of N nearly independent indicators;
	// 4·√(N·cycles) is a generous bound on the count's deviation.
	if dev := math.Abs(float64(messages - n*cycles)); dev > 4*math.Sqrt(n*float64(cycles)) {
		t.Errorf("%d messages in %d cycles, want about %d", messages, cycles, n*cycles)
	}
	if got, want := pending/float64(cycles)/n, 1.35; math.Abs(got-want) > 0.01 {
		t.Errorf("pending per node at cycle boundaries %.4f, want %.2f", got, want)
	}
}
