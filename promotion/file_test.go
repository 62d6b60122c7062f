package promotion

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultParamsValid(t *testing.T) {
	if err := DefaultParams().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateRejects(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Params)
		want   string
	}{
		{"negative uptime", func(p *Params) { p.MinUptime = -1 }, "min_uptime"},
		{"zero back-off", func(p *Params) { p.BackoffBase = 0 }, "backoff_base"},
		{"cap below base", func(p *Params) { p.BackoffMax = time.Minute }, "backoff_max"},
		{"headroom above 1", func(p *Params) { p.MinCPUHeadroom = 1.5 }, "min_cpu_headroom"},
		{"NaN headroom", func(p *Params) { p.MinMemHeadroom = nan() }, "min_mem_headroom"},
		{"keep above min", func(p *Params) { p.KeepCPUHeadroom = 0.6 }, "keep_cpu_headroom"},
		{"keep fds above min", func(p *Params) { p.KeepFreeFDs = 1000 }, "min_free_fds"},
		{"surplus above need", func(p *Params) { p.SurplusThreshold = 0.95 }, "surplus_threshold"},
		{"surplus too close", func(p *Params) { p.SurplusThreshold = 0.7 }, "too close"},
		{"no minimum ring", func(p *Params) { p.MinSupernodes = 0 }, "min_supernodes"},
		{"zero target", func(p *Params) { p.TargetLeavesPerSupernode = 0 }, "target_leaves"},
		{"chance zero", func(p *Params) { p.PromoteChance = 0 }, "promote_chance"},
		{"emergency slower than normal", func(p *Params) { p.EmergencyMinUptime = 2 * time.Hour }, "emergency_min_uptime"},
		{"emergency dwell above dwell", func(p *Params) { p.EmergencyDwell = time.Hour }, "emergency_dwell"},
		{"negative bandwidth", func(p *Params) { p.MinUpBandwidth = -1 }, "min_up_bandwidth"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultParams()
			tc.mutate(&p)
			err := p.Validate()
			if !errors.Is(err, ErrInvalidParams) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an ErrInvalidParams naming %s", err, tc.want)
			}
		})
	}
}

func nan() float64 { z := 0.0; return z / z }

func TestSaveLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.toml")
	want := DefaultParams()
	want.MinUptime = 90 * time.Minute
	want.NeedThreshold = 0.85
	want.MinFreeFDs = 600
	f := File{Source: "sim sweep churn-gnutella seeds 1-8", Params: want}
	if err := Save(path, f); err != nil {
		t.Fatal(err)
	}
	got, gotFile, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || gotFile.Params != want {
		t.Fatalf("round trip changed the params:\n got %+v\nwant %+v", got, want)
	}
	if gotFile.Version != FileVersion || gotFile.Source != f.Source {
		t.Fatalf("file header %d %q", gotFile.Version, gotFile.Source)
	}
	// Save overwrites in place and leaves no temporary file behind.
	if err := Save(path, f); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the params file", len(entries))
	}
}

func TestSaveRefusesInvalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.toml")
	p := DefaultParams()
	p.PromoteChance = 2
	if err := Save(path, File{Params: p}); !errors.Is(err, ErrInvalidParams) {
		t.Fatalf("Save = %v, want ErrInvalidParams", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("Save wrote an invalid file")
	}
	if err := Save(path, File{Version: 9, Params: DefaultParams()}); !errors.Is(err, ErrVersion) {
		t.Fatalf("Save = %v, want ErrVersion", err)
	}
}

func TestParse(t *testing.T) {
	cases := []struct {
		name  string
		file  string
		err   error
		check func(*testing.T, File)
	}{
		{"partial file keeps defaults", `
version = 1
source = "hand-tuned"
[params]
min_uptime = "45m"
min_up_bandwidth = 65536
`, nil, func(t *testing.T, f File) {
			want := DefaultParams()
			want.MinUptime = 45 * time.Minute
			want.MinUpBandwidth = 65536
			if f.Params != want || f.Source != "hand-tuned" {
				t.Fatalf("got %+v", f)
			}
		}},
		{"duration as nanoseconds", "version = 1\n[params]\nmin_dwell = 3600000000000\n", nil, func(t *testing.T, f File) {
			if f.Params.MinDwell != time.Hour {
				t.Fatalf("min_dwell %v", f.Params.MinDwell)
			}
		}},
		{"unknown key", "version = 1\n[params]\nmin_uptim = \"1h\"\n", ErrUnknownKey, nil},
		{"unknown table", "version = 1\n[choice]\nk = 3\n", ErrUnknownKey, nil},
		{"no version", "[params]\nmin_uptime = \"1h\"\n", ErrVersion, nil},
		{"future version", "version = 2\n", ErrVersion, nil},
		{"out of range", "version = 1\n[params]\nneed_threshold = 0.3\n", ErrInvalidParams, nil},
		{"bad duration", "version = 1\n[params]\nmin_uptime = \"soon\"\n", ErrSyntax, nil},
		{"wrong type", "version = 1\n[params]\nmin_free_fds = \"many\"\n", ErrSyntax, nil},
		{"not toml", "version = = 1", ErrSyntax, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse([]byte(tc.file))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Parse = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, f)
		})
	}
}

func TestLoadErrorsNamePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(path, []byte("version = 1\n[params]\nbogus = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := Load(path)
	if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "params.bogus") {
		t.Fatalf("Load = %v", err)
	}
	if _, _, err := Load(filepath.Join(t.TempDir(), "missing.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of a missing file = %v", err)
	}
}
