package library

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/canopy-p2p/canopy/content"
)

func upTo(v Visibility) func(Visibility) bool {
	return func(x Visibility) bool { return x <= v }
}

// TestShareVisibility: each file takes the visibility of the most specific
// share holding it; Public, ManifestFor, List and Shares follow it; the
// same content in a public and a private share is served to a stranger only
// from the public copy; SetShares changes visibility at once, counts the
// change in AccessGen, and a rescan drops the files of a share removed.
func TestShareVisibility(t *testing.T) {
	base := t.TempDir()
	pub := filepath.Join(base, "Public")
	fam := filepath.Join(pub, "family") // nested in Public, for contacts
	sec := filepath.Join(base, "Secret")
	writeFile(t, filepath.Join(pub, "song.flac"), "public song", past)
	writeFile(t, filepath.Join(fam, "photo.jpg"), "family photo", past)
	writeFile(t, filepath.Join(sec, "plans.txt"), "secret plans", past)
	writeFile(t, filepath.Join(sec, "copy.flac"), "public song", past) // same content as song.flac
	lib, err := Open(Config{
		Dirs:   []string{pub},
		Shares: []Share{{Dir: fam, Visibility: VisibleContacts}, {Dir: sec, Visibility: VisibleTrusted}},
		DBPath: filepath.Join(t.TempDir(), "library.db"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	if _, err := lib.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	entries, err := lib.Entries()
	if err != nil || len(entries) != 4 {
		t.Fatalf("%d entries, %v", len(entries), err)
	}
	want := map[string]Placement{
		"song.flac": {Folder: "Public", RelPath: "song.flac", Visibility: VisibleEveryone},
		"photo.jpg": {Folder: "family", RelPath: "photo.jpg", Visibility: VisibleContacts},
		"plans.txt": {Folder: "Secret", RelPath: "plans.txt", Visibility: VisibleTrusted},
		"copy.flac": {Folder: "Secret", RelPath: "copy.flac", Visibility: VisibleTrusted},
	}
	var songID content.ID
	for _, e := range entries {
		p, ok := lib.Place(e.Path)
		if !ok || p != want[e.Name] {
			t.Errorf("%s placed %+v %v, want %+v", e.Name, p, ok, want[e.Name])
		}
		if lib.Public(e.Path) != (e.Name == "song.flac") {
			t.Errorf("%s: Public %v", e.Name, lib.Public(e.Path))
		}
		if e.Name == "song.flac" {
			songID = e.ID
		}
	}
	// The stranger gets the public copy; a trusted contact may get either.
	if _, path, err := lib.ManifestFor(songID, upTo(VisibleEveryone)); err != nil || filepath.Base(path) != "song.flac" {
		t.Errorf("public copy: %s, %v", path, err)
	}
	photo := entryNamed(t, lib, "photo.jpg")
	if _, _, err := lib.ManifestFor(photo.ID, upTo(VisibleEveryone)); !errors.Is(err, ErrNotFound) {
		t.Errorf("a stranger got the contacts-only photo: %v", err)
	}
	if _, _, err := lib.ManifestFor(photo.ID, upTo(VisibleContacts)); err != nil {
		t.Errorf("a contact did not get the photo: %v", err)
	}

	// Listing: by path, paged by cursor, filtered.
	var all []ListEntry
	after := ""
	for {
		page, more, err := lib.List(after, 1, upTo(VisibleTrusted))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if !more {
			break
		}
		after = page[len(page)-1].Cursor
	}
	if len(all) != 4 {
		t.Fatalf("paged listing has %d entries: %+v", len(all), all)
	}
	for _, e := range all {
		if filepath.IsAbs(e.Cursor) || filepath.IsAbs(e.RelPath) {
			t.Errorf("listing shows a local path: %+v", e)
		}
	}
	if rest, more, err := lib.List("Nowhere\x00x", 10, upTo(VisibleTrusted)); err != nil || more || len(rest) != 0 {
		t.Errorf("a cursor in no share: %d entries, more %v, %v", len(rest), more, err)
	}
	strangers, _, _ := lib.List("", 100, upTo(VisibleEveryone))
	if len(strangers) != 1 || strangers[0].RelPath != "song.flac" {
		t.Errorf("a stranger's listing: %+v", strangers)
	}
	if f := lib.ListFolders(upTo(VisibleContacts)); len(f) != 2 || f[0].Name != "Public" || f[1].Name != "family" {
		t.Errorf("folders for a contact: %+v", f)
	}
	shares, err := lib.Shares()
	if err != nil {
		t.Fatal(err)
	}
	if len(shares) != 3 || shares[0].Files != 1 || shares[1].Files != 1 || shares[2].Files != 2 || shares[2].Visibility != VisibleTrusted {
		t.Errorf("shares: %+v", shares)
	}

	// Public becomes contacts-only, Secret is no longer shared.
	gen := lib.AccessGen()
	if err := lib.SetShares([]Share{{Dir: pub, Visibility: VisibleContacts}, {Dir: fam, Visibility: VisibleContacts}}); err != nil {
		t.Fatal(err)
	}
	if lib.AccessGen() == gen {
		t.Error("a visibility change did not count in AccessGen")
	}
	if _, _, err := lib.ManifestFor(songID, upTo(VisibleEveryone)); !errors.Is(err, ErrNotFound) {
		t.Errorf("a stranger still gets the song made contacts-only: %v", err)
	}
	res, err := lib.Scan(context.Background())
	if err != nil || res.Removed != 2 {
		t.Fatalf("rescan after removing a share: %+v, %v", res, err)
	}
	if st := lib.ScanState(); st.Scanning || st.LastScan.IsZero() || st.LastResult.Removed != 2 {
		t.Errorf("scan state: %+v", st)
	}
	gen = lib.AccessGen()
	if _, err := lib.Scan(context.Background()); err != nil || lib.AccessGen() != gen {
		t.Errorf("a rescan with nothing changed counted an access change: %v", err)
	}
	if err := lib.SetShares([]Share{{Dir: pub, Visibility: 7}}); !errors.Is(err, ErrConfig) {
		t.Errorf("visibility 7: %v", err)
	}
}

// TestShareNames: two shares with the same base name get distinct names, and
// one directory given twice is shared once with the narrower visibility.
func TestShareNames(t *testing.T) {
	a, b := filepath.Join(t.TempDir(), "Music"), filepath.Join(t.TempDir(), "Music")
	writeFile(t, filepath.Join(a, "x"), "x", past)
	writeFile(t, filepath.Join(b, "y"), "y", past)
	lib, err := Open(Config{Dirs: []string{a, b}, Shares: []Share{{Dir: a, Visibility: VisibleTrusted}},
		DBPath: filepath.Join(t.TempDir(), "library.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	shares, err := lib.Shares()
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%d %s %s %s %s", len(shares), shares[0].Name, shares[0].Visibility, shares[1].Name, shares[1].Visibility)
	if got != "2 Music trusted Music (2) everyone" {
		t.Errorf("shares: %s", got)
	}
	for _, v := range []string{"everyone", "contacts", "trusted"} {
		if p, err := ParseVisibility(v); err != nil || p.String() != v {
			t.Errorf("%s: %v %v", v, p, err)
		}
	}
	if _, err := ParseVisibility("friends"); !errors.Is(err, ErrConfig) {
		t.Errorf("friends: %v", err)
	}
}

func entryNamed(t *testing.T, lib *Library, name string) Entry {
	t.Helper()
	entries, err := lib.Entries()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name == name {
			return e
		}
	}
	t.Fatalf("no entry %s", name)
	return Entry{}
}
