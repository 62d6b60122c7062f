package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/internal/testwait"
)

// TestCommandLine drives the real binary as a user would: two `canopy up`
// processes (a first supernode and a leaf that joins it), then `status`,
// `search` and `get` against the supernode's API, checking the JSON contract
// and the exit codes, and finally SIGINT for a clean leave.
func TestCommandLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped in -short mode")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "canopy")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	// The default data directory is $XDG_DATA_HOME/canopy: every command
	// runs with XDG_DATA_HOME in the test's directory, and the first node's
	// data directory is that default, so that the commands find its token
	// without --data, as a user's do.
	xdg := filepath.Join(dir, "xdg")
	runEnv := func(env []string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(append(os.Environ(), "XDG_DATA_HOME="+xdg, tokenEnv+"="), env...)
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
	up := func(data, ctl, apiAddr string, extra ...string) *exec.Cmd {
		name := filepath.Base(data)
		args := append([]string{"up", "--data", data, "--listen", ctl, "--gossip", freePort(t), "--api", apiAddr, "--log-level", "warn"}, extra...)
		cmd := exec.Command(bin, args...)
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
	first := up(firstData, ctl1, api1)
	second := up(secondData, ctl2, api2, "--share", share, "--join", ctl1)

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
	out, err := run("status", "--api", api1, "--json")
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Role != "supernode" || st.Leaves != 2 || len(st.Ring) != 1 {
		t.Fatalf("supernode status: %v %+v", err, st)
	}

	// search --json returns the contract's fields.
	out, err = run("search", "--api", api1, "--json", "--timeout", "500ms", "command", "line")
	var hits []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &hits) != nil || len(hits) != 1 {
		t.Fatalf("search: %v %s", err, out)
	}
	for _, k := range []string{"id", "name", "size", "sources"} {
		if _, ok := hits[0][k]; !ok {
			t.Fatalf("search hit lacks %q: %v", k, hits[0])
		}
	}
	id := hits[0]["id"].(string)

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
