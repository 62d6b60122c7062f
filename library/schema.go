package library

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// schemaVersion is stored in PRAGMA user_version. Version 0 is an empty
// database; each later version has a migration in migrations.
const schemaVersion = 1

// migrations[i] takes the schema from version i to version i+1.
var migrations = [][]string{
	{
		// files holds one row per shared file. inode and dev are 0 where the
		// platform does not report them, leaving size and mtime to detect
		// change. recheck marks a file hashed so soon after it was written
		// that a further write could keep the same mtime; the next scan
		// hashes it again. pieces is the piece hashes, 32 bytes each.
		`CREATE TABLE files (
			path       TEXT    NOT NULL PRIMARY KEY,
			root       TEXT    NOT NULL,
			name       TEXT    NOT NULL,
			size       INTEGER NOT NULL,
			mtime_ns   INTEGER NOT NULL,
			inode      INTEGER NOT NULL,
			dev        INTEGER NOT NULL,
			recheck    INTEGER NOT NULL,
			id         BLOB    NOT NULL,
			piece_size INTEGER NOT NULL,
			pieces     BLOB    NOT NULL,
			revision   INTEGER NOT NULL
		)`,
		`CREATE INDEX files_by_id ON files(id)`,
		// changes is the change log: one row per revision.
		`CREATE TABLE changes (
			revision INTEGER PRIMARY KEY,
			op       INTEGER NOT NULL,
			path     TEXT    NOT NULL,
			name     TEXT    NOT NULL,
			size     INTEGER NOT NULL,
			mtime_ns INTEGER NOT NULL,
			id       BLOB    NOT NULL
		)`,
		// state holds counters: 'revision', the last revision issued, and
		// 'log_floor', the last revision pruned from the log.
		`CREATE TABLE state (
			key   TEXT    NOT NULL PRIMARY KEY,
			value INTEGER NOT NULL
		)`,
	},
}

// migrate brings the database to schemaVersion in one transaction.
func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > schemaVersion {
		return fmt.Errorf("%w: version %d, this program knows %d", ErrSchemaTooNew, version, schemaVersion)
	}
	if version == schemaVersion {
		return nil
	}
	for v := version; v < schemaVersion; v++ {
		for _, stmt := range migrations[v] {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migrate to version %d: %w", v+1, err)
			}
		}
	}
	if version == 0 {
		// Revisions start at the creation time in microseconds rather than
		// at 0. A database deleted and created again then issues revisions
		// above any the old one issued, and an uploader still holding an old
		// revision gets ErrRevisionTooOld instead of a wrong increment.
		base := time.Now().UnixMicro()
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO state(key, value) VALUES ('revision', ?), ('log_floor', ?)`, base, base); err != nil {
			return fmt.Errorf("initialise state: %w", err)
		}
	}
	// PRAGMA takes no parameters; the value is a constant.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion)); err != nil {
		return fmt.Errorf("set schema version: %w", err)
	}
	return tx.Commit()
}
