package library

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
)

// Op is what a change does to the shared set.
type Op uint8

// The change operations.
const (
	// OpAdd means the entry is now shared.
	OpAdd Op = 1
	// OpRemove means the entry is no longer shared.
	OpRemove Op = 2
)

// String returns "add" or "remove".
func (o Op) String() string {
	switch o {
	case OpAdd:
		return "add"
	case OpRemove:
		return "remove"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Change is one step from an older state of the library to a newer one.
type Change struct {
	// Op says whether Entry was added or removed.
	Op Op
	// Entry is the entry added, or the entry as it was when removed.
	Entry Entry
}

// Changes returns the changes after revision since, and the revision they
// bring the caller to. They are coalesced: a path that changed several
// times contributes only the removal of the entry the caller had (if any)
// and the addition of the entry it has now (if any), and nothing at all when
// those are the same. All removals come before all additions, so a caller
// that keys entries by content ID, not path, ends correct when a file moved.
//
// since must be a revision this library issued, no older than the pruned end
// of the change log; otherwise Changes returns ErrRevisionTooOld and the
// caller starts again from Snapshot.
func (l *Library) Changes(since int64) ([]Change, int64, error) {
	if err := l.check(); err != nil {
		return nil, 0, err
	}
	ctx := context.Background()
	tx, err := l.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, l.dbErr("changes", err)
	}
	defer tx.Rollback()
	rev, floor, err := readState(ctx, tx)
	if err != nil {
		return nil, 0, l.dbErr("changes", err)
	}
	if since < floor || since > rev {
		return nil, 0, fmt.Errorf("%w: %d is outside the log, which holds (%d, %d]", ErrRevisionTooOld, since, floor, rev)
	}
	rows, err := tx.QueryContext(ctx,
		`SELECT revision, op, path, name, size, mtime_ns, id FROM changes WHERE revision > ? ORDER BY revision`, since)
	if err != nil {
		return nil, 0, l.dbErr("changes", err)
	}
	defer rows.Close()

	// For each path, the first and the last change after since. Per path the
	// log alternates add, remove, add..., so the first change tells what the
	// caller holds for the path (a remove: it holds that entry; an add: it
	// holds nothing) and the last tells what the path holds now.
	type span struct {
		first, last       Change
		firstRev, lastRev int64
	}
	spans := make(map[string]*span)
	for rows.Next() {
		var (
			r     int64
			op    int
			c     Change
			mtime int64
			id    []byte
		)
		if err := rows.Scan(&r, &op, &c.Entry.Path, &c.Entry.Name, &c.Entry.Size, &mtime, &id); err != nil {
			return nil, 0, l.dbErr("changes", err)
		}
		c.Op = OpAdd
		if op == dbOpRemove {
			c.Op = OpRemove
		}
		c.Entry.ModTime = time.Unix(0, mtime)
		if c.Entry.ID, err = idFromBlob(id); err != nil {
			return nil, 0, l.dbErr("changes", err)
		}
		if sp, ok := spans[c.Entry.Path]; ok {
			sp.last, sp.lastRev = c, r
		} else {
			spans[c.Entry.Path] = &span{first: c, last: c, firstRev: r, lastRev: r}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, l.dbErr("changes", err)
	}

	type ordered struct {
		rev int64
		c   Change
	}
	var removes, adds []ordered
	for _, sp := range spans {
		had, has := sp.first.Op == OpRemove, sp.last.Op == OpAdd
		if had && has && sameContent(sp.first.Entry, sp.last.Entry) {
			continue
		}
		if had {
			removes = append(removes, ordered{sp.firstRev, sp.first})
		}
		if has {
			adds = append(adds, ordered{sp.lastRev, sp.last})
		}
	}
	byRev := func(a, b ordered) int { return cmp.Compare(a.rev, b.rev) }
	slices.SortFunc(removes, byRev)
	slices.SortFunc(adds, byRev)
	out := make([]Change, 0, len(removes)+len(adds))
	for _, o := range removes {
		out = append(out, o.c)
	}
	for _, o := range adds {
		out = append(out, o.c)
	}
	return out, rev, nil
}

// sameContent reports whether two entries for a path would look the same to
// the network; the modification time alone does not count.
func sameContent(a, b Entry) bool {
	return a.ID == b.ID && a.Size == b.Size && a.Name == b.Name && a.Path == b.Path
}

// readState reads the current revision and the pruned end of the log.
func readState(ctx context.Context, tx *sql.Tx) (rev, floor int64, err error) {
	rows, err := tx.QueryContext(ctx, `SELECT key, value FROM state WHERE key IN ('revision', 'log_floor')`)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			key   string
			value int64
		)
		if err := rows.Scan(&key, &value); err != nil {
			return 0, 0, err
		}
		if key == "revision" {
			rev = value
		} else {
			floor = value
		}
	}
	return rev, floor, rows.Err()
}

// pruneLog drops all but the last ChangeLogLimit revisions from the change
// log and moves the floor up to the last revision dropped.
func (l *Library) pruneLog(ctx context.Context) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return l.dbErr("prune change log", err)
	}
	defer tx.Rollback()
	rev, floor, err := readState(ctx, tx)
	if err != nil {
		return l.dbErr("prune change log", err)
	}
	cut := rev - int64(l.cfg.ChangeLogLimit)
	if cut <= floor {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM changes WHERE revision <= ?`, cut); err != nil {
		return l.dbErr("prune change log", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE state SET value = ? WHERE key = 'log_floor'`, cut); err != nil {
		return l.dbErr("prune change log", err)
	}
	if err := tx.Commit(); err != nil {
		return l.dbErr("prune change log", err)
	}
	return nil
}
