package downloads

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/quarantine"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/transfer"
	"github.com/canopy-p2p/canopy/wire"
)

// fileFetcher stands in for the transfer engine where the network is not
// what a test is about (the node's tests run the real one): it "fetches"
// files it holds by writing them through the Resume hooks as the engine
// does, or fails as a download whose sources all failed.
type fileFetcher struct {
	mu    sync.Mutex
	files map[content.ID][]byte
	fail  bool
	calls int
}

func (f *fileFetcher) add(t *testing.T, data []byte) content.ID {
	m, err := content.Hash(bytes.NewReader(data), content.MinPieceSize)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[m.ID()] = data
	return m.ID()
}

func (f *fileFetcher) Download(ctx context.Context, req transfer.Request) (transfer.Result, error) {
	f.mu.Lock()
	f.calls++
	data, fail := f.files[req.Content], f.fail
	f.mu.Unlock()
	if fail || data == nil {
		return transfer.Result{}, fmt.Errorf("%w: test source gone", transfer.ErrNoSources)
	}
	m, _ := content.Hash(bytes.NewReader(data), content.MinPieceSize)
	rs := req.Resume
	if rs.Manifest == nil {
		if err := rs.OnManifest(m); err != nil {
			return transfer.Result{}, err
		}
	}
	file, err := os.OpenFile(rs.Part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return transfer.Result{}, err
	}
	defer file.Close()
	var wrote []int
	for i := range m.PieceCount() {
		if rs.Held != nil && rs.Held[i] {
			continue
		}
		off := m.PieceOffset(i)
		if _, err := file.WriteAt(data[off:off+int64(m.PieceLen(i))], off); err != nil {
			return transfer.Result{}, err
		}
		wrote = append(wrote, i)
	}
	file.Truncate(m.Size)
	file.Sync()
	if err := rs.Synced(wrote); err != nil {
		return transfer.Result{}, err
	}
	return transfer.Result{Path: rs.Part, Name: "file.bin", Size: m.Size}, nil
}

// testSources names a source, which fileFetcher never dials.
var testSources = []wire.Source{{Node: identity.NodeID{9}}}

func newFetcher() *fileFetcher { return &fileFetcher{files: map[content.ID][]byte{}} }

func openTest(t *testing.T, cfg Config) *Manager {
	t.Helper()
	m, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func waitState(t *testing.T, m *Manager, id int64, want State) Job {
	t.Helper()
	var j Job
	testwait.Until(t, 10*time.Second, func() bool {
		j, _ = m.Get(id)
		return j.State == want && !j.Running
	}, "job %d never %s", id, want)
	return j
}

// TestHistoryBound: finished jobs beyond MaxHistory go, oldest first, from
// the list and the database.
func TestHistoryBound(t *testing.T) {
	dir := t.TempDir()
	f := newFetcher()
	cfg := Config{DBPath: filepath.Join(dir, DBName), Fetcher: f, MaxHistory: 2}
	m := openTest(t, cfg)
	out := t.TempDir()
	var ids []int64
	for i := range 4 {
		id := f.add(t, bytes.Repeat([]byte{byte(i)}, 100_000))
		j, _, err := m.Enqueue(Request{Content: id, Name: fmt.Sprintf("f%d.bin", i), OutDir: out, Sources: testSources})
		if err != nil {
			t.Fatal(err)
		}
		waitState(t, m, j.ID, Done)
		ids = append(ids, j.ID)
	}
	check := func(m *Manager) {
		t.Helper()
		list := m.List()
		if len(list) != 2 || list[0].ID != ids[2] || list[1].ID != ids[3] {
			t.Fatalf("history %+v, want jobs %v", list, ids[2:])
		}
	}
	check(m)
	m.Close()
	check(openTest(t, cfg))
}

// TestAutomaticRetry: a job whose sources all fail is queued again by
// itself, MaxRetries times, then fails with the reason; a retry by the user
// starts the count again.
func TestAutomaticRetry(t *testing.T) {
	f := newFetcher()
	f.fail = true
	m := openTest(t, Config{DBPath: filepath.Join(t.TempDir(), DBName), Fetcher: f, MaxRetries: 2, RetryDelay: time.Millisecond})
	j, _, err := m.Enqueue(Request{Content: content.ID{1}, OutDir: t.TempDir(), Sources: testSources})
	if err != nil {
		t.Fatal(err)
	}
	got := waitState(t, m, j.ID, Failed)
	if f.calls != 3 || !strings.Contains(got.Reason, "no source could deliver") {
		t.Fatalf("%d runs, reason %q; want 3 runs and the sources' failure", f.calls, got.Reason)
	}
	if _, err := m.Do(j.ID, Retry); err != nil {
		t.Fatal(err)
	}
	waitState(t, m, j.ID, Failed)
	if f.calls != 6 {
		t.Fatalf("%d runs after a retry, want 6", f.calls)
	}
	// Asking for the file again retries the failed job, not a new one.
	again, existing, err := m.Enqueue(Request{Content: content.ID{1}, OutDir: got.OutDir, Sources: testSources})
	if err != nil || !existing || again.ID != j.ID {
		t.Fatalf("enqueue of a failed job's file: %+v %v %v", again, existing, err)
	}
	waitState(t, m, j.ID, Failed)
	if f.calls != 9 || len(m.List()) != 1 {
		t.Fatalf("%d runs, %d jobs after the new request", f.calls, len(m.List()))
	}
}

// TestDefaultRetryWait: with the default timers, the first automatic retry
// waits DefaultRetryDelay, and says so.
func TestDefaultRetryWait(t *testing.T) {
	f := newFetcher()
	f.fail = true
	m := openTest(t, Config{DBPath: filepath.Join(t.TempDir(), DBName), Fetcher: f})
	start := time.Now()
	j, _, err := m.Enqueue(Request{Content: content.ID{1}, OutDir: t.TempDir(), Sources: testSources})
	if err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.calls == 2
	}, "no automatic retry")
	if waited := time.Since(start); waited < DefaultRetryDelay {
		t.Fatalf("retried after %s, before DefaultRetryDelay", waited)
	}
	got, _ := m.Get(j.ID)
	if got.State.Finished() {
		t.Fatalf("job %s after one retry", got.State)
	}
}

// TestDamagedDatabase: a database SQLite cannot read is moved aside and the
// node starts with what could be saved of it: the rows that still decode,
// whose part files are then verified rather than trusted.
func TestDamagedDatabase(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, DBName)
	f := newFetcher()
	f.fail = true
	cfg := Config{DBPath: path, Fetcher: f, MaxRetries: NoRetries}
	m := openTest(t, cfg)
	out := t.TempDir()
	var ids []int64
	for i := range 3 {
		j, _, err := m.Enqueue(Request{Content: content.ID{byte(i + 1)}, Name: fmt.Sprintf("j%d", i), OutDir: out, Sources: testSources})
		if err != nil {
			t.Fatal(err)
		}
		waitState(t, m, j.ID, Failed)
		ids = append(ids, j.ID)
	}
	m.Close()

	// One row damaged: a state this program never writes.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE jobs SET state = 'lost' WHERE id = ?`, ids[1]); err != nil {
		t.Fatal(err)
	}
	db.Close()
	core, logs := observer.New(zap.WarnLevel)
	cfg.Logger = zap.New(core)
	m = openTest(t, cfg)
	list := m.List()
	if len(list) != 2 || list[0].ID != ids[0] || list[1].ID != ids[2] || list[1].Name != "j2" {
		t.Fatalf("after the damage: %+v, want jobs %d and %d", list, ids[0], ids[2])
	}
	w := logs.FilterMessageSnippet("downloads database damaged").All()
	if len(w) != 1 || w[0].ContextMap()["jobs_saved"] != int64(2) || w[0].ContextMap()["jobs_lost"] != int64(1) {
		t.Fatalf("warnings: %+v", logs.All())
	}
	// The saved jobs are stored under their own IDs: a new job does not
	// take one of theirs.
	nj, _, err := m.Enqueue(Request{Content: content.ID{9}, OutDir: out, Sources: testSources})
	if err != nil || nj.ID <= ids[2] {
		t.Fatalf("new job %d after the salvage: %v", nj.ID, err)
	}
	m.Close()
	m = openTest(t, cfg)
	if got := len(m.List()); got != 3 {
		t.Fatalf("%d jobs after a reopen, want 3", got)
	}
	moved, _ := filepath.Glob(path + quarantine.Marker + "*")
	if len(moved) == 0 {
		t.Fatal("the damaged database was not kept")
	}
	m.Close()

	// Not a database at all: nothing to save, but the node starts.
	os.WriteFile(path, []byte("this is not SQLite, it is a text file long enough to have a header of a hundred bytes ............"), 0o600)
	os.Remove(path + "-wal")
	m = openTest(t, Config{DBPath: path, Fetcher: f})
	if len(m.List()) != 0 {
		t.Fatalf("jobs from a text file: %+v", m.List())
	}
}

// TestPartRecordTrusted: a part file left as its record says is trusted
// without reading it; one changed since is verified piece by piece.
func TestPartRecordTrusted(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("0123456789abcdef"), 10_000)
	m, _ := content.Hash(bytes.NewReader(data), content.MinPieceSize)
	part := filepath.Join(dir, "part")
	os.WriteFile(part, data, 0o644)
	held, err := verifyPart(part, &m, nil, nil, nil)
	if err != nil || held.count() != m.PieceCount() {
		t.Fatalf("intact part: %d of %d held, %v", held.count(), m.PieceCount(), err)
	}
	st, ok, err := stampOf(part)
	if err != nil || !ok {
		t.Fatal(err)
	}
	fh, _ := os.OpenFile(part, os.O_RDWR, 0)
	fh.WriteAt([]byte{'X'}, int64(content.MinPieceSize)+5)
	fh.Close()
	st2, _, _ := stampOf(part)
	if st2 == st {
		t.Fatal("an edit left the stamp as it was")
	}
	held, _ = verifyPart(part, &m, nil, nil, nil)
	if held.count() != m.PieceCount()-1 || held.has(1) {
		t.Fatalf("edited piece 1: held %d of %d, piece 1 %v", held.count(), m.PieceCount(), held.has(1))
	}
	os.Truncate(part, 10)
	if held, _ = verifyPart(part, &m, nil, nil, nil); held.count() != 0 {
		t.Fatalf("truncated part holds %d pieces", held.count())
	}
	if ok, _ := verifyWhole(part, &m, nil); ok {
		t.Fatal("a truncated file verified whole")
	}
	if _, ok, err := stampOf(filepath.Join(dir, "none")); ok || err != nil {
		t.Fatalf("missing file: %v %v", ok, err)
	}
	if !errors.Is(Config{}.withDefaults().Validate(), ErrConfig) {
		t.Fatal("an empty Config validates")
	}
}
