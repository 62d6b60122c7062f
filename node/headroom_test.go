package node

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// sampleProcStat is /proc/stat from a two-core Linux 6.x machine.
const sampleProcStat = `cpu  911651 0 149227 2328164 10239 0 6039 54020 0 0
cpu0 452715 0 72763 1171798 3413 0 1709 27314 0 0
cpu1 458936 0 76463 1156366 6825 0 4330 26706 0 0
intr 123456789 9 0 0 0 0 0 0 0 0 0 0 0
ctxt 987654321
btime 1700000000
processes 123456
procs_running 2
procs_blocked 0
softirq 4567890 1 2 3 4 5 6 7 8 9 10
`

// sampleMeminfo is the head of /proc/meminfo from the same machine.
const sampleMeminfo = `MemTotal:       24684092 kB
MemFree:        22959064 kB
MemAvailable:   12342046 kB
Buffers:           35816 kB
Cached:          1384236 kB
HugePages_Total:       0
`

func TestHeadroomParseProcStat(t *testing.T) {
	cases := []struct {
		name      string
		in        string
		idle, tot uint64
		err       string // substring of the error; empty for success
	}{
		{"linux 6", sampleProcStat, 2328164 + 10239, 911651 + 149227 + 2328164 + 10239 + 6039 + 54020, ""},
		{"guest time not counted twice", "cpu 10 20 30 40 50 60 70 80 1000 2000\n", 90, 360, ""},
		{"kernel 2.4: four counters", "cpu 1 2 3 4\n", 4, 10, ""},
		{"seven counters", "cpu 1 2 3 4 5 6 7\n", 9, 28, ""},
		{"aggregate line not first", "page 5 6\ncpu 1 1 1 1\n", 1, 4, ""},
		{"no trailing newline", "cpu 1 1 1 1", 1, 4, ""},
		{"empty", "", 0, 0, "no aggregate cpu line"},
		{"per-cpu lines only", "cpu0 1 2 3 4\ncpu1 1 2 3 4\n", 0, 0, "no aggregate cpu line"},
		{"cpu as a prefix", "cpux 1 2 3 4\n", 0, 0, "no aggregate cpu line"},
		{"too few counters", "cpu 1 2 3\n", 0, 0, "3 counters"},
		{"not a number", "cpu 1 2 x 4\n", 0, 0, "counter 3"},
		{"negative", "cpu 1 -2 3 4\n", 0, 0, "counter 2"},
		{"out of range", "cpu 1 2 3 99999999999999999999\n", 0, 0, "counter 4"},
		{"sum overflows", "cpu 18446744073709551615 1 0 0\n", 0, 0, "overflow"},
		{"binary garbage", "\x00\xff\xfe cpu", 0, 0, "no aggregate cpu line"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(c.in))
			if c.err != "" {
				if err == nil || !errors.Is(err, errProcStat) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want errProcStat containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.idle != c.idle || got.total != c.tot {
				t.Errorf("got idle %d total %d, want %d %d", got.idle, got.total, c.idle, c.tot)
			}
		})
	}
}

func TestHeadroomParseMeminfo(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want float64
		err  string
	}{
		{"linux 6", sampleMeminfo, 0.5, ""},
		{"no unit", "MemTotal: 100\nMemAvailable: 25\n", 0.25, ""},
		{"order does not matter", "MemAvailable: 75 kB\nMemTotal: 100 kB\n", 0.75, ""},
		{"first of duplicates", "MemTotal: 100 kB\nMemAvailable: 10 kB\nMemAvailable: 90 kB\n", 0.1, ""},
		{"available above total capped", "MemTotal: 100 kB\nMemAvailable: 150 kB\n", 1, ""},
		{"other malformed lines ignored", "junk\nMemTotal: 100 kB\nSwap: x y z\nMemAvailable: 50 kB\n", 0.5, ""},
		{"empty", "", 0, "no MemTotal"},
		{"kernel before 3.14", "MemTotal: 100 kB\nMemFree: 50 kB\n", 0, "no MemAvailable"},
		{"zero total", "MemTotal: 0 kB\nMemAvailable: 0 kB\n", 0, "MemTotal is 0"},
		{"no value", "MemTotal:\nMemAvailable: 5 kB\n", 0, "want a number of kB"},
		{"wrong unit", "MemTotal: 100 MB\nMemAvailable: 5 kB\n", 0, "want a number of kB"},
		{"extra field", "MemTotal: 100 kB x\nMemAvailable: 5 kB\n", 0, "want a number of kB"},
		{"not a number", "MemTotal: 1e9 kB\nMemAvailable: 5 kB\n", 0, "MemTotal"},
		{"negative", "MemTotal: 100 kB\nMemAvailable: -5 kB\n", 0, "MemAvailable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseMeminfo([]byte(c.in))
			if c.err != "" {
				if err == nil || !errors.Is(err, errMeminfo) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want errMeminfo containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

// fakeProc serves canned /proc files to a meter; stat is consumed one entry
// per read.
type fakeProc struct {
	stat    []string
	meminfo string
}

func (p *fakeProc) readFile(name string) ([]byte, error) {
	switch name {
	case "/proc/stat":
		if len(p.stat) == 0 {
			return nil, os.ErrNotExist
		}
		s := p.stat[0]
		p.stat = p.stat[1:]
		return []byte(s), nil
	case "/proc/meminfo":
		if p.meminfo == "" {
			return nil, os.ErrNotExist
		}
		return []byte(p.meminfo), nil
	}
	return nil, os.ErrNotExist
}

func TestHeadroomMeterSample(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the meter measures only on Linux")
	}
	proc := &fakeProc{
		meminfo: "MemTotal: 1000 kB\nMemAvailable: 250 kB\n",
		stat: []string{
			"cpu 100 0 100 800 0 0 0 0 0 0\n",  // baseline
			"cpu 150 0 150 1500 100 0 0 0 0 0", // +900 total, +800 idle
			"cpu 150 0 150 1500 100 0 0 0 0 0", // no tick: keep previous
			"cpu 10 0 10 10 0 0 0 0 0 0",       // reset/wrap: keep previous
			"garbage",                          // unparsable: keep previous, report
			"cpu 20 0 20 50 0 0 0 0 0 0",       // +60 total, +40 idle since the reset
			"cpu 40 0 40 45 0 0 0 0 0 0",       // idle went backwards: keep previous
		},
	}
	m := newHeadroomMeter(proc.readFile)
	soft, open := uint64(1024), 24
	m.fdLimit = func() (uint64, uint64, error) { return soft, 4096, nil }
	m.openFDs = func(limit int) (int, error) { return min(open, limit), nil }

	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		name  string
		cpu   float64
		known bool
		err   bool
	}{
		{"first sample has no CPU rate", 0, false, false},
		{"second sample", 800.0 / 900, true, false},
		{"no tick in between", 800.0 / 900, true, false},
		{"counters reset", 800.0 / 900, true, false},
		{"unparsable stat", 800.0 / 900, false, true},
		{"after the reset", 40.0 / 60, true, false},
		{"idle backwards", 40.0 / 60, true, false},
		{"stat unreadable", 40.0 / 60, false, true},
	}
	for i, s := range steps {
		now := base.Add(time.Duration(i) * time.Minute)
		h := m.Sample(now)
		if h.CPU != s.cpu || h.Known != s.known || (h.Err != nil) != s.err || !h.At.Equal(now) {
			t.Errorf("%s: got CPU %v known %v err %v at %v; want CPU %v known %v err %v",
				s.name, h.CPU, h.Known, h.Err, h.At, s.cpu, s.known, s.err)
		}
		if h.Mem != 0.25 || h.FreeFDs != 1000 {
			t.Errorf("%s: got Mem %v FreeFDs %d, want 0.25 1000", s.name, h.Mem, h.FreeFDs)
		}
	}

	// Descriptors: more open than the soft limit allows reads as none free,
	// and a failing measurement makes the sample unknown.
	proc.stat = []string{"cpu 100 0 100 900 0 0 0 0 0 0"}
	open = 5000
	if h := m.Sample(base); h.FreeFDs != 0 || !h.Known {
		t.Errorf("descriptors over the limit: got FreeFDs %d known %v, want 0 true", h.FreeFDs, h.Known)
	}
	m.fdLimit = func() (uint64, uint64, error) { return 0, 0, errors.New("no rlimit") }
	proc.stat = []string{"cpu 100 0 100 1000 0 0 0 0 0 0"}
	if h := m.Sample(base); h.Known || h.Err == nil || !strings.Contains(h.Err.Error(), "RLIMIT_NOFILE") {
		t.Errorf("rlimit failing: got known %v err %v", h.Known, h.Err)
	}
	m.fdLimit = func() (uint64, uint64, error) { return soft, 4096, nil }
	proc.meminfo = "MemTotal: 0 kB\nMemAvailable: 0 kB\n"
	proc.stat = []string{"cpu 100 0 100 1100 0 0 0 0 0 0"}
	if h := m.Sample(base); h.Known || !errors.Is(h.Err, errMeminfo) {
		t.Errorf("bad meminfo: got known %v err %v", h.Known, h.Err)
	}
}

func TestHeadroomMeterThisMachine(t *testing.T) {
	m := newHeadroomMeter(nil)
	first := m.Sample(time.Now())
	if runtime.GOOS != "linux" {
		if first.Known || !errors.Is(first.Err, errHeadroomUnsupported) {
			t.Fatalf("got known %v err %v, want unknown and errHeadroomUnsupported", first.Known, first.Err)
		}
		return
	}
	if first.Err != nil || first.Known {
		t.Fatalf("first sample: known %v err %v, want unknown without error", first.Known, first.Err)
	}
	// Whether the second sample is Known depends on a clock tick having
	// passed; its values must be in range either way.
	h := m.Sample(time.Now())
	if h.Err != nil {
		t.Fatal(h.Err)
	}
	if h.CPU < 0 || h.CPU > 1 || h.Mem <= 0 || h.Mem > 1 || h.FreeFDs <= 0 {
		t.Errorf("out of range: %+v", h)
	}
}

func TestHeadroomCountOpenFDs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counted from /proc/self/fd")
	}
	before, err := countOpenFDs(maxFDScan)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
	}
	after, err := countOpenFDs(maxFDScan)
	if err != nil {
		t.Fatal(err)
	}
	if after < before+3 {
		t.Errorf("open descriptors went from %d to %d after opening 3", before, after)
	}
	if n, err := countOpenFDs(2); err != nil || n != 2 {
		t.Errorf("bounded count = %d, %v; want 2", n, err)
	}
}

func TestHeadroomFDLimit(t *testing.T) {
	soft, hard, err := fdLimit()
	if runtime.GOOS != "linux" {
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("err = %v, want ErrUnsupported", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	// Go raised the soft limit to hard-1 at startup unless the kernel
	// refused; either way it cannot exceed the hard limit.
	t.Logf("RLIMIT_NOFILE soft %d hard %d", soft, hard)
	if soft == 0 || soft > hard {
		t.Errorf("soft %d, hard %d", soft, hard)
	}
}

func FuzzHeadroomParseProcStat(f *testing.F) {
	f.Add([]byte(sampleProcStat))
	f.Add([]byte("cpu 1 2 3 4\n"))
	f.Add([]byte("cpu 18446744073709551615 1 0 0\n"))
	f.Add([]byte("cpu0 1 2 3 4\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ct, err := parseProcStat(data)
		if err != nil {
			if !errors.Is(err, errProcStat) {
				t.Fatalf("error %v does not wrap errProcStat", err)
			}
			return
		}
		if ct.idle > ct.total {
			t.Fatalf("idle %d exceeds total %d", ct.idle, ct.total)
		}
	})
}

func FuzzHeadroomParseMeminfo(f *testing.F) {
	f.Add([]byte(sampleMeminfo))
	f.Add([]byte("MemTotal: 100 kB\nMemAvailable: 150 kB\n"))
	f.Add([]byte("MemTotal: 0 kB\nMemAvailable: 0 kB\n"))
	f.Add([]byte("MemTotal:\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parseMeminfo(data)
		if err != nil {
			if !errors.Is(err, errMeminfo) {
				t.Fatalf("error %v does not wrap errMeminfo", err)
			}
			return
		}
		if !(v >= 0 && v <= 1) {
			t.Fatalf("fraction %v out of [0, 1]", v)
		}
	})
}
