package main

import (
	"bytes"
	"encoding/json"
	"net"
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

// peopleProcs runs a supernode "sn" and leaves as real processes of the
// binary, for the crash tests: each can be killed with SIGKILL, or told
// (with $CANOPY_TEST_KILL_AT) to kill itself at a step, and started
// again with the same data directory and ports.
type peopleProcs struct {
	t     *testing.T
	bin   string
	dir   string
	procs map[string]*peopleProc
	args  map[string][]string
	apis  map[string]string
	ids   map[string]string
}

type peopleProc struct {
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan struct{} // closed when the process has exited
}

func newPeopleProcs(t *testing.T, leaves ...string) *peopleProcs {
	pp := &peopleProcs{t: t, bin: canopyBin(t), dir: t.TempDir(), procs: map[string]*peopleProc{},
		args: map[string][]string{}, apis: map[string]string{}, ids: map[string]string{}}
	t.Cleanup(func() {
		for name, p := range pp.procs {
			p.cmd.Process.Kill()
			<-p.done
			if t.Failed() {
				t.Logf("%s output:\n%s", name, p.logs.String())
			}
		}
	})
	snCtl := freePort(t)
	for _, name := range append([]string{"sn"}, leaves...) {
		ctl := freePort(t)
		if name == "sn" {
			ctl = snCtl
		}
		pp.apis[name] = freePort(t)
		pp.args[name] = []string{"up", "--data", filepath.Join(pp.dir, name), "--listen", ctl, "--gossip", freePort(t),
			"--api", pp.apis[name], "--turn", "off", "--portmap=false", "--log-level", "warn"}
		if name == "sn" {
			pp.args[name] = append(pp.args[name], "--supernode", "always")
		} else {
			pp.args[name] = append(pp.args[name], "--supernode", "never", "--join", snCtl)
		}
		pp.start(name, "")
	}
	for _, name := range leaves {
		var st api.Status
		testwait.Until(t, 30*time.Second, func() bool { return pp.jsonOf(name, &st, "status") && len(st.Supernodes) == 1 }, "%s attached", name)
		pp.ids[name] = st.ID
	}
	return pp
}

// start starts name and waits for its API; killAt, when set, is the step
// at which it kills itself ($CANOPY_TEST_KILL_AT).
func (pp *peopleProcs) start(name, killAt string) {
	pp.t.Helper()
	cmd := exec.Command(pp.bin, pp.args[name]...)
	cmd.Env = append(os.Environ(), killAtEnv+"="+killAt)
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		pp.t.Fatal(err)
	}
	p := &peopleProc{cmd: cmd, logs: logs, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	pp.procs[name] = p
	if killAt == "" {
		waitAPI(pp.t, pp.apis[name])
		return
	}
	// A node told to kill itself may reach its step (a stored letter
	// handed over as it attaches) before the API is ever dialled: wait
	// for either, and let died tell which.
	testwait.Until(pp.t, 30*time.Second, func() bool {
		select {
		case <-p.done:
			return true
		default:
		}
		c, err := net.Dial("tcp", pp.apis[name])
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "%s neither served its API at %s nor died", name, pp.apis[name])
}

func (pp *peopleProcs) kill9(name string) {
	pp.t.Helper()
	p := pp.procs[name]
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		pp.t.Fatal(err)
	}
	<-p.done
	delete(pp.procs, name)
}

// died waits until name has killed itself (at its $CANOPY_TEST_KILL_AT
// step).
func (pp *peopleProcs) died(name, what string) {
	pp.t.Helper()
	p := pp.procs[name]
	testwait.Until(pp.t, 30*time.Second, func() bool {
		select {
		case <-p.done:
			return true
		default:
			return false
		}
	}, "%s killed itself %s", name, what)
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		pp.t.Fatalf("%s ended with %v, not by SIGKILL %s:\n%s", name, p.cmd.ProcessState, what, p.logs.String())
	}
	delete(pp.procs, name)
}

func (pp *peopleProcs) run(name string, a ...string) (string, error) {
	cmd := exec.Command(pp.bin, append(a, "--data", filepath.Join(pp.dir, name), "--api", pp.apis[name])...)
	cmd.Env = append(os.Environ(), tokenEnv+"=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (pp *peopleProcs) jsonOf(name string, v any, a ...string) bool {
	out, err := pp.run(name, append(a, "--json")...)
	return err == nil && json.Unmarshal([]byte(out), v) == nil
}

// befriend makes alice and bob contacts (alice asks, bob accepts) and
// waits until alice sees bob online.
func (pp *peopleProcs) befriend() {
	t := pp.t
	var out string
	var err error
	testwait.Until(t, 10*time.Second, func() bool {
		out, err = pp.run("alice", "contacts", "add", pp.ids["bob"], "--name", "bob")
		return err == nil
	}, "alice's request sent: %v %s", err, out)
	testwait.Until(t, 10*time.Second, func() bool {
		var rs []api.Request
		return pp.jsonOf("bob", &rs, "contacts", "requests") && len(rs) == 1
	}, "bob sees the request")
	if out, err := pp.run("bob", "contacts", "accept", pp.ids["alice"]); err != nil {
		t.Fatalf("accept: %v %s", err, out)
	}
	pp.bobOnline(true)
}

// bobOnline waits until alice sees bob online (or offline).
func (pp *peopleProcs) bobOnline(online bool) {
	pp.t.Helper()
	testwait.Until(pp.t, 15*time.Second, func() bool {
		var cs []api.Contact
		return pp.jsonOf("alice", &cs, "contacts") && len(cs) == 1 && cs[0].State == "contact" && cs[0].Online == online
	}, "alice sees bob online: %v", online)
}

// aliceStates counts alice's messages to bob by state.
func (pp *peopleProcs) aliceStates() map[string]int {
	var ms []api.Message
	got := map[string]int{}
	if pp.jsonOf("alice", &ms, "msg", "bob") {
		for _, m := range ms {
			got[m.State]++
		}
	}
	return got
}

// bobHasNotes checks that bob has exactly the notes 1..n from alice, in
// order, each once.
func (pp *peopleProcs) bobHasNotes(n int) {
	pp.t.Helper()
	var ms []api.Message
	if !pp.jsonOf("bob", &ms, "msg") || len(ms) != n {
		pp.t.Fatalf("bob has %d messages, want %d (none lost, none twice): %+v", len(ms), n, ms)
	}
	for i, m := range ms {
		if want := "note " + string(rune('1'+i)); m.Text != want || m.Dir != "in" {
			pp.t.Errorf("bob's message %d is %q (%s), want %q", i, m.Text, m.Dir, want)
		}
	}
}

// TestPeopleKill9: kill -9 of the sender right after its messages were
// accepted, and of the supernode holding them for the offline recipient,
// loses none and duplicates none: the sender's database has each message
// before `canopy msg send` returns, and the sender sends again what a lost
// mailbox held once the recipient shows online.
func TestPeopleKill9(t *testing.T) {
	pp := newPeopleProcs(t, "alice", "bob")
	pp.befriend()

	// bob goes; alice writes five messages and is killed at once.
	pp.kill9("bob")
	pp.bobOnline(false)
	for i := range 5 {
		if out, err := pp.run("alice", "msg", "send", "bob", "note", string(rune('1'+i))); err != nil {
			t.Fatalf("send: %v %s", err, out)
		}
	}
	pp.kill9("alice")
	pp.start("alice", "")
	testwait.Until(t, 20*time.Second, func() bool { return pp.aliceStates()["stored"] == 5 }, "all five stored after alice's kill -9: %v", pp.aliceStates())

	// The supernode holding them is killed too and comes back empty.
	pp.kill9("sn")
	pp.start("sn", "")
	pp.start("bob", "")
	testwait.Until(t, 60*time.Second, func() bool { return pp.aliceStates()["delivered"] == 5 }, "all five delivered: %v", pp.aliceStates())
	pp.bobHasNotes(5)
}

// TestPeopleKill9Recipient: the recipient killed with SIGKILL while
// messages arrive loses none and keeps none twice, and the sender ends
// with every one delivered. bob kills himself at three points: having
// opened a message handed to him online, before keeping anything; having
// kept a stored message (its receipt committed with it, not yet sent, the
// mailbox not yet told); and in the middle of taking his stored mail,
// after the second of four new messages is kept.
func TestPeopleKill9Recipient(t *testing.T) {
	pp := newPeopleProcs(t, "alice", "bob")
	pp.befriend()
	send := func(n int) {
		t.Helper()
		if out, err := pp.run("alice", "msg", "send", "bob", "note", string(rune('0'+n))); err != nil {
			t.Fatalf("send: %v %s", err, out)
		}
	}

	// 1. Before the letter is kept: note 1 arrives online; bob dies with
	// nothing kept. alice gets no receipt and stores it at bob's
	// supernode instead.
	pp.kill9("bob")
	pp.start("bob", "people-letter-opened")
	pp.bobOnline(true)
	send(1)
	pp.died("bob", "having opened note 1")
	testwait.Until(t, 20*time.Second, func() bool { return pp.aliceStates()["stored"] == 1 }, "note 1 stored: %v", pp.aliceStates())

	// 2. After it is kept, before the receipt goes: the supernode hands
	// bob note 1 as he attaches; he dies with it kept.
	pp.start("bob", "people-letter-kept")
	pp.died("bob", "having kept note 1")

	// 3. In the middle of the mail: four more wait at the supernode; bob
	// dies after keeping the second of them (note 1 comes again too, a
	// duplicate).
	for n := 2; n <= 5; n++ {
		send(n)
	}
	testwait.Until(t, 20*time.Second, func() bool { return pp.aliceStates()["stored"] == 5 }, "notes 1 to 5 stored: %v", pp.aliceStates())
	pp.start("bob", "people-letter-kept#2")
	pp.died("bob", "having kept note 3")

	// bob comes back for good: every note delivered, each once, in order.
	pp.start("bob", "")
	testwait.Until(t, 60*time.Second, func() bool { return pp.aliceStates()["delivered"] == 5 }, "all five delivered: %v", pp.aliceStates())
	pp.bobHasNotes(5)
	var st api.Status
	if !pp.jsonOf("bob", &st, "status") || st.People == nil {
		t.Fatal("bob's status has no people counters")
	}
	t.Logf("bob after the crashes: %d letters in, %d duplicates dropped", st.People.LettersIn, st.People.Duplicates)
}
