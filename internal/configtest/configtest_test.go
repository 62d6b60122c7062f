package configtest

import (
	"fmt"
	"testing"
)

type logger struct{}

type config struct {
	Rate   int
	Logger *logger
}

// recorder is a testing.TB that remembers failures instead of failing.
type recorder struct {
	testing.TB
	failed []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failed = append(r.failed, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...) }

func TestZeroMeansDefault(t *testing.T) {
	cases := []struct {
		name         string
		filled, def  config
		wantFailures int
	}{
		{"agree, logger set", config{Rate: 5, Logger: &logger{}}, config{Rate: 5}, 0},
		{"a field differs", config{Rate: 4, Logger: &logger{}}, config{Rate: 5}, 1},
		{"logger left nil", config{Rate: 5}, config{Rate: 5}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &recorder{TB: t}
			ZeroMeansDefault(r, c.filled, c.def)
			if len(r.failed) != c.wantFailures {
				t.Errorf("failures %q, want %d", r.failed, c.wantFailures)
			}
		})
	}
}
