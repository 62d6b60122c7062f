package node_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/canopy-p2p/canopy/demo"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/quarantine"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/node"
	"github.com/canopy-p2p/canopy/promotion"
)

// healOptions is a leaf on loopback with no seeds and no role loop, sharing
// share.
func healOptions(dir, share string, log *zap.Logger) node.Config {
	cfg := demo.NodeOptions(dir, "n", log)
	cfg.Consent, cfg.RoleInterval, cfg.Shares = promotion.ConsentNever, node.NoRoleLoop, []string{share}
	return cfg
}

// TestStartHealsRecomputableState: measured on main, a library database
// with its first 8 KiB overwritten stopped the node at start. Every file of
// the data directory that the node can recompute (the library database, the
// host cache, the role history) is, when damaged, moved aside with a single
// WARN line saying why and where, and the node starts, as the same node, and
// shares its files again.
func TestStartHealsRecomputableState(t *testing.T) {
	dir := t.TempDir()
	share := filepath.Join(dir, "share")
	if err := os.MkdirAll(share, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(share, "song.txt"), bytes.Repeat([]byte("la "), 4000), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(context.Background(), healOptions(dir, share, zap.NewNop()))
	if err != nil {
		t.Fatal(err)
	}
	id := n.ID()
	if _, err := n.Rescan(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.Close()

	data := filepath.Join(dir, "n", "data")
	db := filepath.Join(data, "library.db")
	b, err := os.ReadFile(db)
	if err != nil || len(b) <= 8<<10 {
		t.Fatalf("library database: %d bytes, %v; the test needs more than 8 KiB", len(b), err)
	}
	rand.Read(b[:8<<10])
	damaged := map[string][]byte{
		db:                                b,
		filepath.Join(data, "hosts.json"): []byte(`[{"id":"not a node id","control":"192.0.2.1:7373"}`),
		filepath.Join(data, "role.json"):  []byte("\x00\x00\x00\x00"),
	}
	for path, content := range damaged {
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	core, logs := observer.New(zapcore.WarnLevel)
	n, err = node.Start(context.Background(), healOptions(dir, share, zap.New(core)))
	if err != nil {
		t.Fatalf("the node did not start with damaged recomputable state: %v", err)
	}
	defer n.Close()
	if n.ID() != id {
		t.Fatal("the node started as another node")
	}
	if r, ok := n.Library().Recovered(); !ok || !strings.HasPrefix(r.MovedTo, db+quarantine.Marker) {
		t.Fatalf("the library reports no recovery: %+v", r)
	}
	for path, content := range damaged {
		copies, err := quarantine.List(path)
		if err != nil || len(copies) != 1 {
			t.Fatalf("%s: copies %v, %v; want one", filepath.Base(path), copies, err)
		}
		if got, _ := os.ReadFile(copies[0]); !bytes.Equal(got, content) {
			t.Fatalf("%s does not hold the damaged file", copies[0])
		}
		var lines []string
		for _, e := range logs.All() {
			if strings.Contains(e.Message+" "+contextText(e), copies[0]) {
				lines = append(lines, e.Message)
			}
		}
		if len(lines) != 1 {
			t.Fatalf("%s: %d WARN lines name where it went, want one: %q", filepath.Base(path), len(lines), lines)
		}
	}
	// The scan at start refills the library from the share.
	testwait.Until(t, 10*time.Second, func() bool {
		entries, err := n.Library().Entries()
		return err == nil && len(entries) == 1
	}, "the library was not refilled from the share")
}

// contextText is an entry's fields as text, for a search.
func contextText(e observer.LoggedEntry) string {
	var s strings.Builder
	for k, v := range e.ContextMap() {
		s.WriteString(k)
		s.WriteString("=")
		if err, ok := v.(error); ok {
			s.WriteString(err.Error())
		} else if str, ok := v.(string); ok {
			s.WriteString(str)
		}
		s.WriteString(" ")
	}
	return s.String()
}

// TestStartRefusesDamagedKey: the key cannot be recomputed. Measured on
// main, one base64 character changed in node.key started the node silently
// as another node; now the node does not start, says why and which file, and
// leaves the file as it was.
func TestStartRefusesDamagedKey(t *testing.T) {
	dir := t.TempDir()
	share := filepath.Join(dir, "share")
	n, err := node.Start(context.Background(), healOptions(dir, share, zap.NewNop()))
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
	path := filepath.Join(dir, "n", "data", identity.KeyFileName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// One character of the base64 key, on the line after the blank one.
	i := bytes.Index(b, []byte("\n\n")) + 5
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := node.Start(context.Background(), healOptions(dir, share, zap.NewNop())); err == nil {
		n.Close()
		t.Fatal("the node started with a damaged key")
	} else if !errors.Is(err, identity.ErrKeyFileDamaged) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Start = %v, want ErrKeyFileDamaged naming %s", err, path)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, b) {
		t.Fatal("the damaged key file was changed")
	}
}
