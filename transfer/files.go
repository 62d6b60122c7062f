package transfer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/textsafe"
	"github.com/canopy-p2p/canopy/wire"
)

// partSuffix marks a download in progress: OutDir/.NAME.canopy-part.
const partSuffix = ".canopy-part"

// maxNameBytes bounds a sanitized name so that the temporary name and a
// " (NNNN)" suffix still fit the 255-byte limit of common file systems.
const maxNameBytes = 200

// maxNumbered bounds the "NAME (n).ext" candidates tried before giving up.
const maxNumbered = 10000

// sanitizeName turns a name from the network into a plain file name: no
// directory parts, no control characters, none of the characters Windows or
// macOS reject, no leading or trailing dots and spaces, at most maxNameBytes
// bytes. An empty result becomes the content ID in hex. Names come from
// other peers' search hits, so they must never reach outside OutDir.
func sanitizeName(name string, id content.ID) string {
	// Bound replaces control and the Unicode format characters
	// (bidirectional overrides, zero-width) with U+FFFD, which becomes '_'
	// below: "photo\u202egpj.exe" must not be shown as "photoexe.jpg".
	// Each byte grows to at most 3, so nothing is cut here.
	name = textsafe.Bound(name, 3*len(name))
	var b strings.Builder
	for _, r := range name {
		switch {
		case r == utf8.RuneError, r < 0x20, r == 0x7f:
			b.WriteRune('_')
		case strings.ContainsRune(`/\<>:"|?*`, r):
			b.WriteRune('_')
		default:
			b.WriteRune(r)
		}
	}
	s := strings.Trim(b.String(), ". ")
	if len(s) > maxNameBytes {
		ext := filepath.Ext(s)
		if len(ext) > 16 {
			ext = ""
		}
		base := s[:maxNameBytes-len(ext)]
		for !utf8.ValidString(base) {
			base = base[:len(base)-1]
		}
		s = base + ext
	}
	if s == "" {
		return id.String()
	}
	return s
}

// SafeName is the file name a download named name is saved under (or, for
// an empty result, the content ID in hex): the rule of Request.Name, for
// callers that name files beside a download (package downloads' part files).
func SafeName(name string, id content.ID) string { return sanitizeName(name, id) }

// numberedName returns name for n == 0, else "base (n).ext".
func numberedName(name string, n int) string {
	if n == 0 {
		return name
	}
	ext := filepath.Ext(name)
	base := strings.TrimSuffix(name, ext)
	if base == "" { // a name like ".profile" is all extension
		base, ext = name, ""
	}
	return fmt.Sprintf("%s (%d)%s", base, n, ext)
}

// placeFile moves the finished temporary file part to dir/name, or to the
// first free "name (n).ext", never replacing an existing file. It links
// first (which fails if the target exists, so no race can overwrite) and
// falls back to check-then-rename on file systems without hard links.
func placeFile(part, dir, name string) (string, error) {
	for n := range maxNumbered {
		path := filepath.Join(dir, numberedName(name, n))
		err := os.Link(part, path)
		if err == nil {
			if err := os.Remove(part); err != nil {
				return path, err
			}
			syncDir(dir)
			return path, nil
		}
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if _, serr := os.Lstat(path); serr == nil {
			continue
		} else if !errors.Is(serr, fs.ErrNotExist) {
			return "", serr
		}
		if err := os.Rename(part, path); err != nil {
			return "", err
		}
		syncDir(dir)
		return path, nil
	}
	return "", fmt.Errorf("transfer: no free name for %q in %s", name, dir)
}

// syncDir makes a rename durable. Some platforms cannot sync a directory;
// the rename is still atomic there, only its durability is the OS's.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// emptyManifest reports whether id names the empty file (for some valid
// piece size). The empty file needs no source at all: its ID proves its
// content.
func emptyManifest(id content.ID) bool {
	for ps := uint32(content.MinPieceSize); ps <= content.MaxPieceSize; ps <<= 1 {
		m := content.Manifest{PieceSize: ps}
		if m.ID() == id {
			return true
		}
	}
	return false
}

// firstHandName picks the name for a download the caller did not name: the
// name the source that delivered the most verified bytes gives the file in
// its signed answer, ties going to the source listed first. Why this and
// not the most common name among the sources: names cost nothing, so a vote
// is won by whoever runs the most identities, while delivering the file
// costs a source its upload; and a user who gives no name expects the name
// the file has where it came from. Trust levels (contacts, sources the user
// vouched for) do not exist yet; when they do, a trusted source's name
// should come first here, before the bytes it delivered. It returns "" when
// no source that delivered anything named the file.
func firstHandName(sources []wire.Source, reports []SourceReport) string {
	rank := make(map[identity.NodeID]int, len(sources))
	for i, s := range sources {
		if _, dup := rank[s.Node]; !dup {
			rank[s.Node] = i
		}
	}
	best := -1
	for i, r := range reports {
		if r.Name == "" || r.Bytes == 0 && r.Pieces == 0 {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		b := reports[best]
		if r.Bytes > b.Bytes || r.Bytes == b.Bytes && rank[r.Node] < rank[b.Node] {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return reports[best].Name
}

// boundName bounds a first-hand name to wire.MaxSignalNameBytes, cutting
// on a character boundary before a short extension, which is kept (it
// says what the file is), and makes it harmless to print: control and
// bidi-override characters become U+FFFD (textsafe.Bound). It is used on
// the name an uploader sends and on the one a downloader receives.
func boundName(name string) string {
	name = wire.CutName(name, wire.MaxSignalNameBytes)
	// Replacements may grow the name past the bound; Bound then cuts it,
	// marked, which only a name full of control characters reaches.
	return textsafe.Bound(name, wire.MaxSignalNameBytes)
}
