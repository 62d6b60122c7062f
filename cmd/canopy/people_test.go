package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/internal/testwait"
)

// TestPeopleCommandLine is the README's two-person walk-through with the
// real binary: a supernode, alice and bob; alice sets her nickname and
// asks bob, bob accepts, alice messages bob by the name she gave him, bob
// reads it (and follows the next one live), alice sees it delivered. A
// mistyped ID is refused with nothing sent.
func TestPeopleCommandLine(t *testing.T) {
	bin := canopyBin(t) // built once for the package's tests
	dir := t.TempDir()
	run := func(data string, args ...string) (string, error) {
		cmd := exec.Command(bin, append(args, "--data", data)...)
		cmd.Env = append(os.Environ(), tokenEnv+"=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	up := func(name, join string, extra ...string) (data, apiAddr string) {
		data, apiAddr = filepath.Join(dir, name), freePort(t)
		ctl := freePort(t)
		args := append([]string{"up", "--data", data, "--listen", ctl, "--gossip", freePort(t), "--api", apiAddr,
			"--turn", "off", "--portmap=false", "--log-level", "warn"}, extra...)
		if join != "" {
			args = append(args, "--join", join)
		}
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
		return data, apiAddr
	}
	snData, snAPI := up("sn", "", "--supernode", "always")
	var st api.Status
	if out, err := run(snData, "status", "--api", snAPI, "--json"); err != nil || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("supernode status: %v %s", err, out)
	}
	alice, aliceAPI := up("alice", st.Control, "--supernode", "never")
	bob, bobAPI := up("bob", st.Control, "--supernode", "never")
	id := func(data, apiAddr string) string {
		var s api.Status
		testwait.Until(t, 30*time.Second, func() bool {
			out, err := run(data, "status", "--api", apiAddr, "--json")
			return err == nil && json.Unmarshal([]byte(out), &s) == nil && len(s.Supernodes) == 1
		}, "%s attached", data)
		return s.ID
	}
	aliceID, bobID := id(alice, aliceAPI), id(bob, bobAPI)
	a := func(args ...string) (string, error) { return run(alice, append(args, "--api", aliceAPI)...) }
	b := func(args ...string) (string, error) { return run(bob, append(args, "--api", bobAPI)...) }
	must := func(out string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return out
	}

	must(a("profile", "set", "--nick", "alice", "--status", "online"))
	if out := must(a("profile")); !strings.Contains(out, "alice") || !strings.Contains(out, "online") {
		t.Fatalf("profile: %s", out)
	}
	// A mistyped ID: refused, nothing sent.
	if out, err := a("contacts", "add", bobID[:50]+"zz"); err == nil || !strings.Contains(out, "nothing was sent") {
		t.Fatalf("a mistyped ID: %v %s", err, out)
	}
	if out := must(a("contacts", "add", bobID, "--name", "bob", "--message", "hi bob, it's alice")); !strings.Contains(out, "request sent") {
		t.Fatalf("add: %s", out)
	}
	testwait.Until(t, 10*time.Second, func() bool {
		out, err := b("contacts", "requests", "--json")
		var rs []api.Request
		return err == nil && json.Unmarshal([]byte(out), &rs) == nil && len(rs) == 1 && rs[0].ID == aliceID && rs[0].Text == "hi bob, it's alice"
	}, "bob sees alice's request")
	if out := must(b("contacts", "requests")); !strings.Contains(out, "alice") {
		t.Fatalf("requests: %s", out)
	}
	// Asking again within a minute collapses into the waiting request,
	// counted as rate-limited, which bob's status shows.
	must(a("contacts", "add", bobID, "--name", "bob"))
	testwait.Until(t, 10*time.Second, func() bool {
		out, err := b("status", "--json")
		var s api.Status
		return err == nil && json.Unmarshal([]byte(out), &s) == nil && s.People != nil && s.People.RequestsLimited == 1
	}, "bob's status counts the repeated request")
	if out := must(b("status")); !strings.Contains(out, "refused: 1 contact requests rate-limited") {
		t.Fatalf("bob's status does not show the repeated request:\n%s", out)
	}
	if rs := must(b("contacts", "requests", "--json")); strings.Count(rs, `"id"`) != 1 {
		t.Fatalf("the repeat did not collapse into one request: %s", rs)
	}
	must(b("contacts", "accept", aliceID))
	testwait.Until(t, 15*time.Second, func() bool {
		out, err := a("contacts", "--json")
		var cs []api.Contact
		return err == nil && json.Unmarshal([]byte(out), &cs) == nil && len(cs) == 1 && cs[0].State == "contact" && cs[0].Online
	}, "alice sees bob as an online contact")
	if out := must(a("contacts")); !strings.Contains(out, "bob") || !strings.Contains(out, "online") {
		t.Fatalf("contacts: %s", out)
	}

	// bob follows his messages while alice writes.
	follow := exec.Command(bin, "msg", "--follow", "--data", bob, "--api", bobAPI)
	var followed lockedBuffer
	follow.Stdout, follow.Stderr = &followed, &followed
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { follow.Process.Kill(); follow.Wait() }()
	var m api.Message
	if err := json.Unmarshal([]byte(must(a("msg", "send", "bob", "hello", "there", "--json"))), &m); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, func() bool {
		out, err := a("msg", "bob", "--json")
		var ms []api.Message
		return err == nil && json.Unmarshal([]byte(out), &ms) == nil && len(ms) == 1 && ms[0].State == "delivered"
	}, "alice sees her message delivered")
	if out := must(b("msg", aliceID[:8])); !strings.Contains(out, "hello there") || !strings.Contains(out, "alice") {
		t.Fatalf("bob's messages: %s", out)
	}
	testwait.Until(t, 10*time.Second, func() bool { return strings.Contains(followed.String(), "hello there") },
		"bob's msg --follow printed the message: %q", followed.String())
	if out, err := a("msg", "send", "nobody", "x"); err == nil || !strings.Contains(out, "no contact") {
		t.Fatalf("a message to nobody: %v %s", err, out)
	}
}

// lockedBuffer is a buffer a process writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPeopleKill9: kill -9 of the sender right after its messages were
// accepted, and of the supernode holding them for the offline recipient,
// loses none and duplicates none: the sender's database has each message
// before `canopy msg send` returns, and the sender sends again what a lost
// mailbox held once the recipient shows online.
func TestPeopleKill9(t *testing.T) {
	bin := canopyBin(t) // built once for the package's tests
	dir := t.TempDir()
	type proc struct {
		cmd  *exec.Cmd
		logs *lockedBuffer
	}
	procs := map[string]*proc{}
	args := map[string][]string{}
	t.Cleanup(func() {
		for name, p := range procs {
			p.cmd.Process.Kill()
			p.cmd.Wait()
			if t.Failed() {
				t.Logf("%s output:\n%s", name, p.logs.String())
			}
		}
	})
	start := func(name string) {
		t.Helper()
		cmd := exec.Command(bin, args[name]...)
		logs := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[name] = &proc{cmd, logs}
	}
	kill9 := func(name string) {
		t.Helper()
		p := procs[name]
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		p.cmd.Wait()
		delete(procs, name)
	}
	apis := map[string]string{}
	snCtl := freePort(t)
	for _, name := range []string{"sn", "alice", "bob"} {
		ctl := freePort(t)
		if name == "sn" {
			ctl = snCtl
		}
		apis[name] = freePort(t)
		args[name] = []string{"up", "--data", filepath.Join(dir, name), "--listen", ctl, "--gossip", freePort(t),
			"--api", apis[name], "--turn", "off", "--portmap=false", "--log-level", "warn"}
		if name == "sn" {
			args[name] = append(args[name], "--supernode", "always")
		} else {
			args[name] = append(args[name], "--supernode", "never", "--join", snCtl)
		}
		start(name)
		waitAPI(t, apis[name])
	}
	run := func(name string, a ...string) (string, error) {
		cmd := exec.Command(bin, append(a, "--data", filepath.Join(dir, name), "--api", apis[name])...)
		cmd.Env = append(os.Environ(), tokenEnv+"=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	jsonOf := func(name string, v any, a ...string) bool {
		out, err := run(name, append(a, "--json")...)
		return err == nil && json.Unmarshal([]byte(out), v) == nil
	}
	ids := map[string]string{}
	for _, name := range []string{"alice", "bob"} {
		var st api.Status
		testwait.Until(t, 30*time.Second, func() bool { return jsonOf(name, &st, "status") && len(st.Supernodes) == 1 }, "%s attached", name)
		ids[name] = st.ID
	}
	var out string
	var err error
	testwait.Until(t, 10*time.Second, func() bool {
		out, err = run("alice", "contacts", "add", ids["bob"], "--name", "bob")
		return err == nil
	}, "alice's request sent: %v %s", err, out)
	testwait.Until(t, 10*time.Second, func() bool {
		var rs []api.Request
		return jsonOf("bob", &rs, "contacts", "requests") && len(rs) == 1
	}, "bob sees the request")
	if out, err := run("bob", "contacts", "accept", ids["alice"]); err != nil {
		t.Fatalf("accept: %v %s", err, out)
	}
	testwait.Until(t, 15*time.Second, func() bool {
		var cs []api.Contact
		return jsonOf("alice", &cs, "contacts") && len(cs) == 1 && cs[0].Online
	}, "alice sees bob online")

	// bob goes; alice writes five messages and is killed at once.
	kill9("bob")
	testwait.Until(t, 10*time.Second, func() bool {
		var cs []api.Contact
		return jsonOf("alice", &cs, "contacts") && len(cs) == 1 && !cs[0].Online
	}, "alice sees bob offline")
	for i := range 5 {
		if out, err := run("alice", "msg", "send", "bob", "note", string(rune('1'+i))); err != nil {
			t.Fatalf("send: %v %s", err, out)
		}
	}
	kill9("alice")
	start("alice")
	waitAPI(t, apis["alice"])
	states := func() map[string]int {
		var ms []api.Message
		got := map[string]int{}
		if jsonOf("alice", &ms, "msg", "bob") {
			for _, m := range ms {
				got[m.State]++
			}
		}
		return got
	}
	testwait.Until(t, 20*time.Second, func() bool { return states()["stored"] == 5 }, "all five stored after alice's kill -9: %v", states())

	// The supernode holding them is killed too and comes back empty.
	kill9("sn")
	start("sn")
	waitAPI(t, apis["sn"])
	start("bob")
	waitAPI(t, apis["bob"])
	testwait.Until(t, 60*time.Second, func() bool { return states()["delivered"] == 5 }, "all five delivered: %v", states())
	var ms []api.Message
	if !jsonOf("bob", &ms, "msg") || len(ms) != 5 {
		t.Fatalf("bob has %d messages, want 5 (none lost, none twice)", len(ms))
	}
	for i, m := range ms {
		if want := "note " + string(rune('1'+i)); m.Text != want {
			t.Errorf("bob's message %d is %q, want %q", i, m.Text, want)
		}
	}
}
