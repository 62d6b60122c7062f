package transfer

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/wire"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestDownloadOneSource(t *testing.T) {
	n := newTestNet()
	src := newMapSource()
	path := randomFile(t, t.TempDir(), "five.bin", 5<<20)
	id := src.share(t, path)
	up := newTestEngine(t, n, testEngineOpts{source: src})
	down := newTestEngine(t, n, testEngineOpts{})

	out := t.TempDir()
	var last Progress
	calls := 0
	// While pieces arrive, the download runs and the upload holds a slot.
	var downsRunning, upsRunning int
	res, err := down.Download(context.Background(), Request{
		Content: id, Name: "five.bin", Size: 5 << 20, OutDir: out,
		Sources: []wire.Source{up.asSource()},
		Progress: func(p Progress) {
			last = p
			calls++
			if p.Pieces > 0 && downsRunning == 0 {
				downsRunning, upsRunning = down.Stats().Downloads, up.Stats().Uploads
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(out, "five.bin"); res.Path != want {
		t.Fatalf("path %s, want %s", res.Path, want)
	}
	sameFile(t, path, res.Path)
	noPartFiles(t, out)
	if res.Size != 5<<20 || len(res.Sources) != 1 || res.Sources[0].Pieces != 20 || res.Sources[0].Bytes != 5<<20 {
		t.Fatalf("result %+v", res)
	}
	if calls == 0 || last.Have != 5<<20 || last.Pieces != 20 || last.PieceCount != 20 || last.Rate <= 0 {
		t.Fatalf("last progress %+v after %d calls", last, calls)
	}
	if downsRunning != 1 || upsRunning != 1 {
		t.Fatalf("while pieces arrived: %d downloads and %d uploads running, want 1 and 1", downsRunning, upsRunning)
	}
	if s := up.Stats(); s.PiecesServed != 20 || s.UploadsAccepted != 1 || s.UploadedDirect != 5<<20 || s.UploadedRelayed != 0 {
		t.Fatalf("uploader stats %+v", s)
	}
	// Every piece verified and its bytes counted on the path the pieces
	// took (host candidates on loopback: direct); nothing runs any more.
	if s := down.Stats(); s.PiecesVerified != 20 || s.BadPieces != 0 || s.DownloadedDirect != 5<<20 || s.DownloadedRelayed != 0 || s.Downloads != 0 {
		t.Fatalf("downloader stats %+v", s)
	}
	// The upload session ends when the downloader closes its channel.
	testwait.Until(t, 10*time.Second, func() bool { return up.Stats().Uploads == 0 }, "the upload still holds its slot")

	// The same file again lands beside the first, never over it.
	res2, err := down.Download(context.Background(), Request{
		Content: id, Name: "five.bin", OutDir: out, Sources: []wire.Source{up.asSource()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(out, "five (1).bin"); res2.Path != want {
		t.Fatalf("second path %s, want %s", res2.Path, want)
	}
	sameFile(t, path, res2.Path)
}

func TestDownloadMultiSource(t *testing.T) {
	n := newTestNet()
	dir := t.TempDir()
	path := randomFile(t, dir, "big.bin", 12<<20)
	src := newMapSource()
	id := src.share(t, path)
	a := newTestEngine(t, n, testEngineOpts{source: src})
	b := newTestEngine(t, n, testEngineOpts{source: src})
	// A small window spreads the pieces over both sources even if one
	// connects a little later.
	down := newTestEngine(t, n, testEngineOpts{config: func(c *Config) { c.Window = 2 }})

	res, err := down.Download(context.Background(), Request{
		Content: id, Name: "big.bin", OutDir: t.TempDir(),
		Sources: []wire.Source{a.asSource(), b.asSource()},
	})
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, path, res.Path)
	total := 0
	for _, r := range res.Sources {
		if r.Pieces == 0 || r.Bad || r.Err != "" {
			t.Errorf("source %s: %+v", r.Node.Short(), r)
		}
		total += r.Pieces
	}
	if len(res.Sources) != 2 || total != 48 {
		t.Fatalf("sources %+v", res.Sources)
	}
}

func TestLyingSource(t *testing.T) {
	n := newTestNet()
	path := randomFile(t, t.TempDir(), "f.bin", 4<<20)
	src := newMapSource()
	id := src.share(t, path)
	liar := newTestEngine(t, n, testEngineOpts{source: src})
	liar.corruptPiece = func(i int, data []byte) {
		if i == 3 {
			data[100] ^= 0xff
		}
	}
	honest := newTestEngine(t, n, testEngineOpts{source: src})
	core, logs := observer.New(zap.WarnLevel)
	// One source at a time makes the order certain: the liar serves pieces
	// 0-2, lies on piece 3 and is dropped; the honest spare finishes.
	down := newTestEngine(t, n, testEngineOpts{logger: zap.New(core),
		config: func(c *Config) { c.MaxSourcesPerDownload = 1 }})

	out := t.TempDir()
	res, err := down.Download(context.Background(), Request{
		Content: id, Name: "f.bin", OutDir: out,
		Sources: []wire.Source{liar.asSource(), honest.asSource()},
	})
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, path, res.Path)
	if len(res.Sources) != 2 {
		t.Fatalf("reports %+v", res.Sources)
	}
	for _, r := range res.Sources {
		switch r.Node {
		case liar.self:
			if !r.Bad || r.Pieces != 3 || !strings.Contains(r.Err, "verification") {
				t.Errorf("liar report %+v", r)
			}
		case honest.self:
			if r.Bad || r.Err != "" || r.Pieces != 13 {
				t.Errorf("honest report %+v", r)
			}
		}
	}
	if s := down.Stats(); s.BadSources != 1 || s.BadPieces != 1 {
		t.Errorf("stats %+v", s)
	}
	warned := logs.FilterMessage("dropping bad source").All()
	if len(warned) != 1 || !strings.Contains(warned[0].ContextMap()["error"].(string), "hash mismatch") {
		t.Errorf("warn logs %+v", logs.All())
	}
}

func TestManifestMismatch(t *testing.T) {
	n := newTestNet()
	dir := t.TempDir()
	real := randomFile(t, dir, "real.bin", 1<<20)
	other := randomFile(t, dir, "other.bin", 1<<20)
	rm, _ := content.HashFile(real, 0)
	om, _ := content.HashFile(other, 0)
	liarSrc := newMapSource()
	liarSrc.shareAs(rm.ID(), om, other) // claims to have real.bin, serves other.bin
	liar := newTestEngine(t, n, testEngineOpts{source: liarSrc})
	down := newTestEngine(t, n, testEngineOpts{})

	out := t.TempDir()
	res, err := down.Download(context.Background(), Request{
		Content: rm.ID(), Name: "real.bin", OutDir: out, Sources: []wire.Source{liar.asSource()},
	})
	if !errors.Is(err, ErrNoSources) || !errors.Is(err, ErrBadManifest) {
		t.Fatalf("err = %v, want ErrNoSources and ErrBadManifest", err)
	}
	if len(res.Sources) != 1 || !res.Sources[0].Bad {
		t.Fatalf("reports %+v", res.Sources)
	}
	if s := down.Stats(); s.BadManifests != 1 || s.BadSources != 1 {
		t.Fatalf("stats %+v", s)
	}
	noPartFiles(t, out)
	if _, err := os.Stat(filepath.Join(out, "real.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file created: %v", err)
	}
}

func TestNoSourceHasFile(t *testing.T) {
	n := newTestNet()
	empty := newTestEngine(t, n, testEngineOpts{source: newMapSource()})
	down := newTestEngine(t, n, testEngineOpts{})
	var id content.ID
	rand.Read(id[:])
	unknown := wire.Source{Node: identity.NodeID{1, 2, 3}}
	out := t.TempDir()

	start := time.Now()
	_, err := down.Download(context.Background(), Request{
		Content: id, Name: "x", OutDir: out, Sources: []wire.Source{empty.asSource(), unknown},
	})
	if !errors.Is(err, ErrNoSources) || !errors.Is(err, ErrRefused) || !errors.Is(err, ErrConnect) {
		t.Fatalf("err = %v, want ErrNoSources wrapping ErrRefused and ErrConnect", err)
	}
	if !strings.Contains(err.Error(), "not shared") {
		t.Fatalf("err = %v, want the reason", err)
	}
	// A refusal is signalled back, so this does not wait for ConnectTimeout.
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	noPartFiles(t, out)

	_, err = down.Download(context.Background(), Request{Content: id, Name: "x", OutDir: out})
	if !errors.Is(err, ErrNoSources) {
		t.Fatalf("no sources: err = %v", err)
	}
	_, err = down.Download(context.Background(), Request{Name: "x", OutDir: out})
	if !errors.Is(err, ErrBadRequest) {
		t.Fatalf("zero id: err = %v", err)
	}
}

func TestCancelRemovesTempFile(t *testing.T) {
	t.Run("while connecting", func(t *testing.T) {
		n := newTestNet()
		down := newTestEngine(t, n, testEngineOpts{})
		lost := identity.NodeID{9}
		n.blackhole[lost] = true
		var id content.ID
		rand.Read(id[:])
		out := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := down.Download(ctx, Request{Content: id, Name: "x", OutDir: out,
			Sources: []wire.Source{{Node: lost}}})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		noPartFiles(t, out)
	})
	t.Run("midway", func(t *testing.T) {
		n := newTestNet()
		src := newMapSource()
		id := src.share(t, randomFile(t, t.TempDir(), "f", 8<<20))
		up := newTestEngine(t, n, testEngineOpts{source: src})
		down := newTestEngine(t, n, testEngineOpts{config: func(c *Config) { c.Window = 1 }})
		out := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var seen Progress
		_, err := down.Download(ctx, Request{Content: id, Name: "f", OutDir: out,
			Sources: []wire.Source{up.asSource()},
			Progress: func(p Progress) {
				if p.Have > 0 {
					seen = p
					cancel()
				}
			}})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		if seen.Have == 0 || seen.Have == seen.Total {
			t.Fatalf("cancelled at %+v, want midway", seen)
		}
		noPartFiles(t, out)
		if _, err := os.Stat(filepath.Join(out, "f")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("file created: %v", err)
		}
	})
}

func TestStaleSharedFile(t *testing.T) {
	n := newTestNet()
	path := randomFile(t, t.TempDir(), "f", 1<<20)
	src := newMapSource()
	id := src.share(t, path)
	// The file changes on disk after it was hashed.
	randomFile(t, filepath.Dir(path), "f", 1<<20)
	up := newTestEngine(t, n, testEngineOpts{source: src, logger: zap.NewNop()})
	down := newTestEngine(t, n, testEngineOpts{})
	_, err := down.Download(context.Background(), Request{Content: id, Name: "f", OutDir: t.TempDir(),
		Sources: []wire.Source{up.asSource()}})
	if !errors.Is(err, ErrSourceFailed) || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("err = %v", err)
	}
	if s := up.Stats(); s.StalePieces == 0 || s.PiecesServed != 0 {
		t.Fatalf("uploader stats %+v", s)
	}
}

func TestEmptyFile(t *testing.T) {
	n := newTestNet()
	down := newTestEngine(t, n, testEngineOpts{})
	m := content.Manifest{PieceSize: content.DefaultPieceSize}
	out := t.TempDir()
	res, err := down.Download(context.Background(), Request{Content: m.ID(), Name: "empty.txt", OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(res.Path)
	if err != nil || fi.Size() != 0 || res.Path != filepath.Join(out, "empty.txt") {
		t.Fatalf("%+v %v %v", res, fi, err)
	}
}

func TestBadSignalsIgnored(t *testing.T) {
	n := newTestNet()
	src := newMapSource()
	id := src.share(t, randomFile(t, t.TempDir(), "f", 64<<10))
	up := newTestEngine(t, n, testEngineOpts{source: src})
	peer, _ := identity.Generate()
	other, _ := identity.Generate()

	signed := func(mut func(*wire.Signal), signer *identity.Identity) wire.Signal {
		s := wire.Signal{From: peer.ID, To: up.self, Kind: wire.SignalOffer, Data: "v=0",
			Content: id, PubKey: peer.Public}
		rand.Read(s.Session[:])
		if mut != nil {
			mut(&s)
		}
		s.Sig = signer.Sign(s.SignedBytes())
		return s
	}
	cases := map[string]wire.Signal{
		"signed by another key": signed(nil, other),
		"key of another node":   signed(func(s *wire.Signal) { s.PubKey = other.Public }, other),
		"tampered after signing": func() wire.Signal {
			s := signed(nil, peer)
			s.Data = "v=0 tampered"
			return s
		}(),
		"no signature": func() wire.Signal {
			s := signed(nil, peer)
			s.Sig = nil
			return s
		}(),
		"addressed to another node":  signed(func(s *wire.Signal) { s.To = other.ID }, peer),
		"answer for unknown session": signed(func(s *wire.Signal) { s.Kind = wire.SignalAnswer }, peer),
	}
	for name, s := range cases {
		before := up.Stats().SignalsDropped
		up.HandleSignal(s)
		if got := up.Stats().SignalsDropped; got != before+1 {
			t.Errorf("%s: not dropped", name)
		}
	}
	if s := up.Stats(); s.UploadsAccepted != 0 || s.UploadsRefused != 0 {
		t.Fatalf("a bad signal started a session: %+v", s)
	}
	up.mu.Lock()
	sessions := len(up.sessions)
	up.mu.Unlock()
	if sessions != 0 {
		t.Fatalf("%d sessions", sessions)
	}
}

func TestSanitizeName(t *testing.T) {
	var id content.ID
	id[0] = 0xab
	long := strings.Repeat("é", 150) + ".mkv"
	for _, c := range []struct{ in, want string }{
		{"song.mp3", "song.mp3"},
		{"../../etc/passwd", "_.._etc_passwd"},
		{"a/b\\c", "a_b_c"},
		{"..", id.String()},
		{"", id.String()},
		{" . ", id.String()},
		{"tab\there", "tab_here"},
		{"what?.txt", "what_.txt"},
		{"\xff\xfe.bin", "__.bin"},
		// A right-to-left override would show "photo\u202egpj.exe" as
		// "photoexe.jpg"; zero-width characters hide what a name says.
		{"photo\u202egpj.exe", "photo_gpj.exe"},
		{"zero\u200bwidth.txt", "zero_width.txt"},
	} {
		if got := sanitizeName(c.in, id); got != c.want {
			t.Errorf("sanitizeName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	got := sanitizeName(long, id)
	if len(got) > maxNameBytes || !strings.HasSuffix(got, ".mkv") || !strings.HasPrefix(got, "éé") {
		t.Errorf("long name: %q (%d bytes)", got, len(got))
	}
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{{"a.txt", 0, "a.txt"}, {"a.txt", 2, "a (2).txt"}, {"a", 1, "a (1)"}, {".profile", 1, ".profile (1)"}} {
		if got := numberedName(c.in, c.n); got != c.want {
			t.Errorf("numberedName(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func TestCloseStopsDownload(t *testing.T) {
	n := newTestNet()
	down := newTestEngine(t, n, testEngineOpts{})
	lost := identity.NodeID{7}
	n.blackhole[lost] = true
	var id content.ID
	rand.Read(id[:])
	out := t.TempDir()
	errc := make(chan error, 1)
	go func() {
		_, err := down.Download(context.Background(), Request{Content: id, Name: "x", OutDir: out,
			Sources: []wire.Source{{Node: lost}}})
		errc <- err
	}()
	// Wait until the download registered its session, then close.
	testwait.Until(t, 10*time.Second, func() bool {
		down.mu.Lock()
		defer down.mu.Unlock()
		return len(down.sessions) > 0
	}, "the download never registered its session")
	down.Close()
	down.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
	noPartFiles(t, out)
	if _, err := down.Download(context.Background(), Request{Content: id, OutDir: out}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}
