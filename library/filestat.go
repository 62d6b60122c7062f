package library

import (
	"io/fs"
	"time"
)

// fileStat is what tells whether a file changed since it was hashed.
type fileStat struct {
	size    int64
	mtimeNs int64
	// inode and dev are 0 where the platform does not report them.
	inode, dev uint64
}

func statOf(fi fs.FileInfo) fileStat {
	st := fileStat{size: fi.Size(), mtimeNs: fi.ModTime().UnixNano()}
	st.inode, st.dev = fileIdentity(fi)
	return st
}

// racyWindow is how close to the time of hashing a file's mtime may be before
// the hash is not trusted to stand. A write landing in the same timestamp tick
// as the one we saw (coarse kernel clocks, 2 s on FAT, skewed network file
// servers) leaves size and mtime alone, so such a file is hashed once more
// on the next scan, as git does for racily clean index entries.
const racyWindow = 2 * time.Second

// racy reports whether a file with this stat, hashed at now, must be
// rechecked by the next scan. Only mtimes near now are racy: a write now sets
// an mtime near now, which differs from a stored mtime far in the past or the
// future.
func (st fileStat) racy(now time.Time) bool {
	d := now.Sub(time.Unix(0, st.mtimeNs))
	return d < racyWindow && d > -racyWindow
}
