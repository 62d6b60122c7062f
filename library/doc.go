// Package library keeps a leaf's library of shared files: which files are
// shared, their content IDs and piece hashes, and a log of changes so the
// index held by supernodes can be brought up to date with increments.
//
// The hashes live in SQLite so that a restart does not rehash files that have
// not changed. A file counts as unchanged while its size, modification time
// and (where the platform has them) inode and device numbers are the ones it
// had when it was hashed.
//
// # Concurrency
//
// A Library is safe for use by several goroutines: typically a scan loop
// calling Scan and an uploader calling Manifest, Changes and Entries. Scans
// are serialized; reads proceed while a scan hashes, since the database is
// written only in short transactions between files. Close stops a running
// scan and waits for it.
package library
