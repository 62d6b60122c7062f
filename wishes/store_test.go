package wishes

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/content"
)

// TestStoreKeepsWishes: wishes and what they found survive a reopen; a
// removed wish is gone; the bounds hold.
func TestStoreKeepsWishes(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	a, err := s.Add(Wish{Words: " blue  moon ", Ext: []string{".MP3", "flac"}, MinSize: 10, OutDir: "/tmp/x"}, now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Add(Wish{Words: "sunrise", OutDir: "/tmp/y"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != 1 || b.ID != 2 || a.Words != "blue  moon" || a.Ext[0] != "mp3" {
		t.Fatalf("added %+v and %+v", a, b)
	}
	id := content.ID{1, 2, 3}
	if err := s.ran(a.ID, now, []Found{{Content: id, Name: "moon.mp3", Size: 12, Job: 7, At: now}}, errors.New("search: not attached")); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(b.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(b.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ws := s2.List()
	if len(ws) != 1 || ws[0].ID != a.ID || ws[0].Runs != 1 || !ws[0].has(id) || ws[0].LastError != "search: not attached" {
		t.Fatalf("reopened: %+v", ws)
	}
	// IDs are never reused, even after a removal and a reopen.
	c, err := s2.Add(Wish{Words: "again", OutDir: "/tmp"}, now)
	if err != nil || c.ID != 3 {
		t.Fatalf("third wish: %+v %v", c, err)
	}

	// The matches a wish remembers are bounded, the newest kept.
	for i := range MaxFound + 5 {
		if err := s2.ran(c.ID, now, []Found{{Content: content.ID{byte(i), byte(i >> 8), 9}, Name: "f"}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s2.Get(c.ID)
	if len(got.Found) != MaxFound || got.Found[MaxFound-1].Content != (content.ID{byte(MaxFound + 4), 0, 9}) {
		t.Fatalf("%d matches kept, last %v", len(got.Found), got.Found[len(got.Found)-1].Content)
	}
	for len(s2.List()) < MaxWishes {
		if _, err := s2.Add(Wish{Words: "w", OutDir: "/tmp"}, now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s2.Add(Wish{Words: "one too many", OutDir: "/tmp"}, now); !errors.Is(err, ErrBadWish) {
		t.Fatalf("wish %d: %v", MaxWishes+1, err)
	}
}

// TestStoreBadInput: bad wishes are refused and keep nothing; a failed
// save changes nothing; a damaged file stops Open with its name.
func TestStoreBadInput(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, w := range []Wish{
		{Words: "", OutDir: "/tmp"},
		{Words: strings.Repeat("x", MaxWords+1), OutDir: "/tmp"},
		{Words: "\xff", OutDir: "/tmp"},
		{Words: "x", MinSize: 5, MaxSize: 4, OutDir: "/tmp"},
		{Words: "x", MinSize: -1, OutDir: "/tmp"},
		{Words: "x", Ext: []string{"a.b"}, OutDir: "/tmp"},
		{Words: "x", Ext: make([]string, MaxExts+1), OutDir: "/tmp"},
		{Words: "x", OutDir: "relative"},
	} {
		if _, err := s.Add(w, now); !errors.Is(err, ErrBadWish) {
			t.Errorf("Add(%+v) = %v, want ErrBadWish", w, err)
		}
	}
	if len(s.List()) != 0 || s.Revision() != 0 {
		t.Fatalf("bad wishes kept: %+v (revision %d)", s.List(), s.Revision())
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused wish wrote the file: %v", err)
	}

	// A save that fails (the directory is gone) keeps the old state.
	if _, err := s.Add(Wish{Words: "kept", OutDir: "/tmp"}, now); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(dir, "gone", FileName)
	s.path = gone
	if _, err := s.Add(Wish{Words: "lost", OutDir: "/tmp"}, now); err == nil {
		t.Fatal("a save into a missing directory succeeded")
	}
	if ws := s.List(); len(ws) != 1 || ws[0].Words != "kept" || s.Revision() != 1 {
		t.Fatalf("after a failed save: %+v (revision %d, want 1)", ws, s.Revision())
	}

	for name, body := range map[string]string{
		"not json":     "{",
		"new version":  `{"version": 2, "next_id": 1}`,
		"repeated ID":  `{"version": 1, "next_id": 5, "wishes": [{"id": 1, "words": "a", "out_dir": "/t"}, {"id": 1, "words": "b", "out_dir": "/t"}]}`,
		"ID past next": `{"version": 1, "next_id": 2, "wishes": [{"id": 3, "words": "a", "out_dir": "/t"}]}`,
		"bad wish":     `{"version": 1, "next_id": 2, "wishes": [{"id": 1, "words": "", "out_dir": "/t"}]}`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: Open = %v, want an error naming the file", name, err)
		}
	}
}

// FuzzDecode: any bytes give a checked file or an error, never a panic;
// what decodes encodes and decodes again to the same.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"version": 1, "next_id": 3, "wishes": [{"id": 1, "words": "a b", "ext": ["mp3"], "out_dir": "/t", "found": [{"content": "` +
		content.ID{7}.String() + `", "name": "x", "size": 3, "job": 1}]}]}`))
	f.Add([]byte(`{"version": 1, "next_id": 1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fl, err := decode(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(fl)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decode(again); err != nil {
			t.Fatalf("a decoded file does not decode again: %v\n%s", err, again)
		}
	})
}
