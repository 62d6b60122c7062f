package natmatrix

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/internal/natlab"
)

// Ports every node uses. Each namespace has its own loopback and its own
// ports, so all nodes can share them.
const (
	controlPort = 7373
	apiAddr     = "127.0.0.1:7375"
)

// fileSize is the size of the file every leaf shares (issue 3: 8 MiB).
const fileSize = 8 << 20

// node is one `canopy up` process running on a lab host, with its
// directories and log file.
type node struct {
	name string
	host *natlab.Host
	bin  string
	dir  string // data/, share/, out/ and node.log live here
	log  string // stdout and stderr of `canopy up`

	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited
	waitErr error         // cmd.Wait's result, once exited is closed

	id   string     // the node ID, from the first status that answered
	file sharedFile // the file a leaf shares (zero for supernodes)
}

// sharedFile is the file a leaf shares: a name with a word found in no other
// name, so that a search for it has exactly one answer.
type sharedFile struct {
	word   string // the unique search word, e.g. "nm3fa9c1d2e0b4"
	name   string // e.g. "symmetric-a-nm3fa9c1d2e0b4.bin"
	sha256 [sha256.Size]byte
}

// startNode starts `canopy up` on host with args (--data and --api are
// added) and registers a cleanup that stops it. It does not wait for the
// node to be up; see waitUntil.
func startNode(t *testing.T, ctx context.Context, bin, work string, host *natlab.Host, args ...string) *node {
	t.Helper()
	n := &node{name: host.Name, host: host, bin: bin, dir: filepath.Join(work, host.Name), exited: make(chan struct{})}
	n.log = filepath.Join(n.dir, "node.log")
	for _, d := range []string{"data", "share", "out"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	logFile, err := os.Create(n.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own descriptor
	args = append([]string{"up", "--data", filepath.Join(n.dir, "data"), "--api", apiAddr, "--log-level", logLevel()}, args...)
	n.cmd = host.Command(ctx, bin, args...)
	n.cmd.Stdout, n.cmd.Stderr = logFile, logFile
	// `ip netns exec` execs canopy in place, so the process we signal is
	// canopy itself.
	n.cmd.Cancel = func() error { return n.cmd.Process.Signal(os.Interrupt) }
	n.cmd.WaitDelay = 3 * time.Second
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("%s: start canopy: %v", n.name, err)
	}
	go func() {
		n.waitErr = n.cmd.Wait()
		close(n.exited)
	}()
	// Registered after natlab.New's cleanup, so it runs before the lab is
	// torn down: the node gets SIGINT and a moment to leave the network
	// cleanly, then SIGKILL. natlab's cleanup would kill it anyway.
	t.Cleanup(func() { n.stop() })
	return n
}

// stop ends the process: SIGINT, then SIGKILL after 3 s.
func (n *node) stop() {
	select {
	case <-n.exited:
		return
	default:
	}
	_ = n.cmd.Process.Signal(os.Interrupt)
	select {
	case <-n.exited:
	case <-time.After(3 * time.Second):
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.exited
	}
}

// logLevel is the level the nodes log at: info, or CANOPY_NATMATRIX_LOG
// (e.g. "debug" to see pion's ICE logs when a pair fails).
func logLevel() string {
	if l := os.Getenv("CANOPY_NATMATRIX_LOG"); l != "" {
		return l
	}
	return "info"
}

// alive returns an error when the process has exited.
func (n *node) alive() error {
	select {
	case <-n.exited:
		return fmt.Errorf("%s: canopy up exited: %v", n.name, n.waitErr)
	default:
		return nil
	}
}

// run runs `canopy SUBCOMMAND --api ADDR --data DIR ARGS...` in the node's namespace
// and returns its standard output; the error carries its standard error.
func (n *node) run(ctx context.Context, timeout time.Duration, sub string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// --data: the command reads the node's API token from its data directory.
	cmd := n.host.Command(ctx, n.bin, append([]string{sub, "--api", apiAddr, "--data", filepath.Join(n.dir, "data")}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if ctx.Err() != nil {
			msg += fmt.Sprintf(" (timed out after %v)", timeout)
		}
		return stdout.Bytes(), fmt.Errorf("%s: canopy %s: %v: %s", n.name, sub, err, msg)
	}
	return stdout.Bytes(), nil
}

// status returns `canopy status --json`.
func (n *node) status(ctx context.Context) (api.Status, error) {
	var st api.Status
	out, err := n.run(ctx, 5*time.Second, "status", "--json")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("%s: canopy status --json: %v: %q", n.name, err, out)
	}
	return st, nil
}

// search runs `canopy search --json` for words, returning at the first hit. It accepts both shapes the
// command has printed: the api.SearchResponse of the CLI contract and a
// bare list of hits.
func (n *node) search(ctx context.Context, words string) ([]api.Hit, error) {
	// The word is unique, so the first hit is the only one: --limit 1 ends
	// the search as soon as it arrives instead of after the whole timeout.
	out, err := n.run(ctx, 15*time.Second, "search", "--json", "--timeout", "5s", "--limit", "1", words)
	if err != nil {
		return nil, err
	}
	var res api.SearchResponse
	if err := json.Unmarshal(out, &res); err == nil {
		return res.Hits, nil
	}
	var hits []api.Hit
	if err := json.Unmarshal(out, &hits); err != nil {
		return nil, fmt.Errorf("%s: canopy search --json: %v: %q", n.name, err, out)
	}
	return hits, nil
}

// get runs `canopy get --json`, which prints the download job (api.Download)
// each time it changes, and returns its end as a "done" event (a failed job
// is returned as an error): the file's path, the job's time and how each
// source was reached.
func (n *node) get(ctx context.Context, timeout time.Duration, id, out string) (api.GetEvent, error) {
	stdout, err := n.run(ctx, timeout, "get", "--json", "--out", out, id)
	var last api.Download
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var job api.Download
		if jerr := json.Unmarshal(line, &job); jerr != nil {
			return api.GetEvent{}, fmt.Errorf("%s: canopy get --json printed a line that is not a download job: %v: %q", n.name, jerr, line)
		}
		last = job
	}
	switch {
	case last.State == api.DownloadFailed:
		return api.GetEvent{}, fmt.Errorf("%s: download failed: %s", n.name, last.Reason)
	case err != nil:
		return api.GetEvent{}, err
	case last.State != api.DownloadDone:
		return api.GetEvent{}, fmt.Errorf("%s: canopy get --json ended before the job was done: %q", n.name, tail(string(stdout), 5))
	}
	done := api.GetEvent{Event: "done", Name: last.Name, Path: last.Path, Have: last.Have, Total: last.Size}
	if last.Finished != nil {
		done.Seconds = last.Finished.Sub(last.Created).Seconds()
	}
	for _, s := range last.Sources {
		done.Connections = append(done.Connections, api.Connection{Source: s.Node, Path: s.Path, Local: s.Local, Remote: s.Remote, ConnectMS: s.ConnectMS})
	}
	return done, nil
}

// logTail returns the last lines of the node's log.
func (n *node) logTail(lines int) string {
	b, err := os.ReadFile(n.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return tail(string(b), lines)
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// writeShare writes a leaf's file into dir: fileSize random bytes under a
// name that starts with the leaf's name and holds a fresh unique word.
func writeShare(dir, leaf string) (sharedFile, error) {
	var f sharedFile
	var w [7]byte
	if _, err := rand.Read(w[:]); err != nil {
		return f, err
	}
	f.word = "nm" + hex.EncodeToString(w[:])
	f.name = leaf + "-" + f.word + ".bin"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return f, err
	}
	file, err := os.Create(filepath.Join(dir, f.name))
	if err != nil {
		return f, err
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(file, h), rand.Reader, fileSize); err != nil {
		file.Close()
		return f, err
	}
	copy(f.sha256[:], h.Sum(nil))
	return f, file.Close()
}

// verify checks that path holds the leaf's shared file.
func (f sharedFile) verify(path string) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	h := sha256.New()
	size, err := io.Copy(h, file)
	if err != nil {
		return err
	}
	if size != fileSize {
		return fmt.Errorf("%s has %d bytes, want %d", path, size, fileSize)
	}
	if got := h.Sum(nil); !bytes.Equal(got, f.sha256[:]) {
		return fmt.Errorf("%s: sha256 %x, want %x", path, got, f.sha256)
	}
	return nil
}
