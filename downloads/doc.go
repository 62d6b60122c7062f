// Package downloads keeps a node's download jobs: what the user asked to
// download, persisted in an SQLite database in the data directory
// (downloads.db), run a few at a time through the transfer engine, and
// resumed after a restart or a crash from the pieces already on disk.
//
// A job moves through the states of State: queued until a slot is free
// (Config.MaxActive run at once), connecting while sources are looked up and
// dialled, downloading while pieces arrive, verifying while the part file is
// checked against the manifest (when a job resumes, and once more before the
// file is placed), and then done or failed with a reason. The user may pause,
// resume, cancel or retry a job (Manager.Do); finished jobs stay as history,
// the newest Config.MaxHistory of them.
//
// # Durable pieces
//
// A job's data goes to a part file beside its destination,
// DIR/.NAME.JOB.canopy-part. The engine writes each verified piece, fsyncs
// the part file every transfer.DefaultSyncInterval and only then reports the
// pieces (transfer.Resume.Synced), which the job records in its row with the
// part file's size, modification time and inode (the stamp). The record may
// thus lag the part file but never lead it. When a job starts again:
//
//   - if the part file's stamp is the recorded one, nothing has touched it
//     since the record: the recorded pieces are held, the others fetched;
//   - otherwise (the node was killed while it wrote, or the file was edited,
//     truncated or replaced) every piece of the part file is verified
//     against the manifest's piece hashes, and what matches is held.
//
// So a killed node loses nothing it had written (the page cache survives the
// process), and fetches again only the pieces that were in flight; a power
// cut costs at most the pieces of the last sync interval. A complete part
// file is verified whole once more before it is placed.
//
// # Placing the file
//
// The destination path is recorded in the job's row before the part file is
// hard-linked to it (link fails if the name is taken, so nothing is ever
// overwritten; a taken name moves on to "NAME (1).ext"); then the part file
// is removed and the directory synced, and the job is done. A restart after
// a crash in between finds the recorded destination: if it is the part
// file's other link, the part file is removed; if the part file is gone and
// the destination holds the verified file, the job is done. Either way there
// is exactly one complete file.
//
// # A damaged database
//
// Jobs are the user's intent and cannot be recomputed from anything else. A
// database that SQLite finds damaged is moved aside (internal/quarantine,
// downloads.db.corrupt-STAMP), and the jobs whose rows can still be read
// from the damaged copy are carried over into a new database, their pieces
// re-verified from their part files; the log says how many were saved and
// how many lost.
package downloads
