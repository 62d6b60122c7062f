//go:build !unix

package library

import "io/fs"

// fileIdentity returns zeros where FileInfo carries no inode: on Windows the
// file index needs the file opened, and size and mtime are enough to notice
// ordinary edits.
func fileIdentity(fs.FileInfo) (inode, dev uint64) { return 0, 0 }
