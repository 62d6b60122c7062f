package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/canopy-p2p/canopy/api"
)

// distUnits are the systemd units in dist/, with whether each is a user
// unit.
var distUnits = []struct {
	file string
	user bool
}{
	{"canopy.service", true},
	{"canopy-supernode.service", false},
}

// unitValues returns the values of key in a unit file, in order.
func unitValues(text, key string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+"="); ok {
			out = append(out, v)
		}
	}
	return out
}

// TestDistUnits: each unit's ExecStart is canopy up with flags this binary
// takes (canopy config show accepts them, and so the settings are valid),
// systemd finds nothing to complain about in either unit, and the system
// unit is hardened (systemd-analyze security rates its exposure below 2 of
// 10).
func TestDistUnits(t *testing.T) {
	bin := canopyBin(t)
	dir := t.TempDir()
	for _, u := range distUnits {
		t.Run(u.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "..", "dist", u.file))
			if err != nil {
				t.Fatal(err)
			}
			text := string(b)
			exec1 := unitValues(text, "ExecStart")
			if len(exec1) != 1 {
				t.Fatalf("ExecStart lines: %q", exec1)
			}
			args := strings.Fields(exec1[0])
			if filepath.Base(args[0]) != "canopy" || len(args) < 2 || args[1] != "up" {
				t.Fatalf("ExecStart %q is not canopy up", exec1[0])
			}
			// The unit's environment, with the config directory moved into
			// the test's own.
			env := cleanEnv("HOME="+dir, "XDG_CONFIG_HOME="+dir)
			for _, e := range unitValues(text, "Environment") {
				if !strings.HasPrefix(e, "XDG_CONFIG_HOME=") {
					env = append(env, e)
				}
			}
			r := runBin(t, env, append([]string{"config", "show", "--json"}, args[2:]...)...)
			var c api.Settings
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &c) != nil {
				t.Fatalf("config show %v: %d %q", args[2:], r.code, r.stderr)
			}
			if !strings.Contains(text, "RestartPreventExitStatus="+strconv.Itoa(exitUsage)) {
				t.Error("a wrong setting would be restarted for ever")
			}

			sa, err := exec.LookPath("systemd-analyze")
			if err != nil {
				t.Skip("systemd-analyze is not installed")
			}
			unit := filepath.Join(t.TempDir(), u.file)
			if err := os.WriteFile(unit, []byte(strings.ReplaceAll(text, args[0], bin)), 0o644); err != nil {
				t.Fatal(err)
			}
			verify := exec.Command(sa, "verify", unit)
			if u.user {
				rt := t.TempDir()
				os.Chmod(rt, 0o700)
				verify = exec.Command(sa, "--user", "verify", unit)
				verify.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+rt)
			}
			if out, err := verify.CombinedOutput(); err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}
			if u.user {
				return
			}
			out, err := exec.Command(sa, "security", "--offline=yes", unit).CombinedOutput()
			m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
			if err != nil || m == nil {
				t.Fatalf("systemd-analyze security: %v\n%s", err, out)
			}
			if level, _ := strconv.ParseFloat(string(m[1]), 64); level >= 2 {
				t.Errorf("exposure %.1f of 10, want below 2\n%s", level, out)
			}
		})
	}
}
