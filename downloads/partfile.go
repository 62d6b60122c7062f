package downloads

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/canopy-p2p/canopy/content"
)

// PartSuffix ends the name of every part file: DIR/.NAME.JOB.canopy-part.
const PartSuffix = ".canopy-part"

// maxNumbered bounds the "NAME (n).ext" candidates tried when placing.
const maxNumbered = 10000

// partPath is the part file of job id, named name, in dir.
func partPath(dir, name string, id int64) string {
	return filepath.Join(dir, fmt.Sprintf(".%s.%d%s", name, id, PartSuffix))
}

// stampOf returns the stamp of the file at path; ok is false when there is
// no such file.
func stampOf(path string) (stamp, bool, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return stamp{}, false, nil
	}
	if err != nil {
		return stamp{}, false, err
	}
	return stamp{size: fi.Size(), mtime: fi.ModTime().UnixNano(), ino: inode(fi)}, true, nil
}

// verifyPart reads the part file at path and returns the pieces that match
// m, reading only those in only (all when only is nil), and calls progress
// with the bytes checked so far. A missing file holds nothing; a short one
// holds what it has.
func verifyPart(path string, m *content.Manifest, only *pieceSet, stop <-chan struct{}, progress func(int64)) (pieceSet, error) {
	held := newPieceSet(m.PieceCount())
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return held, nil
	}
	if err != nil {
		return held, err
	}
	defer f.Close()
	buf := make([]byte, m.PieceSize)
	var checked int64
	for i := range m.PieceCount() {
		select {
		case <-stop:
			return held, errStopped
		default:
		}
		if only != nil && !only.has(i) {
			continue
		}
		n := m.PieceLen(i)
		if _, err := f.ReadAt(buf[:n], m.PieceOffset(i)); err != nil {
			if errors.Is(err, io.EOF) {
				break // truncated: the rest is not there
			}
			return held, err
		}
		if m.VerifyPiece(i, buf[:n]) == nil {
			held.set(i)
		}
		checked += int64(n)
		if progress != nil {
			progress(checked)
		}
	}
	return held, nil
}

// errStopped ends a verification the job's stop interrupted.
var errStopped = errors.New("downloads: stopped")

// verifyWhole reports whether the file at path is exactly the content of m.
func verifyWhole(path string, m *content.Manifest, stop <-chan struct{}) (bool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	if fi.Size() != m.Size {
		return false, nil
	}
	held, err := verifyPart(path, m, nil, stop, nil)
	if err != nil {
		return false, err
	}
	return held.count() == m.PieceCount(), nil
}

// numberedName returns name for n == 0, else "base (n).ext".
func numberedName(name string, n int) string {
	if n == 0 {
		return name
	}
	ext := filepath.Ext(name)
	base := strings.TrimSuffix(name, ext)
	if base == "" {
		base, ext = name, ""
	}
	return fmt.Sprintf("%s (%d)%s", base, n, ext)
}

// syncDir makes renames and links in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
