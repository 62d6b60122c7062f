package node

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/internal/quarantine"
	"github.com/canopy-p2p/canopy/promotion"
)

// t0 is an arbitrary wall-clock origin for the history tests.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// mustLoad loads the history at path and fails the test on any error.
func mustLoad(t *testing.T, path string, now time.Time) *roleHistory {
	t.Helper()
	h, err := loadHistory(path, now)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// noErr fails the test on err.
func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestHistoryAvgUptime(t *testing.T) {
	h := time.Hour
	cases := []struct {
		name     string
		sessions []time.Duration // lengths of cleanly closed sessions, in order
		want     time.Duration
	}{
		{"no sessions", nil, 0},
		{"one", []time.Duration{2 * h}, 2 * h},
		{"mean", []time.Duration{h, 2 * h, 6 * h}, 3 * h},
		{"zero-length session counts", []time.Duration{0, 4 * h}, 2 * h},
		// 25 sessions: the first five (100 h each) fall out of the window.
		{"only the last 20", append(repeat(100*h, 5), repeat(h, 20)...), h},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), roleHistoryFile)
			now := t0
			for _, l := range c.sessions {
				hist := mustLoad(t, path, now)
				now = now.Add(l)
				noErr(t, hist.Close(now))
				now = now.Add(10 * time.Minute) // downtime does not count
			}
			hist := mustLoad(t, path, now)
			if got := hist.AvgUptime(); got != c.want {
				t.Errorf("AvgUptime = %v, want %v", got, c.want)
			}
			if n := len(hist.Snapshot().Sessions); n != min(len(c.sessions), maxSessions) {
				t.Errorf("kept %d sessions, want %d", n, min(len(c.sessions), maxSessions))
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	s := make([]time.Duration, n)
	for i := range s {
		s[i] = d
	}
	return s
}

func TestHistoryCrashRecovery(t *testing.T) {
	path := filepath.Join(t.TempDir(), roleHistoryFile)
	h := mustLoad(t, path, t0)
	if got := h.Uptime(t0.Add(5 * time.Minute)); got != 5*time.Minute {
		t.Errorf("Uptime = %v, want 5m", got)
	}
	for i := 1; i <= 90; i++ {
		noErr(t, h.Touch(t0.Add(time.Duration(i)*time.Minute)))
	}
	// The process dies here without Close; it restarts two hours later.
	restart := t0.Add(3*time.Hour + 30*time.Minute)
	h = mustLoad(t, path, restart)
	snap := h.Snapshot()
	want := []roleSession{{Start: t0, End: t0.Add(90 * time.Minute)}}
	if len(snap.Sessions) != 1 || !snap.Sessions[0].Start.Equal(want[0].Start) || !snap.Sessions[0].End.Equal(want[0].End) {
		t.Fatalf("sessions = %v, want %v", snap.Sessions, want)
	}
	if got := h.AvgUptime(); got != 90*time.Minute {
		t.Errorf("AvgUptime = %v, want 1h30m (ends at the last Touch)", got)
	}
	if got := h.Uptime(restart.Add(time.Minute)); got != time.Minute {
		t.Errorf("Uptime of the new session = %v, want 1m", got)
	}

	// A crash before the first Touch leaves a zero-length session: it still
	// counts, as the short session it was.
	h = mustLoad(t, path, restart.Add(time.Hour))
	if got := h.AvgUptime(); got != 45*time.Minute {
		t.Errorf("AvgUptime = %v, want 45m", got)
	}

	// A clean Close records the real end; Close is idempotent and stops Touch.
	now := restart.Add(2 * time.Hour)
	noErr(t, h.Close(now))
	noErr(t, h.Close(now.Add(time.Hour)))
	noErr(t, h.Touch(now.Add(2*time.Hour)))
	if got := h.Uptime(now); got != 0 {
		t.Errorf("Uptime after Close = %v, want 0", got)
	}
	h = mustLoad(t, path, now.Add(3*time.Hour))
	if got := h.AvgUptime(); got != (90*time.Minute+0+time.Hour)/3 {
		t.Errorf("AvgUptime = %v, want 50m", got)
	}
}

// roleStep is one call of Switched in a test, at offset at from t0.
type roleStep struct {
	at       time.Duration
	to       promotion.Role
	demotion bool
	consent  bool
}

func TestHistoryDemotions(t *testing.T) {
	p := promotion.DefaultParams()
	leaf, super := promotion.RoleLeaf, promotion.RoleSupernode
	h := time.Hour
	never := time.Duration(-1)
	cases := []struct {
		name       string
		steps      []roleStep
		want       int
		lastSwitch time.Duration // offset of the last role change; never if none
	}{
		{"none", nil, 0, never},
		{"start as leaf is not a switch", []roleStep{{0, leaf, false, false}}, 0, never},
		{"one demotion", []roleStep{{h, super, false, false}, {2 * h, leaf, true, false}}, 1, 2 * h},
		{"demotions in a row", []roleStep{
			{1 * h, super, false, false}, {2 * h, leaf, true, false},
			{5 * h, super, false, false}, {6 * h, leaf, true, false},
			{9 * h, super, false, false}, {10 * h, leaf, true, false},
		}, 3, 10 * h},
		{"forced by consent not counted", []roleStep{
			{1 * h, super, false, false}, {2 * h, leaf, true, false},
			{5 * h, super, false, false}, {6 * h, leaf, true, true},
		}, 1, 6 * h},
		{"a promotion does not reset", []roleStep{
			{1 * h, super, false, false}, {2 * h, leaf, true, false},
			{5 * h, super, false, false},
		}, 1, 5 * h},
		{"long stint resets, then counts its own demotion", []roleStep{
			{1 * h, super, false, false}, {2 * h, leaf, true, false},
			{5 * h, super, false, false}, {6 * h, leaf, true, false},
			{9 * h, super, false, false}, {9*h + p.BackoffMax, leaf, true, false},
		}, 1, 9*h + p.BackoffMax},
		{"stint just short of BackoffMax does not reset", []roleStep{
			{1 * h, super, false, false}, {2 * h, leaf, true, false},
			{5 * h, super, false, false}, {5*h + p.BackoffMax - time.Second, leaf, true, false},
		}, 2, 5*h + p.BackoffMax - time.Second},
		{"long stint ended by consent leaves none", []roleStep{
			{1 * h, super, false, false}, {2 * h, leaf, true, false},
			{5 * h, super, false, false}, {5*h + p.BackoffMax, leaf, true, true},
		}, 0, 5*h + p.BackoffMax},
		{"same role again is a no-op", []roleStep{
			{1 * h, super, false, false}, {2 * h, leaf, true, false}, {3 * h, leaf, true, false},
		}, 1, 2 * h},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), roleHistoryFile)
			hist := mustLoad(t, path, t0)
			for _, s := range c.steps {
				noErr(t, hist.Switched(t0.Add(s.at), s.to, s.demotion, s.consent, p.BackoffMax))
			}
			now := t0.Add(20 * 24 * time.Hour)
			wantSince := time.Duration(math.MaxInt64)
			if c.lastSwitch != never {
				wantSince = now.Sub(t0.Add(c.lastSwitch))
			}
			check := func(when string, hist *roleHistory) {
				t.Helper()
				if got := hist.Snapshot().Demotions; got != c.want {
					t.Errorf("%s: Demotions = %d, want %d", when, got, c.want)
				}
				if got := hist.SinceSwitch(now); got != wantSince {
					t.Errorf("%s: SinceSwitch = %v, want %v", when, got, wantSince)
				}
			}
			check("running", hist)
			// The count and the last switch survive a clean restart.
			noErr(t, hist.Close(t0.Add(19*24*time.Hour)))
			check("after restart", mustLoad(t, path, t0.Add(19*24*time.Hour+time.Minute)))
		})
	}
}

func TestHistoryRestartEndsStint(t *testing.T) {
	p := promotion.DefaultParams()
	cases := []struct {
		name  string
		stint time.Duration // supernode time before the crash
		want  int
	}{
		{"short stint keeps the count", time.Hour, 2},
		{"long stint resets the count", p.BackoffMax, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), roleHistoryFile)
			h := mustLoad(t, path, t0)
			noErr(t, h.Switched(t0, promotion.RoleLeaf, false, false, p.BackoffMax))
			// Two demotions, then a promotion and a crash while a supernode.
			for i := range 2 {
				at := t0.Add(time.Duration(2*i+1) * time.Hour)
				noErr(t, h.Switched(at, promotion.RoleSupernode, false, false, p.BackoffMax))
				noErr(t, h.Switched(at.Add(time.Hour), promotion.RoleLeaf, true, false, p.BackoffMax))
			}
			promoted := t0.Add(10 * time.Hour)
			noErr(t, h.Switched(promoted, promotion.RoleSupernode, false, false, p.BackoffMax))
			lastSeen := promoted.Add(c.stint)
			noErr(t, h.Touch(lastSeen))

			restart := lastSeen.Add(time.Hour)
			h = mustLoad(t, path, restart)
			if got := h.Snapshot().Role; got != "supernode" {
				t.Fatalf("recorded role = %q, want supernode until the role loop starts", got)
			}
			noErr(t, h.Switched(restart, promotion.RoleLeaf, false, false, p.BackoffMax))
			snap := h.Snapshot()
			if snap.Demotions != c.want || snap.Role != "leaf" {
				t.Errorf("Demotions %d role %q, want %d leaf", snap.Demotions, snap.Role, c.want)
			}
			if !snap.LastSwitch.Equal(lastSeen) {
				t.Errorf("LastSwitch = %v, want the crash (last seen %v)", snap.LastSwitch, lastSeen)
			}
		})
	}
}

func TestHistorySaveLeavesOnlyTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, roleHistoryFile)
	h := mustLoad(t, path, t0)
	for i := range 50 {
		noErr(t, h.Touch(t0.Add(time.Duration(i)*time.Minute)))
	}
	noErr(t, h.Close(t0.Add(time.Hour)))
	entries, err := os.ReadDir(dir)
	noErr(t, err)
	if len(entries) != 1 || entries[0].Name() != roleHistoryFile {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only %s", names, roleHistoryFile)
	}
	fi, err := os.Stat(path)
	noErr(t, err)
	if fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("mode %v, want private", fi.Mode().Perm())
	}

	// A failed save reports the error and leaves the old file intact.
	h = mustLoad(t, path, t0.Add(2*time.Hour))
	before, err := os.ReadFile(path)
	noErr(t, err)
	h.path = filepath.Join(dir, "missing", roleHistoryFile)
	if err := h.Touch(t0.Add(3 * time.Hour)); err == nil {
		t.Error("save into a missing directory did not fail")
	}
	after, err := os.ReadFile(path)
	noErr(t, err)
	if !bytes.Equal(before, after) {
		t.Error("failed save changed the file")
	}
}

func TestHistoryBadFile(t *testing.T) {
	valid := `{"version":1,"sessions":[{"start":"2025-01-01T00:00:00Z","end":"2025-01-01T05:00:00Z"}],"demotions":2}`
	cases := []struct {
		name    string
		content []byte
		err     error // nil: the file loads
	}{
		{"valid", []byte(valid), nil},
		{"unknown fields ignored", []byte(`{"version":1,"future":true}`), nil},
		{"empty file", nil, errHistoryCorrupt},
		{"not JSON", []byte("role=supernode\n"), errHistoryCorrupt},
		{"truncated", []byte(valid[:40]), errHistoryCorrupt},
		{"wrong type", []byte(`{"version":1,"demotions":"many"}`), errHistoryCorrupt},
		{"bad time", []byte(`{"version":1,"last_switch":"yesterday"}`), errHistoryCorrupt},
		{"no version", []byte(`{"demotions":1}`), errHistoryCorrupt},
		{"future version", []byte(`{"version":2}`), errHistoryCorrupt},
		{"unknown role", []byte(`{"version":1,"role":"overlord"}`), errHistoryCorrupt},
		{"negative demotions", []byte(`{"version":1,"demotions":-1}`), errHistoryCorrupt},
		{"long unknown role", []byte(`{"version":1,"role":"` + strings.Repeat("x", 60000) + `"}`), errHistoryCorrupt},
		{"too large", append([]byte(`{"version":1,"role":"leaf"}`), bytes.Repeat([]byte(" "), maxRoleHistorySize)...), errHistoryTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, roleHistoryFile)
			noErr(t, os.WriteFile(path, c.content, 0o600))
			h, err := loadHistory(path, t0)
			if h == nil {
				t.Fatal("loadHistory returned no history")
			}
			if c.err == nil {
				noErr(t, err)
				if copies, err := quarantine.List(path); err != nil || len(copies) != 0 {
					t.Errorf("a good file was moved aside: %v %v", copies, err)
				}
				return
			}
			copies, lerr := quarantine.List(path)
			noErr(t, lerr)
			if len(copies) != 1 {
				t.Fatalf("%d copies moved aside, want 1", len(copies))
			}
			if !errors.Is(err, c.err) || !strings.Contains(err.Error(), "moved aside to "+copies[0]) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %q, want %v on one line naming where the file went", err, c.err)
			}
			if len(err.Error()) > 1024 {
				t.Fatalf("the error is %d bytes long; it is logged, and must stay short", len(err.Error()))
			}
			if h.AvgUptime() != 0 || h.SinceSwitch(t0) != math.MaxInt64 || h.Snapshot().Demotions != 0 {
				t.Errorf("history not empty: %+v", h.Snapshot())
			}
			bad, err := os.ReadFile(copies[0])
			noErr(t, err)
			if !bytes.Equal(bad, c.content) {
				t.Error("the copy moved aside does not hold the original content")
			}
			// The node carries on with a fresh, loadable file.
			mustLoad(t, path, t0.Add(time.Hour))
		})
	}
}

func TestHistoryValidFileKeepsOnlyRecentSessions(t *testing.T) {
	// A hand-edited file with more than maxSessions sessions loads; the
	// oldest are dropped.
	var b strings.Builder
	b.WriteString(`{"version":1,"sessions":[`)
	for i := range maxSessions + 5 {
		if i > 0 {
			b.WriteString(",")
		}
		start := t0.Add(time.Duration(i) * 24 * time.Hour)
		length := time.Hour
		if i < 5 {
			length = 50 * time.Hour
		}
		b.WriteString(`{"start":"` + start.Format(time.RFC3339) + `","end":"` + start.Add(length).Format(time.RFC3339) + `"}`)
	}
	b.WriteString(`]}`)
	path := filepath.Join(t.TempDir(), roleHistoryFile)
	noErr(t, os.WriteFile(path, []byte(b.String()), 0o600))
	h := mustLoad(t, path, t0.Add(100*24*time.Hour))
	if n := len(h.Snapshot().Sessions); n != maxSessions {
		t.Errorf("kept %d sessions, want %d", n, maxSessions)
	}
	if got := h.AvgUptime(); got != time.Hour {
		t.Errorf("AvgUptime = %v, want 1h", got)
	}
}

func TestHistoryConcurrentUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), roleHistoryFile)
	h := mustLoad(t, path, t0)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 20 {
				now := t0.Add(time.Duration(g*100+i) * time.Second)
				switch g {
				case 0:
					_ = h.Touch(now)
				case 1:
					_ = h.Switched(now, promotion.Role(i%2), i%2 == 0, false, time.Hour)
				default:
					_ = h.Snapshot()
					_ = h.AvgUptime()
					_ = h.SinceSwitch(now)
					_ = h.Uptime(now)
				}
			}
		})
	}
	wg.Wait()
	noErr(t, h.Close(t0.Add(time.Hour)))
	mustLoad(t, path, t0.Add(2*time.Hour))
}
