package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	"github.com/canopy-p2p/canopy/transfer"
	"go.uber.org/zap"
)

// TestDownloadSurvivesKill9: a download is a job of the node, not of the
// command that asked for it, and survives the node being killed.
//
//   - `canopy get` follows the job; Ctrl-C detaches it, says how to follow
//     again, and the job goes on.
//   - The downloading node (a real `canopy up` process) is killed with
//     SIGKILL at random points of the transfer and started again: each time
//     it resumes the job by itself.
//   - It is killed twice more while placing the finished file: after the
//     destination was recorded, and between the hard link and the removal
//     of the part file. The restarts end with exactly one complete file.
//
// The file is byte-identical in the end, and the bytes fetched more than
// once are reported (and bounded by what was in flight at each kill).
func TestDownloadSurvivesKill9(t *testing.T) {
	bin := canopyBin(t) // built once for the package's tests
	dir := t.TempDir()

	// The supernode and the source run in this process; the downloader is
	// the binary.
	log := zap.NewNop()
	cfg := demo.NodeOptions(dir, "sn", log)
	cfg.Consent = promotion.ConsentAlways
	sn, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 7))
	t.Logf("random seed %d", seed)
	data := make([]byte, 24<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	share := filepath.Join(dir, "share")
	os.MkdirAll(share, 0o755)
	os.WriteFile(filepath.Join(share, "Kill Nine.bin"), data, 0o644)
	cfg = demo.NodeOptions(dir, "src", log)
	cfg.Consent, cfg.Join, cfg.Shares = promotion.ConsentNever, []string{sn.Control()}, []string{share}
	src, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	testwait.Until(t, 30*time.Second, func() bool {
		st := src.Status()
		return len(st.Supernodes) == 1 && st.Supernodes[0].Files == 1
	}, "the source's file never reached the index")
	m, err := content.Hash(bytes.NewReader(data), content.DefaultPieceSize)
	if err != nil {
		t.Fatal(err)
	}
	id := m.ID().String()

	data1 := filepath.Join(dir, "dl")
	apiAddr, out := freePort(t), filepath.Join(dir, "out")
	var proc *exec.Cmd
	var logs bytes.Buffer
	up := func(killAt string) {
		t.Helper()
		cmd := exec.Command(bin, "up", "--data", data1, "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--api", apiAddr,
			"--join", sn.Control(), "--supernode", "never", "--portmap=false", "--turn", "off", "--log-level", "info")
		cmd.Env = append(os.Environ(), killAtEnv+"="+killAt)
		fmt.Fprintf(&logs, "--- start (kill at %q)\n", killAt)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		proc = cmd
		waitAPI(t, apiAddr)
	}
	t.Cleanup(func() {
		if proc != nil && proc.ProcessState == nil {
			proc.Process.Kill()
			proc.Wait()
		}
		if t.Failed() {
			t.Logf("downloader output:\n%s", logs.String())
		}
	})
	kill9 := func() {
		t.Helper()
		if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		proc.Wait()
	}
	up("")
	tok, err := api.ReadTokenFile(data1)
	if err != nil {
		t.Fatal(err)
	}
	c := api.NewClient(apiAddr, tok)
	job := func() api.Download {
		t.Helper()
		var list []api.Download
		testwait.Until(t, 10*time.Second, func() bool {
			var err error
			list, err = c.Downloads(context.Background())
			return err == nil && len(list) == 1
		}, "no single job listed")
		return list[0]
	}

	// canopy get, then Ctrl-C once the job is downloading.
	get := exec.Command(bin, "get", "--api", apiAddr, "--data", data1, "--out", out, id)
	var getOut bytes.Buffer
	get.Stdout, get.Stderr = &getOut, &getOut
	if err := get.Start(); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 60*time.Second, func() bool {
		l, err := c.Downloads(context.Background())
		return err == nil && len(l) == 1 && l[0].Have > 0
	}, "the job never started downloading")
	get.Process.Signal(syscall.SIGINT)
	err = get.Wait()
	j := job()
	follow := fmt.Sprintf("canopy downloads follow %d", j.ID)
	if err == nil || !strings.Contains(getOut.String(), "detached") || !strings.Contains(getOut.String(), follow) {
		t.Fatalf("canopy get after Ctrl-C: %v %q, want a non-zero exit that says how to follow (%s)", err, getOut.String(), follow)
	}
	if j.State == api.DownloadDone {
		t.Fatal("the job finished before canopy get was interrupted")
	}
	have := j.Have
	testwait.Until(t, 60*time.Second, func() bool { j = job(); return j.Have > have || j.State == api.DownloadDone },
		"the job stopped with canopy get (%s, %d bytes)", j.State, j.Have)

	// kill -9 at random points of the transfer. A point already passed is
	// killed at once.
	kills := 0
	for _, frac := range []float64{0.15 + 0.2*rng.Float64(), 0.4 + 0.2*rng.Float64(), 0.65 + 0.2*rng.Float64()} {
		target := int64(frac * float64(len(data)))
		testwait.Until(t, 60*time.Second, func() bool { j = job(); return j.Have >= target || j.State == api.DownloadDone },
			"the job never reached %d bytes (%s, %d)", target, j.State, j.Have)
		if j.State == api.DownloadDone {
			t.Logf("the download finished before the kill at %.0f%%", 100*frac)
			break
		}
		kill9()
		kills++
		t.Logf("killed at %d of %d bytes (%.0f%%)", j.Have, len(data), 100*float64(j.Have)/float64(len(data)))
		up("")
	}

	// Killed while placing: first after the destination is recorded, then
	// between the link and the removal of the part file.
	dest := filepath.Join(out, "Kill Nine.bin")
	if j.State != api.DownloadDone {
		kill9()
		for _, step := range []string{"target-recorded", "linked"} {
			up(step)
			if err := waitExit(proc, 90*time.Second); err == nil {
				t.Fatalf("the node killed at %s exited cleanly", step)
			}
			kills++
			_, derr := os.Stat(dest)
			parts, _ := filepath.Glob(filepath.Join(out, "*"+downloads.PartSuffix))
			switch step {
			case "target-recorded":
				if derr == nil || len(parts) != 1 {
					t.Fatalf("killed with the destination recorded: destination %v, part files %v", derr, parts)
				}
			case "linked":
				if derr != nil || len(parts) != 1 {
					t.Fatalf("killed between link and removal: destination %v, part files %v; want both", derr, parts)
				}
			}
			t.Logf("killed at step %s", step)
		}
		up("")
	}
	testwait.Until(t, 60*time.Second, func() bool { j = job(); return j.State == api.DownloadDone || j.State == api.DownloadFailed },
		"the job never finished (%s)", j.State)
	if j.State != api.DownloadDone || j.Path != dest {
		t.Fatalf("job %s at %q: %s", j.State, j.Path, j.Reason)
	}
	got, err := os.ReadFile(dest)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the file differs from the one shared (%d of %d bytes): %v", len(got), len(data), err)
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("files in the destination: %v, want only %s", names, filepath.Base(dest))
	}
	// Each kill can lose at most the pieces in flight: the source's window.
	bound := int64(kills) * transfer.DefaultWindow * content.DefaultPieceSize
	t.Logf("%d kills; fetched %d bytes for a %d-byte file, %d fetched again (bound %d)", kills, j.Fetched, len(data), j.Refetched, bound)
	if j.Refetched > bound || j.Fetched-j.Refetched != int64(len(data)) {
		t.Fatalf("fetched %d, refetched %d for %d bytes: more than the %d in flight at %d kills", j.Fetched, j.Refetched, len(data), bound, kills)
	}

	// The list and follow of a done job.
	outJSON, err := exec.Command(bin, "downloads", "--api", apiAddr, "--data", data1, "--json").Output()
	var list []api.Download
	if err != nil || json.Unmarshal(outJSON, &list) != nil || len(list) != 1 || list[0].State != api.DownloadDone {
		t.Fatalf("canopy downloads --json: %v %s", err, outJSON)
	}
	if o, err := exec.Command(bin, "downloads", "follow", "--api", apiAddr, "--data", data1, fmt.Sprint(j.ID)).CombinedOutput(); err != nil || !strings.Contains(string(o), "verified") {
		t.Fatalf("canopy downloads follow of a done job: %v %s", err, o)
	}
	if o, err := exec.Command(bin, "downloads", "pause", "--api", apiAddr, "--data", data1, fmt.Sprint(j.ID)).CombinedOutput(); err == nil {
		t.Fatalf("canopy downloads pause of a done job: exit 0: %s", o)
	}
	proc.Process.Signal(syscall.SIGINT)
	if err := waitExit(proc, 20*time.Second); err != nil {
		t.Fatalf("the node did not stop cleanly: %v", err)
	}
}

// waitExit waits for cmd to exit and returns its error.
func waitExit(cmd *exec.Cmd, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		return errors.New("timed out")
	}
}
