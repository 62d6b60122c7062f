package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/node"
)

// tablePaths lists every command of the table with its path ("sim
// sweep").
func tablePaths() []*commandPath {
	var out []*commandPath
	var walk func(prefix string, c *command)
	walk = func(prefix string, c *command) {
		p := &commandPath{cmd: c, name: strings.TrimSpace(prefix + " " + c.name)}
		out = append(out, p)
		for _, s := range c.subs {
			walk(p.name, s)
		}
	}
	for _, c := range commandTable() {
		walk("", c)
	}
	return out
}

// noJSON are the commands that print no data, and why.
var noJSON = map[string]string{
	"up":         "runs a node; it writes only its log, on stderr",
	"completion": "prints a shell script",
}

// TestEveryCommandParsesItsFlags: every command of the table parses its
// flags with parseFlags (so that -h, usage errors and completion work for
// it), and every command that prints data takes --json.
func TestEveryCommandParsesItsFlags(t *testing.T) {
	for _, p := range tablePaths() {
		if p.cmd.run == nil {
			if len(p.cmd.subs) == 0 {
				t.Errorf("canopy %s: neither runs nor has subcommands", p.name)
			}
			continue
		}
		fs := describe(p.cmd)
		if fs == nil {
			t.Errorf("canopy %s: does not parse its flags with parseFlags", p.name)
			continue
		}
		if _, ok := noJSON[p.name]; !ok && fs.Lookup("json") == nil {
			t.Errorf("canopy %s prints data but has no --json", p.name)
		}
	}
}

// result is how the binary ended.
type result struct {
	stdout, stderr string
	code           int
}

func runBin(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(canopyBin(t), args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("canopy %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// TestConventions drives the binary: help on every command exits 0 and
// prints the usage with every flag to stdout; a wrong command line exits
// 2; a node that is not running exits 3; other failures exit 1.
func TestConventions(t *testing.T) {
	dir := t.TempDir()
	env := cleanEnv("HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))

	t.Run("help", func(t *testing.T) {
		for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
			r := runBin(t, env, args...)
			if r.code != exitOK || r.stderr != "" || !strings.HasPrefix(r.stdout, "canopy — ") {
				t.Errorf("canopy %v: exit %d, stdout %.60q, stderr %q", args, r.code, r.stdout, r.stderr)
			}
			for _, c := range commandTable() {
				if !strings.Contains(r.stdout, "\n  "+c.name+" ") {
					t.Errorf("canopy %v does not list %s", args, c.name)
				}
			}
		}
		for _, p := range tablePaths() {
			words := strings.Fields(p.name)
			for _, args := range [][]string{append(words, "-h"), append(words, "--help"), append([]string{"help"}, words...)} {
				r := runBin(t, env, args...)
				if r.code != exitOK || r.stderr != "" || !strings.HasPrefix(r.stdout, "Usage: canopy "+p.name) {
					t.Errorf("canopy %v: exit %d, stdout %.80q, stderr %q", args, r.code, r.stdout, r.stderr)
					continue
				}
				if fs := describe(p.cmd); fs != nil {
					fs.VisitAll(func(f *flag.Flag) {
						if !strings.Contains(r.stdout, "  --"+f.Name) {
							t.Errorf("canopy %v does not show --%s", args, f.Name)
						}
					})
				}
			}
		}
	})

	t.Run("usage errors exit 2", func(t *testing.T) {
		cases := [][]string{
			{},
			{"frobnicate"},
			{"config"},
			{"config", "frobnicate"},
			{"search"},
			{"search", "--json", "--ndjson", "x"},
			{"get"},
			{"get", "a", "b"},
			{"status", "extra"},
			{"version", "extra"},
			{"completion"},
			{"completion", "tcsh"},
			{"up", "--attach", "0"},
			{"up", "--supernode", "sometimes"},
			{"up", "--listen", "nowhere"},
			{"up", "somedir"},
			{"config", "show", "--upload", "fast"},
			{"sim", "sweep"},
		}
		for _, p := range tablePaths() {
			if p.cmd.run != nil {
				cases = append(cases, append(strings.Fields(p.name), "--no-such-flag"))
			}
		}
		for _, args := range cases {
			r := runBin(t, env, args...)
			if r.code != exitUsage || strings.TrimSpace(r.stderr) == "" || r.stdout != "" {
				t.Errorf("canopy %v: exit %d, stdout %q, stderr %q: want 2 and a message on stderr", args, r.code, r.stdout, r.stderr)
			}
		}
	})

	t.Run("no node exits 3", func(t *testing.T) {
		gone := freePort(t) // closed: connecting is refused
		for _, args := range [][]string{
			{"status", "--api", gone},
			{"status", "--json", "--api", gone},
			{"search", "--api", gone, "x"},
			{"get", "--api", gone, strings.Repeat("0", 64)},
			{"natcheck", "--api", gone},
		} {
			r := runBin(t, env, args...)
			if r.code != exitNoNode || !strings.Contains(r.stderr, "no Canopy node answers") || r.stdout != "" {
				t.Errorf("canopy %v: exit %d, stdout %q, stderr %q: want 3", args, r.code, r.stdout, r.stderr)
			}
		}
		// The address from the environment, as canopy up's.
		r := runBin(t, append(env, "CANOPY_API="+gone), "status")
		if r.code != exitNoNode || !strings.Contains(r.stderr, gone) {
			t.Errorf("status with $CANOPY_API=%s: exit %d, %q", gone, r.code, r.stderr)
		}
	})

	t.Run("failures exit 1", func(t *testing.T) {
		for _, args := range [][]string{
			{"config", "show", "--config", filepath.Join(dir, "missing.toml")},
			{"status", "--config", filepath.Join(dir, "missing.toml")},
		} {
			r := runBin(t, env, args...)
			if r.code != exitFailure || !strings.Contains(r.stderr, "missing.toml") {
				t.Errorf("canopy %v: exit %d, stderr %q: want 1 naming the file", args, r.code, r.stderr)
			}
		}
	})

	t.Run("json", func(t *testing.T) {
		r := runBin(t, env, "version", "--json")
		var v struct{ Version, Software string }
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil || v.Version != node.Version || v.Software != node.Software {
			t.Errorf("version --json: %d %q", r.code, r.stdout)
		}
		for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}} {
			if r := runBin(t, env, args...); r.code != 0 || r.stdout != "canopy "+node.Version+"\n" {
				t.Errorf("canopy %v: %d %q", args, r.code, r.stdout)
			}
		}
		r = runBin(t, env, "config", "show", "--json")
		var c api.Settings
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &c) != nil || len(c.Settings) != len(upSettings()) || c.FileFound ||
			c.File != filepath.Join(dir, "config", "canopy", "config.toml") {
			t.Errorf("config show --json: %d %q %q", r.code, r.stdout, r.stderr)
		}
	})
}
