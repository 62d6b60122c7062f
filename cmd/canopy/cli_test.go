package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/internal/testwait"
)

// TestCommandLine drives the real binary as a user would: two `canopy up`
// processes (a first supernode configured by its config file, and a leaf
// that joins it), then `status`, `search` and `get` against the
// supernode's API, checking the JSON contract and the exit codes, and
// finally SIGINT for a clean leave.
func TestCommandLine(t *testing.T) {
	bin := canopyBin(t)
	dir := t.TempDir()
	// The default data directory is $XDG_DATA_HOME/canopy: every command
	// runs with XDG_DATA_HOME in the test's directory, and the first node's
	// data directory is that default, so that the commands find its token
	// without --data, as a user's do. Its config file is the default one,
	// $XDG_CONFIG_HOME/canopy/config.toml, so that the commands find its
	// API address without --api.
	xdg := filepath.Join(dir, "xdg")
	xdgConfig := filepath.Join(dir, "config")
	baseEnv := cleanEnv("HOME="+dir, "XDG_DATA_HOME="+xdg, "XDG_CONFIG_HOME="+xdgConfig)
	runEnv := func(env []string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(slices.Clone(baseEnv), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	run := func(args ...string) (string, error) { return runEnv(nil, args...) }
	if out, err := run("version"); err != nil || !strings.HasPrefix(out, "canopy ") {
		t.Fatalf("version: %v %q", err, out)
	}

	share := filepath.Join(dir, "share")
	os.MkdirAll(share, 0o755)
	want := bytes.Repeat([]byte("Canopy command line test data. "), 40000)
	os.WriteFile(filepath.Join(share, "Command Line Test.bin"), want, 0o644)

	ctl1, api1, ctl2, api2 := freePort(t), freePort(t), freePort(t), freePort(t)
	configFile := filepath.Join(xdgConfig, "canopy", "config.toml")
	configText := fmt.Sprintf("# the first node\nversion = 1\nlisten = %q\ngossip = %q\napi = %q\nlog_level = \"warn\"\nportmap = false\n", ctl1, freePort(t), api1)
	os.MkdirAll(filepath.Dir(configFile), 0o755)
	if err := os.WriteFile(configFile, []byte(configText), 0o644); err != nil {
		t.Fatal(err)
	}
	up := func(data, apiAddr string, args ...string) *exec.Cmd {
		name := filepath.Base(data)
		cmd := exec.Command(bin, append([]string{"up"}, args...)...)
		cmd.Env = baseEnv
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				t.Logf("%s output:\n%s", name, logs.String())
			}
		})
		waitAPI(t, apiAddr)
		return cmd
	}
	firstData, secondData := filepath.Join(xdg, "canopy"), filepath.Join(dir, "second")
	first := up(firstData, api1) // everything from the config file
	// The flags win over the file, which this node reads too.
	second := up(secondData, api2, "--data", secondData, "--listen", ctl2, "--gossip", freePort(t), "--api", api2, "--share", share, "--join", ctl1, "--log-level", "warn", "--portmap=false",
		"--up-limit", "4mbit", "--down-limit", "2MB/s")

	// status --json names the roles and the attachment.
	var st api.Status
	testwait.Until(t, 30*time.Second, func() bool {
		out, err := run("status", "--api", api2, "--data", secondData, "--json")
		if err != nil || json.Unmarshal([]byte(out), &st) != nil {
			return false
		}
		return len(st.Supernodes) == 1 && st.Supernodes[0].Files == 1
	}, "the leaf's status never showed its file indexed on one supernode")
	if st.Role != "leaf" || st.SharedFiles != 1 {
		t.Fatalf("leaf status: %+v", st)
	}
	// The bandwidth limits reach the node and show in its status.
	if tr := st.Transfers; tr == nil || tr.UpLimit != 500e3 || tr.DownLimit != 2e6 {
		t.Fatalf("leaf transfers %+v, want limits 500 kB/s up, 2 MB/s down", st.Transfers)
	}
	// No --api and no --data: the address from the config file, the
	// token from the default data directory.
	out, err := run("status", "--json")
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Role != "supernode" || st.Leaves != 2 || len(st.Ring) != 1 || st.Control != ctl1 {
		t.Fatalf("supernode status: %v %+v", err, st)
	}

	// search --json returns the contract's fields; with --limit 1 it
	// returns at the first file, long before its 20 s timeout (the
	// test's deadline is half of that).
	const searchTimeout = "20s"
	deadline, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	search := exec.CommandContext(deadline, bin, "search", "--api", api1, "--json", "--limit", "1", "--timeout", searchTimeout, "command", "line")
	search.Env = baseEnv
	outb, err := search.Output()
	var hits []map[string]any
	if err != nil || json.Unmarshal(outb, &hits) != nil || len(hits) != 1 {
		t.Fatalf("search --limit 1 --timeout %s: %v (deadline: %v) %s", searchTimeout, err, deadline.Err(), outb)
	}
	for _, k := range []string{"id", "name", "size", "sources"} {
		if _, ok := hits[0][k]; !ok {
			t.Fatalf("search hit lacks %q: %v", k, hits[0])
		}
	}
	id := hits[0]["id"].(string)

	// Live: without a limit, the hit is printed while the search still
	// runs; the command is stopped before its timeout, having printed it.
	// --ndjson: a hit line, then the done line with the whole result.
	for _, tc := range []struct {
		args []string
		want string // on the first line that is not the header
	}{
		{[]string{"search", "--api", api1, "--timeout", searchTimeout, "command", "line"}, id},
		{[]string{"search", "--api", api1, "--ndjson", "--timeout", searchTimeout, "command", "line"}, `"event":"hit"`},
	} {
		line, running := firstLine(t, bin, baseEnv, tc.args, 10*time.Second)
		if !strings.Contains(line, tc.want) || !running {
			t.Fatalf("canopy %v: first line %q (want %q), still running %v: want the hit printed while the search runs", tc.args, line, tc.want, running)
		}
	}
	out, err = run("search", "--api", api1, "--ndjson", "--limit", "1", "--timeout", searchTimeout, "command", "line")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var evs []api.SearchEvent
	for _, l := range lines {
		var ev api.SearchEvent
		if json.Unmarshal([]byte(l), &ev) == nil {
			evs = append(evs, ev)
		}
	}
	if err != nil || len(evs) != 2 || len(lines) != 2 || evs[0].Event != "hit" || evs[0].Hit.ID != id || evs[1].Event != "done" || len(evs[1].Result.Hits) != 1 {
		t.Fatalf("search --ndjson --limit 1: %v %s", err, out)
	}

	// get: exit 0 with the verified file, in --out (made by the command
	// when missing) or else the node's downloads directory; non-zero with
	// a message otherwise.
	outDir := filepath.Join(dir, "downloads")
	for _, tc := range []struct{ args []string }{
		{[]string{"get", "--api", api1, "--out", outDir, id}},
		{[]string{"get", "--api", api1, id}},
	} {
		if out, err := run(tc.args...); err != nil || !strings.Contains(out, "verified") {
			t.Fatalf("canopy %v: %v %s", tc.args, err, out)
		}
	}
	for _, d := range []string{outDir, filepath.Join(firstData, "downloads")} {
		if got, err := os.ReadFile(filepath.Join(d, "Command Line Test.bin")); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("downloaded file in %s differs: %v", d, err)
		}
	}

	// The token: from --data, --api-token or $CANOPY_API_TOKEN. Without the
	// right one, a single line that says where the token lives.
	tok, err := os.ReadFile(filepath.Join(secondData, api.TokenFileName))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	wrong := strings.Repeat("0", api.TokenLen)
	damaged := filepath.Join(dir, "damaged")
	os.MkdirAll(damaged, 0o700)
	os.WriteFile(filepath.Join(damaged, api.TokenFileName), []byte("garbage\n"), 0o600)
	for _, tc := range []struct {
		env  []string
		args []string
		msg  string // "" for success
	}{
		{nil, []string{"status", "--api", api2, "--api-token", token}, ""},
		{[]string{tokenEnv + "=" + token}, []string{"status", "--api", api2}, ""},
		{[]string{tokenEnv + "=" + wrong}, []string{"status", "--api", api2, "--api-token", token}, ""}, // the flag wins
		{nil, []string{"status", "--api", api2}, filepath.Join(xdg, "canopy", api.TokenFileName)},       // the first node's token
		{nil, []string{"status", "--api", api2, "--data", filepath.Join(dir, "nothing")}, "none at " + filepath.Join(dir, "nothing", api.TokenFileName)},
		{nil, []string{"search", "--api", api2, "--api-token", wrong, "x"}, "refused the API token from --api-token"},
		{[]string{tokenEnv + "=" + wrong}, []string{"natcheck", "--api", api2}, "refused the API token from $" + tokenEnv},
		{nil, []string{"get", "--api", api2, "--api-token", "short", id}, "--api-token: not a Canopy API token"},
		{nil, []string{"status", "--api", api2, "--data", damaged}, filepath.Join(damaged, api.TokenFileName) + " is damaged"},
	} {
		out, err := runEnv(tc.env, tc.args...)
		if tc.msg == "" {
			if err != nil {
				t.Errorf("canopy %v (env %v): %v %s", tc.args, tc.env, err, out)
			}
			continue
		}
		if err == nil || !strings.Contains(out, tc.msg) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("canopy %v (env %v): %v %q, want one line with %q", tc.args, tc.env, err, out, tc.msg)
		}
	}
	for _, tc := range []struct{ args []string }{
		{[]string{"get", "--api", api1, "--out", outDir, strings.Repeat("0", 63) + "1"}}, // unknown ID
		{[]string{"get", "--api", api1, "not-an-id"}},
		{[]string{"status", "--api", freePort(t)}}, // no node there
		{[]string{"search", "--api", api1}},        // nothing to search for
		{[]string{"frobnicate"}},
	} {
		out, err := run(tc.args...)
		if err == nil || strings.TrimSpace(out) == "" {
			t.Errorf("canopy %v: exit 0 or no message (%q)", tc.args, out)
		}
	}

	// The node never touched its config file.
	if got, err := os.ReadFile(configFile); err != nil || string(got) != configText {
		t.Fatalf("the config file changed: %v %q", err, got)
	}

	// SIGINT: both nodes leave cleanly and exit 0.
	for _, cmd := range []*exec.Cmd{second, first} {
		cmd.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("node exited with %v after SIGINT", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("node did not stop within 20 s of SIGINT")
		}
	}
}

// firstLine starts the binary, returns the first line it prints after a
// table header (ID ...), and whether it was still running then; it stops
// the process before returning. The line must come within deadline.
func firstLine(t *testing.T, bin string, env, args []string, deadline time.Duration) (string, bool) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	lines := make(chan string, 1)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if !strings.HasPrefix(sc.Text(), "ID ") {
				lines <- sc.Text()
				break
			}
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		close(exited)
	}()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	select {
	case line := <-lines:
		select {
		case <-exited:
			return line, false
		default:
			return line, true
		}
	case <-time.After(deadline):
		t.Fatalf("canopy %v printed nothing within %s", args, deadline)
		return "", false
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitAPI(t *testing.T, addr string) {
	t.Helper()
	testwait.Until(t, 30*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "the API at %s never accepted a connection", addr)
}
