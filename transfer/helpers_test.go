package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/nat/ice"
	"github.com/canopy-p2p/canopy/wire"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// testNet stands in for the supernodes: it delivers each signal straight to
// the HandleSignal of the engine it is addressed to.
type testNet struct {
	mu      sync.Mutex
	engines map[identity.NodeID]*Engine
	// blackhole swallows signals to these nodes, as a lost peer would.
	blackhole map[identity.NodeID]bool
}

func newTestNet() *testNet {
	return &testNet{engines: map[identity.NodeID]*Engine{}, blackhole: map[identity.NodeID]bool{}}
}

var errUnreachable = errors.New("test: node unreachable")

func (n *testNet) signal(ctx context.Context, s wire.Signal) error {
	n.mu.Lock()
	e, hole := n.engines[s.To], n.blackhole[s.To]
	n.mu.Unlock()
	switch {
	case hole:
		return nil
	case e == nil:
		return errUnreachable
	}
	e.HandleSignal(s)
	return nil
}

// mapSource is a PieceSource over a fixed set of files.
type mapSource struct {
	mu    sync.Mutex
	files map[content.ID]sharedFile
}

type sharedFile struct {
	m    content.Manifest
	path string
}

func newMapSource() *mapSource { return &mapSource{files: map[content.ID]sharedFile{}} }

func (s *mapSource) Manifest(id content.ID) (content.Manifest, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[id]
	if !ok {
		return content.Manifest{}, "", errors.New("not shared")
	}
	return f.m, f.path, nil
}

// share hashes path and serves it under its content ID.
func (s *mapSource) share(t testing.TB, path string) content.ID {
	t.Helper()
	m, err := content.HashFile(path, content.DefaultPieceSize)
	if err != nil {
		t.Fatal(err)
	}
	s.shareAs(m.ID(), m, path)
	return m.ID()
}

// shareAs serves (m, path) under id, whether they match or not.
func (s *mapSource) shareAs(id content.ID, m content.Manifest, path string) {
	s.mu.Lock()
	s.files[id] = sharedFile{m: m, path: path}
	s.mu.Unlock()
}

// testEngineOpts tunes newTestEngine.
type testEngineOpts struct {
	source PieceSource
	logger *zap.Logger
	config func(*Config)
}

// newTestEngine starts an engine on loopback-only WebRTC, attached to n.
func newTestEngine(t testing.TB, n *testNet, o testEngineOpts) *Engine {
	t.Helper()
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	api, wc := ice.NewAPI(ice.Config{LoopbackOnly: true})
	log := o.logger
	if log == nil {
		if tt, ok := t.(*testing.T); ok {
			log = zaptest.NewLogger(tt, zaptest.Level(zap.WarnLevel))
		}
	}
	cfg := Config{Identity: id, API: api, WebRTC: wc, Signal: n.signal, Source: o.source, Logger: log}
	if o.config != nil {
		o.config(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	n.engines[id.ID] = e
	n.mu.Unlock()
	t.Cleanup(func() { e.Close() })
	return e
}

func (e *Engine) asSource() wire.Source { return wire.Source{Node: e.self} }

// randomFile writes size random bytes to dir/name.
func randomFile(t testing.TB, dir, name string, size int) string {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func sameFile(t testing.TB, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Fatalf("%s and %s differ (%d and %d bytes)", a, b, len(x), len(y))
	}
}

// noPartFiles fails if a temporary download file is left in dir.
func noPartFiles(t testing.TB, dir string) {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*"+partSuffix))
	if len(m) > 0 {
		t.Fatalf("temporary files left behind: %v", m)
	}
}
