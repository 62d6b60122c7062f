// Package atomicfile replaces a small file's content atomically and durably,
// for state a node must find either whole or not at all after a crash or a
// power cut: its key, its host cache, its role history.
package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
)

// Write replaces the file at path with data, created with the permissions
// perm. Readers see the old content or the new, never a part of either: data
// goes to a temporary file in the same directory (a rename is only atomic
// within one file system), which is synced and then renamed over path. The
// directory is synced last, so that the rename itself survives a power cut;
// without that, the file could come back empty or old after the rename had
// been reported done. On an error the temporary file is removed and the old
// file is left as it was.
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir fsyncs a directory, which makes a rename in it durable. Windows
// cannot open a directory for this (and its rename is durable without), so
// there it does nothing.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
