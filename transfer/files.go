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
