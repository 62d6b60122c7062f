//go:build unix

package downloads

import (
	"errors"
	"io/fs"
	"syscall"
)

// inode is the file's inode number: a part file replaced by another file
// of the same size and time still shows.
func inode(fi fs.FileInfo) int64 {
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(sys.Ino)
	}
	return 0
}

// isDiskFull reports an error of a full disk (or quota).
func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
