package choice

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestChoose(t *testing.T) {
	p := DefaultParams()
	ms := time.Millisecond
	cases := []struct {
		name  string
		cands []Candidate
		want  []int
	}{
		{"empty", nil, nil},
		{"least loaded first", []Candidate{
			{Load: 0.5, FreeSlots: 10, RTT: 20 * ms},
			{Load: 0.1, FreeSlots: 10, RTT: 20 * ms},
			{Load: 0.3, FreeSlots: 10, RTT: 20 * ms},
			{Load: 0.2, FreeSlots: 10, RTT: 20 * ms},
		}, []int{1, 3, 2}},
		{"tops up to K", []Candidate{
			{Load: 0.1, FreeSlots: 10, Attached: true},
			{Load: 0.5, FreeSlots: 10},
			{Load: 0.2, FreeSlots: 10, Attached: true},
			{Load: 0.3, FreeSlots: 10},
		}, []int{3}},
		{"K already held", []Candidate{
			{FreeSlots: 10, Attached: true}, {FreeSlots: 10, Attached: true},
			{FreeSlots: 10, Attached: true}, {FreeSlots: 10},
		}, nil},
		{"full and overloaded skipped", []Candidate{
			{Load: 0.1, FreeSlots: 0},
			{Load: 0.95, FreeSlots: 10},
			{Load: 0.94, FreeSlots: 1},
			{Load: math.NaN(), FreeSlots: 10},
		}, []int{2}},
		{"RTT weighs against load", []Candidate{
			{Load: 0.1, FreeSlots: 10, RTT: 300 * ms}, // 0.1 + 0.75
			{Load: 0.5, FreeSlots: 10, RTT: 20 * ms},  // 0.5 + 0.05
			{Load: 0.3, FreeSlots: 10},                // 0.3 + 0.25 (unknown RTT)
		}, []int{1, 2, 0}},
		{"failures first", []Candidate{
			{Load: 0.0, FreeSlots: 10, RTT: ms, Failures: 1},
			{Load: 0.9, FreeSlots: 10, RTT: 200 * ms},
			{Load: 0.0, FreeSlots: 10, RTT: ms, Failures: 2},
			{Load: 0.5, FreeSlots: 10, RTT: 200 * ms},
		}, []int{3, 1, 0}},
		{"ties by tiebreak then index", []Candidate{
			{Load: 0.2, FreeSlots: 10, Tiebreak: 9},
			{Load: 0.2, FreeSlots: 10, Tiebreak: 3},
			{Load: 0.2, FreeSlots: 10, Tiebreak: 9},
			{Load: 0.2, FreeSlots: 10, Tiebreak: 5},
		}, []int{1, 3, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Choose(p, tc.cands, nil)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Choose = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestChooseAppends(t *testing.T) {
	cands := []Candidate{{Load: 0.3, FreeSlots: 1}, {Load: 0.1, FreeSlots: 1}}
	dst := []int{42}
	got := Choose(DefaultParams(), cands, dst)
	if !slices.Equal(got, []int{42, 1, 0}) {
		t.Fatalf("Choose = %v, want the prefix kept", got)
	}
}

func TestScore(t *testing.T) {
	p := DefaultParams()
	if got, want := Score(p, Candidate{Load: 0.5, RTT: 40 * time.Millisecond}), 0.5+2.5*0.04; math.Abs(got-want) > 1e-12 {
		t.Errorf("Score = %v, want %v", got, want)
	}
	if Score(p, Candidate{}) != Score(p, Candidate{RTT: p.UnknownRTT}) {
		t.Error("unknown RTT is not scored as UnknownRTT")
	}
	if Score(p, Candidate{Load: 7}) != Score(p, Candidate{Load: 1}) {
		t.Error("load is not clamped")
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultParams().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []Params{{K: 0, MaxLoad: 1}, {K: 3, MaxLoad: 0}, {K: 3, MaxLoad: 1, RTTWeight: -1}, {K: 3, MaxLoad: 1, UnknownRTT: -1}} {
		if err := p.Validate(); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("Validate(%+v) = %v", p, err)
		}
	}
}

// reference ranks every eligible candidate with a full sort and keeps the best
// K − attached: the obvious implementation Choose must agree with.
func reference(p Params, cands []Candidate) []int {
	var idx []int
	attached := 0
	for i := range cands {
		if cands[i].Attached {
			attached++
		}
		if eligible(&p, &cands[i]) {
			idx = append(idx, i)
		}
	}
	slices.SortFunc(idx, func(a, b int) int {
		if rankOf(&p, cands, a).before(rankOf(&p, cands, b)) {
			return -1
		}
		return 1
	})
	want := max(p.K-attached, 0)
	if len(idx) > want {
		idx = idx[:want]
	}
	return idx
}

func randomCandidates(r *rand.Rand, n int) []Candidate {
	cands := make([]Candidate, n)
	for i := range cands {
		cands[i] = Candidate{
			// Coarse values so that ties happen often.
			Load:      float64(r.IntN(21)) / 20,
			FreeSlots: r.IntN(4),
			RTT:       time.Duration(r.IntN(5)) * 50 * time.Millisecond,
			Failures:  r.IntN(3) * r.IntN(2),
			Attached:  r.IntN(6) == 0,
			Tiebreak:  uint64(r.IntN(4)),
		}
	}
	return cands
}

func TestChooseProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 20000 {
		p := DefaultParams()
		p.K = 1 + r.IntN(6)
		cands := randomCandidates(r, r.IntN(40))
		got := Choose(p, cands, nil)

		attached := 0
		for _, c := range cands {
			if c.Attached {
				attached++
			}
		}
		if len(got) > max(p.K-attached, 0) {
			t.Fatalf("iter %d: chose %d with K=%d and %d attached", iter, len(got), p.K, attached)
		}
		seen := map[int]bool{}
		for _, i := range got {
			c := cands[i]
			if c.Attached || c.FreeSlots <= 0 || c.Load >= p.MaxLoad {
				t.Fatalf("iter %d: chose ineligible %+v", iter, c)
			}
			if seen[i] {
				t.Fatalf("iter %d: chose %d twice", iter, i)
			}
			seen[i] = true
		}
		if want := reference(p, cands); !slices.Equal(got, want) {
			t.Fatalf("iter %d: Choose = %v, reference = %v", iter, got, want)
		}
		if again := Choose(p, cands, nil); !slices.Equal(got, again) {
			t.Fatalf("iter %d: not deterministic: %v then %v", iter, got, again)
		}
	}
}

func TestChooseNoAlloc(t *testing.T) {
	cands := randomCandidates(rand.New(rand.NewPCG(3, 4)), 200)
	dst := make([]int, 0, 8)
	p := DefaultParams()
	if n := testing.AllocsPerRun(100, func() { dst = Choose(p, cands, dst[:0]) }); n != 0 {
		t.Fatalf("Choose allocates %v times per run", n)
	}
}

var sink []int

func BenchmarkChoose(b *testing.B) {
	for _, n := range []int{10, 200} {
		b.Run(map[int]string{10: "10", 200: "200"}[n], func(b *testing.B) {
			cands := randomCandidates(rand.New(rand.NewPCG(5, 6)), n)
			for i := range cands {
				cands[i].Attached = false
				cands[i].FreeSlots = 1
			}
			dst := make([]int, 0, 8)
			p := DefaultParams()
			b.ReportAllocs()
			for b.Loop() {
				dst = Choose(p, cands, dst[:0])
			}
			sink = dst
		})
	}
}
