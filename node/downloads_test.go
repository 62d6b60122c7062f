package node_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/demo"
	"github.com/canopy-p2p/canopy/downloads"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/node"
	"github.com/canopy-p2p/canopy/promotion"
)

// jobNet is a loopback network for download jobs: one supernode, source
// leaves sharing files, and a downloader leaf with its API on.
type jobNet struct {
	t       *testing.T
	dir     string
	sn      *node.Node
	sources []*node.Node
	dl      *node.Node
	dlCfg   node.Config
}

// randomFile returns size random bytes.
func randomFile(size int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// startJobNet starts the network: source i shares files[i]; tune adjusts
// the downloader's config.
func startJobNet(t *testing.T, files []map[string][]byte, tune func(*node.Config)) *jobNet {
	t.Helper()
	n := &jobNet{t: t, dir: t.TempDir()}
	cfg := demo.NodeOptions(n.dir, "sn", testLog(t))
	cfg.Consent = promotion.ConsentAlways
	sn, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.sn = sn
	t.Cleanup(func() { sn.Close() })
	for i, fs := range files {
		name := fmt.Sprintf("src%d", i+1)
		cfg := demo.NodeOptions(n.dir, name, testLog(t))
		cfg.Consent, cfg.Join = promotion.ConsentNever, []string{sn.Control()}
		share := filepath.Join(n.dir, name, "shared")
		os.MkdirAll(share, 0o755)
		for fname, data := range fs {
			if err := os.WriteFile(filepath.Join(share, fname), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cfg.Shares = []string{share}
		src, err := node.Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { src.Close() })
		n.sources = append(n.sources, src)
	}
	n.dlCfg = demo.NodeOptions(n.dir, "dl", testLog(t))
	n.dlCfg.Consent, n.dlCfg.Join = promotion.ConsentNever, []string{sn.Control()}
	n.dlCfg.API = "127.0.0.1:0"
	if tune != nil {
		tune(&n.dlCfg)
	}
	n.startDownloader()
	testwait.Until(t, 30*time.Second, func() bool {
		for _, s := range n.sources {
			st := s.Status()
			if len(st.Supernodes) == 0 || st.Supernodes[0].Files != st.SharedFiles {
				return false
			}
		}
		return true
	}, "the sources' files never reached the supernode's index")
	return n
}

func (n *jobNet) startDownloader() {
	n.t.Helper()
	dl, err := node.Start(context.Background(), n.dlCfg)
	if err != nil {
		n.t.Fatal(err)
	}
	n.dl = dl
	n.t.Cleanup(func() { dl.Close() })
	testwait.Until(n.t, 30*time.Second, func() bool { return len(dl.Status().Supernodes) > 0 },
		"the downloader never attached")
}

// client is an API client of the downloader.
func (n *jobNet) client() *api.Client {
	tok, err := api.ReadTokenFile(n.dlCfg.DataDir)
	if err != nil {
		n.t.Fatal(err)
	}
	return api.NewClient(n.dl.APIAddr(), tok)
}

// idOf is the content ID of data.
func idOf(t *testing.T, data []byte) content.ID {
	m, err := content.Hash(bytes.NewReader(data), content.DefaultPieceSize)
	if err != nil {
		t.Fatal(err)
	}
	return m.ID()
}

// waitJob waits until job id satisfies cond and returns it.
func waitJob(t *testing.T, m *downloads.Manager, id int64, timeout time.Duration, what string, cond func(downloads.Job) bool) downloads.Job {
	t.Helper()
	var j downloads.Job
	testwait.Until(t, timeout, func() bool {
		var err error
		j, err = m.Get(id)
		return err == nil && cond(j)
	}, "job %d never %s (last: %s %q, %d of %d bytes)", id, what, j.State, j.Reason, j.Have, j.Size)
	return j
}

// whenJob waits, on the subscription the test holds open as the job's
// first watcher, for the first change of job id that satisfies cond, and
// returns it: the test acts within the moment of that change, not a poll
// later (a fast machine finishes small files between two polls). A job
// that finishes first fails the test.
func whenJob(t *testing.T, m *downloads.Manager, id int64, what string, cond func(downloads.Job) bool) downloads.Job {
	t.Helper()
	sub := m.Subscribe()
	defer sub.Stop()
	deadline := time.After(60 * time.Second)
	for {
		jobs, _ := sub.Take()
		for _, j := range jobs {
			if j.ID != id {
				continue
			}
			if cond(j) {
				return j
			}
			if isDone(j) {
				t.Fatalf("job %d %s (%q) before it was %s", id, j.State, j.Reason, what)
			}
		}
		select {
		case <-sub.Ready():
		case <-deadline:
			t.Fatalf("job %d never %s", id, what)
		}
	}
}

func isDone(j downloads.Job) bool { return j.State == downloads.Done || j.State == downloads.Failed }

func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes differ from the %d shared", path, len(got), len(want))
	}
}

// partFiles lists the part files in dir.
func partFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), downloads.PartSuffix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestDownloadJobAPI drives a job through the local API as the CLI and the
// web UI do: enqueue, the event stream, pause (the part file stays), resume,
// done with the file byte-identical, then the history and the refusals.
// A clean stop of the node keeps the job, and the restarted node resumes it
// by itself from the recorded pieces, fetching none of them again.
func TestDownloadJobAPI(t *testing.T) {
	data := randomFile(4<<20, 1)
	n := startJobNet(t, []map[string][]byte{{"big.bin": data}}, nil)
	c := n.client()
	ctx := context.Background()
	id := idOf(t, data)
	out := t.TempDir()

	// (A file nobody has is refused: cmd/canopy's TestCommandLine.)
	d, err := c.Enqueue(ctx, api.DownloadRequest{ID: id.String(), Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "big.bin" || d.Existing {
		t.Fatalf("enqueued %+v", d)
	}
	again, err := c.Enqueue(ctx, api.DownloadRequest{ID: id.String(), Out: out})
	if err != nil || again.ID != d.ID || !again.Existing {
		t.Fatalf("second enqueue of the same file: %+v %v, want job %d again", again, err, d.ID)
	}

	// The event stream shows the job downloading; pause it there.
	states := map[string]bool{}
	fctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = c.FollowDownloads(fctx, d.ID, func(ev api.Download) bool {
		states[ev.State] = true
		return !(ev.State == api.DownloadDownloading && ev.Have > 0)
	})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.DownloadAction(ctx, d.ID, api.ActionPause)
	if err != nil || p.State != api.DownloadPaused {
		t.Fatalf("pause: %+v %v", p, err)
	}
	if _, err := c.DownloadAction(ctx, d.ID, api.ActionRetry); err == nil {
		t.Fatal("retry of a paused job accepted")
	}
	j := waitJob(t, n.dl.Downloads(), d.ID, 10*time.Second, "stopped after the pause", func(j downloads.Job) bool {
		return !j.Running && j.State == downloads.Paused
	})
	if len(partFiles(t, out)) != 1 {
		t.Fatalf("paused: part files %v", partFiles(t, out))
	}
	held := j.Have

	// A clean stop and start: the job stays paused, with what it held.
	n.dl.Close()
	n.startDownloader()
	m := n.dl.Downloads()
	if j, _ := m.Get(d.ID); j.State != downloads.Paused || j.Have != held {
		t.Fatalf("after a restart the paused job is %s with %d bytes, want paused with %d", j.State, j.Have, held)
	}
	c = n.client()
	if _, err := c.DownloadAction(ctx, d.ID, api.ActionResume); err != nil {
		t.Fatal(err)
	}
	j = waitJob(t, m, d.ID, 60*time.Second, "finished", isDone)
	if j.State != downloads.Done {
		t.Fatalf("job %s: %s", j.State, j.Reason)
	}
	checkFile(t, filepath.Join(out, "big.bin"), data)
	if len(partFiles(t, out)) != 0 {
		t.Fatalf("part files left: %v", partFiles(t, out))
	}
	if j.Refetched != 0 || j.Fetched != int64(len(data)) {
		t.Errorf("fetched %d, refetched %d: want %d and 0 after a clean stop", j.Fetched, j.Refetched, len(data))
	}
	for _, s := range []string{api.DownloadQueued, api.DownloadConnecting, api.DownloadDownloading} {
		// Queued is the snapshot of a job not yet started, connecting its
		// first state once a slot took it; either may be skipped by a
		// reader that is slower than the job.
		if s == api.DownloadDownloading && !states[s] {
			t.Errorf("the event stream never showed %s: %v", s, states)
		}
	}
	list, err := c.Downloads(ctx)
	if err != nil || len(list) != 1 || list[0].State != api.DownloadDone || list[0].Path != filepath.Join(out, "big.bin") {
		t.Fatalf("list: %+v %v", list, err)
	}
	if len(list[0].Sources) == 0 || list[0].Sources[0].Path != "direct" {
		t.Errorf("sources of the done job: %+v", list[0].Sources)
	}
	for _, a := range []string{api.ActionPause, api.ActionResume, api.ActionCancel, api.ActionRetry} {
		if _, err := c.DownloadAction(ctx, d.ID, a); err == nil {
			t.Errorf("%s of a done job accepted", a)
		}
	}
	if _, err := c.Download(ctx, 999); err == nil {
		t.Error("job 999 found")
	}
	// A second download of a done file is a new job, placed beside it.
	d2, err := c.Enqueue(ctx, api.DownloadRequest{ID: id.String(), Out: out})
	if err != nil || d2.ID == d.ID {
		t.Fatalf("enqueue after done: %+v %v", d2, err)
	}
	j = waitJob(t, m, d2.ID, 60*time.Second, "finished", isDone)
	if j.State != downloads.Done || j.Path != filepath.Join(out, "big (1).bin") {
		t.Fatalf("second copy: %s %q at %s", j.State, j.Reason, j.Path)
	}
	checkFile(t, j.Path, data)
}

// TestDownloadCancelDeletesPart: cancel stops a running job, deletes its
// part file, and the job is failed as cancelled; retry starts it again.
func TestDownloadCancelDeletesPart(t *testing.T) {
	data := randomFile(6<<20, 2)
	n := startJobNet(t, []map[string][]byte{{"c.bin": data}}, nil)
	m := n.dl.Downloads()
	out := t.TempDir()
	id := idOf(t, data)
	src, _ := n.dl.Sources(context.Background(), id)
	j, _, err := m.Enqueue(downloads.Request{Content: id, Name: "c.bin", OutDir: out, Sources: src.Sources})
	if err != nil {
		t.Fatal(err)
	}
	whenJob(t, m, j.ID, "downloading", func(j downloads.Job) bool { return j.Have > 0 })
	if _, err := m.Do(j.ID, downloads.Cancel); err != nil {
		t.Fatal(err)
	}
	got := waitJob(t, m, j.ID, 10*time.Second, "stopped", func(j downloads.Job) bool { return !j.Running })
	if got.State != downloads.Failed || got.Reason != downloads.ReasonCancelled || got.Have != 0 {
		t.Fatalf("cancelled job: %s %q holding %d", got.State, got.Reason, got.Have)
	}
	testwait.Until(t, 10*time.Second, func() bool { return len(partFiles(t, out)) == 0 }, "the part file stayed after cancel")
	if _, err := m.Do(j.ID, downloads.Retry); err != nil {
		t.Fatal(err)
	}
	got = waitJob(t, m, j.ID, 60*time.Second, "finished", isDone)
	if got.State != downloads.Done {
		t.Fatalf("retried job: %s %q", got.State, got.Reason)
	}
	checkFile(t, got.Path, data)
}

// TestDownloadSourceKilled: a source killed mid-transfer, while another has
// the file: the job finishes from the other.
func TestDownloadSourceKilled(t *testing.T) {
	data := randomFile(16<<20, 3)
	files := map[string][]byte{"two.bin": data}
	// Every progress report is an event: the kill below comes within a
	// report of both sources connecting.
	n := startJobNet(t, []map[string][]byte{files, files}, func(c *node.Config) { c.Jobs.EventInterval = time.Millisecond })
	m := n.dl.Downloads()
	out := t.TempDir()
	id := idOf(t, data)
	testwait.Until(t, 30*time.Second, func() bool {
		r, err := n.dl.Sources(context.Background(), id)
		return err == nil && len(r.Sources) == 2
	}, "the downloader never saw both sources")
	src, _ := n.dl.Sources(context.Background(), id)
	j, _, err := m.Enqueue(downloads.Request{Content: id, OutDir: out, Sources: src.Sources})
	if err != nil {
		t.Fatal(err)
	}
	// Kill a source that has delivered, as soon as the other is
	// connected too.
	cur := whenJob(t, m, j.ID, "connected to both sources, one delivering", func(j downloads.Job) bool {
		conn, gave := 0, 0
		for _, s := range j.Sources {
			if s.Path != "" {
				conn++
			}
			if s.Bytes > 0 {
				gave++
			}
		}
		return conn == 2 && gave > 0
	})
	victim := 0
	for _, s := range cur.Sources {
		if s.Bytes > 0 && s.Node == n.sources[1].ID() {
			victim = 1
		}
	}
	n.sources[victim].Kill()
	got := waitJob(t, m, j.ID, 60*time.Second, "finished", isDone)
	if got.State != downloads.Done {
		t.Fatalf("job %s: %s", got.State, got.Reason)
	}
	checkFile(t, got.Path, data)
	var dropped, served bool
	for _, s := range got.Sources {
		if s.Node == n.sources[victim].ID() && s.Err != "" {
			dropped = true
		}
		if s.Node == n.sources[1-victim].ID() && s.Err == "" && s.Bytes > 0 {
			served = true
		}
	}
	if !dropped || !served {
		t.Fatalf("sources %+v: want the killed one dropped and the other serving", got.Sources)
	}
}

// TestDownloadCorruptPart: a part file edited and truncated while its job
// was paused is verified against the manifest when the job resumes; only
// the bad and missing pieces are fetched again, and they are reported.
func TestDownloadCorruptPart(t *testing.T) {
	data := randomFile(8<<20, 4)
	n := startJobNet(t, []map[string][]byte{{"corrupt.bin": data}}, nil)
	m := n.dl.Downloads()
	out := t.TempDir()
	id := idOf(t, data)
	src, _ := n.dl.Sources(context.Background(), id)
	j, _, err := m.Enqueue(downloads.Request{Content: id, OutDir: out, Sources: src.Sources})
	if err != nil {
		t.Fatal(err)
	}
	const ps = content.DefaultPieceSize
	whenJob(t, m, j.ID, "downloading", func(j downloads.Job) bool { return j.Pieces > 0 })
	if _, err := m.Do(j.ID, downloads.Pause); err != nil {
		t.Fatalf("pause: %v", err)
	}
	j = waitJob(t, m, j.ID, 10*time.Second, "stopped", func(j downloads.Job) bool { return !j.Running })
	f, err := os.OpenFile(j.Part, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The held pieces are 0 to Pieces-1: one source serves them in the
	// order asked. Flip a byte of piece 0, and cut the file inside piece
	// 2, which takes piece 2 and all after.
	f.WriteAt([]byte{data[100] ^ 0xff}, 100)
	f.Truncate(2*ps + 10)
	f.Close()
	before := j.Fetched
	if _, err := m.Do(j.ID, downloads.Resume); err != nil {
		t.Fatal(err)
	}
	got := waitJob(t, m, j.ID, 60*time.Second, "finished", isDone)
	if got.State != downloads.Done {
		t.Fatalf("job %s: %s", got.State, got.Reason)
	}
	checkFile(t, got.Path, data)
	// Lost: piece 0 (edited) and every held piece from piece 2 on.
	lost := before
	if j.Pieces >= 2 {
		lost -= ps
	}
	if got.Refetched != lost || got.Fetched != int64(len(data))+lost {
		t.Fatalf("fetched %d, refetched %d; the edit and the cut lost %d of the %d held", got.Fetched, got.Refetched, lost, before)
	}
}

// TestDownloadQueueLimit: with one active job allowed, three jobs run one
// after the other, in the order they were queued.
func TestDownloadQueueLimit(t *testing.T) {
	files := map[string][]byte{}
	var datas [][]byte
	for i := range 3 {
		d := randomFile(4<<20, uint64(10+i))
		datas = append(datas, d)
		files[fmt.Sprintf("q%d.bin", i)] = d
	}
	n := startJobNet(t, []map[string][]byte{files}, func(c *node.Config) { c.Jobs.MaxActive = 1 })
	m := n.dl.Downloads()
	sub := m.Subscribe()
	defer sub.Stop()
	out := t.TempDir()
	var ids []int64
	for i, d := range datas {
		id := idOf(t, d)
		src, err := n.dl.Sources(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		j, _, err := m.Enqueue(downloads.Request{Content: id, Name: fmt.Sprintf("q%d.bin", i), OutDir: out, Sources: src.Sources})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	state := map[int64]downloads.State{}
	var doneOrder []int64
	maxActive := 0
	deadline := time.After(120 * time.Second)
	for len(doneOrder) < 3 {
		select {
		case <-sub.Ready():
		case <-deadline:
			t.Fatalf("jobs not done in time: %v", state)
		}
		jobs, _ := sub.Take()
		for _, j := range jobs {
			if state[j.ID] != downloads.Done && j.State == downloads.Done {
				doneOrder = append(doneOrder, j.ID)
			}
			if j.State == downloads.Failed {
				t.Fatalf("job %d failed: %s", j.ID, j.Reason)
			}
			state[j.ID] = j.State
		}
		active := 0
		for _, s := range state {
			if s.Active() {
				active++
			}
		}
		maxActive = max(maxActive, active)
	}
	if maxActive != 1 {
		t.Errorf("%d jobs ran at once, the limit is 1", maxActive)
	}
	for i, id := range ids {
		if doneOrder[i] != id {
			t.Errorf("done in order %v, queued as %v", doneOrder, ids)
			break
		}
		checkFile(t, filepath.Join(out, fmt.Sprintf("q%d.bin", i)), datas[i])
	}
}

// TestDownloadDiskFull: a download into a full file system fails with a
// clear reason and leaves nothing but its part file, which a retry resumes
// from once there is room.
func TestDownloadDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs (CI runs the tests as root)")
	}
	out := filepath.Join(t.TempDir(), "small")
	os.MkdirAll(out, 0o755)
	if b, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", out).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, b)
	}
	t.Cleanup(func() { syscall.Unmount(out, syscall.MNT_DETACH) })
	data := randomFile(6<<20, 5)
	n := startJobNet(t, []map[string][]byte{{"huge.bin": data}}, nil)
	m := n.dl.Downloads()
	id := idOf(t, data)
	src, _ := n.dl.Sources(context.Background(), id)
	j, _, err := m.Enqueue(downloads.Request{Content: id, Name: "huge.bin", OutDir: out, Sources: src.Sources})
	if err != nil {
		t.Fatal(err)
	}
	got := waitJob(t, m, j.ID, 60*time.Second, "finished", isDone)
	if got.State != downloads.Failed || !strings.Contains(got.Reason, "disk is full") || !strings.Contains(got.Reason, "no space left") {
		t.Fatalf("job %s: %q, want failed for a full disk", got.State, got.Reason)
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 1 || ents[0].Name() != filepath.Base(got.Part) {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("files left in the full directory: %v, want only the part file %s", names, filepath.Base(got.Part))
	}
	if got.Have == 0 {
		t.Fatal("nothing recorded before the disk filled")
	}
	// Room again: the retry resumes from the pieces it held.
	if err := syscall.Mount("tmpfs", out, "tmpfs", syscall.MS_REMOUNT, "size=16m"); err != nil {
		t.Fatal(err)
	}
	held := got.Have
	if _, err := m.Do(j.ID, downloads.Retry); err != nil {
		t.Fatal(err)
	}
	got = waitJob(t, m, j.ID, 60*time.Second, "finished", isDone)
	if got.State != downloads.Done {
		t.Fatalf("retry: %s %q", got.State, got.Reason)
	}
	checkFile(t, got.Path, data)
	if got.Fetched-got.Refetched != int64(len(data)) || got.Refetched > int64(len(data))-held {
		t.Fatalf("fetched %d, refetched %d, held %d before the retry", got.Fetched, got.Refetched, held)
	}
}
