//go:build unix

package library

import (
	"io/fs"
	"syscall"
)

// fileIdentity returns the inode and device numbers, so that a file replaced
// by another of the same size and mtime (a restore from backup, a rename over
// it) is still seen as changed.
func fileIdentity(fi fs.FileInfo) (inode, dev uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		// Dev is int32 on some platforms; the conversion keeps its bits.
		return uint64(st.Ino), uint64(st.Dev)
	}
	return 0, 0
}
