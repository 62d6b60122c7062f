package transfer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/wire"
)

// copyAs writes the bytes of path to dir/name.
func copyAs(t *testing.T, path, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// A download the caller did not name is saved under the name the source
// that delivered it uses, not under the name most sources claim: three
// sources that call the file "invoice.pdf.exe" but deliver nothing
// verifiable lose against the one honest source. A name the caller gave
// is kept.
func TestFirstHandNameBeatsSybilVote(t *testing.T) {
	n := newTestNet()
	path := randomFile(t, t.TempDir(), "holiday.jpg", 1<<20)
	honestSrc := newMapSource()
	id := honestSrc.share(t, path)
	honest := newTestEngine(t, n, testEngineOpts{source: honestSrc})

	sybilSrc := newMapSource()
	sybilSrc.share(t, copyAs(t, path, t.TempDir(), "invoice.pdf.exe"))
	var sources []wire.Source
	for range 3 {
		s := newTestEngine(t, n, testEngineOpts{source: sybilSrc})
		s.corruptPiece = func(_ int, data []byte) { data[0] ^= 0xff }
		sources = append(sources, s.asSource())
	}
	sources = append(sources, honest.asSource())
	down := newTestEngine(t, n, testEngineOpts{})

	out := t.TempDir()
	res, err := down.Download(context.Background(), Request{Content: id, OutDir: out, Sources: sources})
	if err != nil {
		t.Fatal(err)
	}
	if got := filepath.Base(res.Path); got != "holiday.jpg" {
		t.Fatalf("saved as %q, want the delivering source's holiday.jpg", got)
	}
	sameFile(t, path, res.Path)
	for _, r := range res.Sources {
		switch {
		case r.Node == honest.self:
			if r.Name != "holiday.jpg" || r.Bytes != 1<<20 {
				t.Errorf("honest source reported %+v", r)
			}
		// A sybil still connecting when the file completed never answered,
		// and so gave no name.
		case r.Bytes != 0 || r.Name != "invoice.pdf.exe" && r.Name != "":
			t.Errorf("sybil reported %+v", r)
		}
	}

	// The caller's own choice (the hit the user picked) is kept.
	res, err = down.Download(context.Background(), Request{Content: id, Name: "picked.jpg", OutDir: out,
		Sources: []wire.Source{honest.asSource()}})
	if err != nil {
		t.Fatal(err)
	}
	if got := filepath.Base(res.Path); got != "picked.jpg" {
		t.Fatalf("saved as %q, want picked.jpg", got)
	}
}

// The rule itself: most verified bytes, ties to the source listed first,
// sources that delivered nothing or gave no name ignored.
func TestFirstHandName(t *testing.T) {
	var a, b, c identity.NodeID
	a[0], b[0], c[0] = 1, 2, 3
	sources := []wire.Source{{Node: a}, {Node: b}, {Node: c}}
	for _, tc := range []struct {
		name    string
		reports []SourceReport
		want    string
	}{
		{"most bytes", []SourceReport{{Node: a, Name: "x", Bytes: 10, Pieces: 1}, {Node: b, Name: "y", Bytes: 20, Pieces: 2}}, "y"},
		{"tie to the first listed", []SourceReport{{Node: c, Name: "z", Bytes: 10, Pieces: 1}, {Node: b, Name: "y", Bytes: 10, Pieces: 1}}, "y"},
		{"nothing delivered", []SourceReport{{Node: a, Name: "x"}, {Node: b, Name: "y", Bytes: 1, Pieces: 1}}, "y"},
		{"no name", []SourceReport{{Node: a, Bytes: 10, Pieces: 1}, {Node: b, Name: "y", Bytes: 1, Pieces: 1}}, "y"},
		{"none", []SourceReport{{Node: a, Bytes: 10, Pieces: 1}}, ""},
	} {
		if got := firstHandName(sources, tc.reports); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// boundName keeps a short extension when it cuts, and cleans.
func TestBoundName(t *testing.T) {
	long := strings.Repeat("ü", 200) + ".flac"
	got := boundName(long)
	if len(got) > wire.MaxSignalNameBytes || !strings.HasSuffix(got, "ü.flac") {
		t.Errorf("boundName(long) = %q (%d bytes)", got, len(got))
	}
	if got := boundName("a\u202eb\nc"); got != "a\ufffdb\ufffdc" {
		t.Errorf("boundName = %q", got)
	}
}

// FuzzBoundName: whatever a peer sends, the name kept is within its bound,
// valid UTF-8, and sanitizes to a usable file name.
func FuzzBoundName(f *testing.F) {
	f.Add("holiday.jpg")
	f.Add(strings.Repeat("é", 300) + ".mkv")
	f.Add("a\u202egpj.exe\x00\n")
	f.Add("\xff\xfe")
	f.Fuzz(func(t *testing.T, name string) {
		got := boundName(name)
		if len(got) > wire.MaxSignalNameBytes || !utf8.ValidString(got) {
			t.Fatalf("boundName(%q) = %q", name, got)
		}
		var id [32]byte
		s := sanitizeName(got, id)
		if s == "" || strings.ContainsAny(s, "/\\\x00") || len(s) > maxNameBytes {
			t.Fatalf("sanitizeName(boundName(%q)) = %q", name, s)
		}
	})
}
