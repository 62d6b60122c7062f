//go:build !unix

package downloads

import (
	"errors"
	"io/fs"
	"syscall"
)

// inode is 0 where the platform does not report one: size and modification
// time then stamp a part file alone.
func inode(fs.FileInfo) int64 { return 0 }

// isDiskFull reports an error of a full disk.
func isDiskFull(err error) bool { return errors.Is(err, syscall.ENOSPC) }
