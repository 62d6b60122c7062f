package people

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/wire"
)

// The people database (people.db in the data directory) holds what cannot
// be recomputed: the profile, the contacts and their trust, requests,
// every message and the outbox of letters not yet delivered. It is written
// crash-safely: WAL with synchronous=FULL, so a committed change survives a
// power cut, and every change in one transaction. A damaged file is not
// moved aside and replaced, as the library's cache is: Open refuses it with
// ErrDamaged, naming the file, and the user decides.

const schemaVersion = 2

var schema = []string{
	`CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)`,
	// state: 'requested' (we asked them), 'contact' (both accepted),
	// 'blocked' (a blocked node that was never a contact).
	`CREATE TABLE contacts (
		id BLOB PRIMARY KEY, name TEXT NOT NULL, nick TEXT NOT NULL, trust TEXT NOT NULL,
		state TEXT NOT NULL, box_key BLOB, via BLOB, appear_offline INTEGER NOT NULL,
		since INTEGER NOT NULL, last_seen INTEGER NOT NULL, out_seq INTEGER NOT NULL)`,
	`CREATE TABLE requests (
		id BLOB PRIMARY KEY, nick TEXT NOT NULL, text TEXT NOT NULL, box_key BLOB,
		via BLOB, first INTEGER NOT NULL, last INTEGER NOT NULL, count INTEGER NOT NULL)`,
	// dir: 'in' or 'out'; state: queued, stored, delivered, failed (out),
	// received (in).
	`CREATE TABLE messages (
		id BLOB PRIMARY KEY, peer BLOB NOT NULL, dir TEXT NOT NULL, seq INTEGER NOT NULL,
		time INTEGER NOT NULL, text TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,
		updated INTEGER NOT NULL)`,
	`CREATE INDEX messages_by_peer ON messages(peer, time, seq)`,
	// outbox: signed letters not yet done, in the order they were made.
	`CREATE TABLE outbox (
		n INTEGER PRIMARY KEY AUTOINCREMENT, id BLOB NOT NULL UNIQUE, peer BLOB NOT NULL,
		kind INTEGER NOT NULL, letter BLOB NOT NULL, created INTEGER NOT NULL,
		state TEXT NOT NULL, reason TEXT NOT NULL)`,
	// seen: letter IDs handled, for de-duplication, kept past the mailbox
	// expiry.
	`CREATE TABLE seen (id BLOB PRIMARY KEY, at INTEGER NOT NULL)`,
	// mailboxes: supernodes this node was attached to, which may hold its
	// mail.
	`CREATE TABLE mailboxes (id BLOB PRIMARY KEY, at INTEGER NOT NULL)`,
}

// migrations[v] takes a database of schema version v-1 to v. A new
// database is made with schema and every migration, in order.
var migrations = map[int][]string{
	// held: answers kept back from a contact this node hides from
	// (invisible, or appearing offline to it): a receipt's message ID, or
	// an accept (kind 2, zero ID). They go out when the node stops hiding,
	// so that a hidden-from contact sees its messages "stored", as when
	// this node is offline.
	2: {`CREATE TABLE held (
		peer BLOB NOT NULL, id BLOB NOT NULL, kind INTEGER NOT NULL, at INTEGER NOT NULL,
		PRIMARY KEY(peer, id))`},
}

type store struct {
	db   *sql.DB
	path string
}

// openStore opens (or creates) the database at path.
func openStore(path string) (*store, error) {
	if err := checkHeader(path); err != nil {
		return nil, err
	}
	dsn := path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("people: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetConnMaxLifetime(0)
	st := &store{db: db, path: path}
	if err := st.migrate(); err != nil {
		db.Close()
		return nil, err
	}
	return st, nil
}

func (st *store) damaged(why string, err error) error {
	return fmt.Errorf("%w: %s: %s: %v (it holds your contacts and messages, so the node does not replace it: "+
		"move it aside to start without them, or restore a copy)", ErrDamaged, st.path, why, err)
}

func checkHeader(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("people: %w", err)
	}
	defer f.Close()
	head := make([]byte, 16)
	n, err := io.ReadFull(f, head)
	if n == 0 && (err == io.EOF || err == nil) {
		return nil
	}
	if err != nil || string(head) != "SQLite format 3\x00" {
		return fmt.Errorf("%w: %s is not an SQLite database (it holds your contacts and messages, so the node does not "+
			"replace it: move it aside to start without them, or restore a copy)", ErrDamaged, path)
	}
	return nil
}

func (st *store) migrate() error {
	ctx := context.Background()
	var version int
	if err := st.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return st.damaged("read version", err)
	}
	var check string
	if err := st.db.QueryRowContext(ctx, `PRAGMA quick_check(1)`).Scan(&check); err != nil || check != "ok" {
		if err == nil {
			err = errors.New(check)
		}
		return st.damaged("quick_check", err)
	}
	switch {
	case version == schemaVersion:
		return nil
	case version > schemaVersion:
		return fmt.Errorf("people: %s is of schema version %d, newer than this program's %d", st.path, version, schemaVersion)
	}
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if version == 0 {
		for _, q := range schema {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("people: create schema: %w", err)
			}
		}
		version = 1
	}
	for v := version + 1; v <= schemaVersion; v++ {
		for _, q := range migrations[v] {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("people: migrate %s to schema version %d: %w", st.path, v, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion)); err != nil {
		return err
	}
	return tx.Commit()
}

func (st *store) close() error { return st.db.Close() }

// encodeIDs packs node IDs into one blob.
func encodeIDs(ids []identity.NodeID) []byte {
	b := make([]byte, 0, len(ids)*identity.IDLen)
	for _, id := range ids {
		b = append(b, id[:]...)
	}
	return b
}

func decodeIDs(b []byte) []identity.NodeID {
	var out []identity.NodeID
	for len(b) >= identity.IDLen && len(out) < wire.MaxVia {
		var id identity.NodeID
		copy(id[:], b)
		out = append(out, id)
		b = b[identity.IDLen:]
	}
	return out
}

func (st *store) meta(k string) (string, bool, error) {
	var v string
	err := st.db.QueryRow(`SELECT v FROM meta WHERE k = ?`, k).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	return v, err == nil, err
}

func setMeta(tx execer, k, v string) error {
	_, err := tx.Exec(`INSERT INTO meta(k, v) VALUES(?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v`, k, v)
	return err
}

type execer interface {
	Exec(query string, args ...any) (sql.Result, error)
}

// contact is a row of contacts.
type contact struct {
	ID            identity.NodeID
	Name, Nick    string
	Trust         Trust
	State         string
	BoxKey        []byte
	Via           []identity.NodeID
	AppearOffline bool
	Since         time.Time
	LastSeen      time.Time
	OutSeq        uint64
}

const contactCols = `id, name, nick, trust, state, box_key, via, appear_offline, since, last_seen, out_seq`

func scanContact(r interface{ Scan(...any) error }) (contact, error) {
	var c contact
	var id, via []byte
	var trust string
	var since, seen int64
	var ao int
	if err := r.Scan(&id, &c.Name, &c.Nick, &trust, &c.State, &c.BoxKey, &via, &ao, &since, &seen, &c.OutSeq); err != nil {
		return c, err
	}
	copy(c.ID[:], id)
	c.Trust = Trust(trust)
	c.Via = decodeIDs(via)
	c.AppearOffline = ao != 0
	c.Since = time.UnixMilli(since)
	if seen > 0 {
		c.LastSeen = time.UnixMilli(seen)
	}
	return c, nil
}

func (st *store) contact(id identity.NodeID) (contact, bool, error) {
	c, err := scanContact(st.db.QueryRow(`SELECT `+contactCols+` FROM contacts WHERE id = ?`, id[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	return c, err == nil, err
}

func (st *store) contacts() ([]contact, error) {
	rows, err := st.db.Query(`SELECT ` + contactCols + ` FROM contacts ORDER BY since`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []contact
	for rows.Next() {
		c, err := scanContact(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func putContact(tx execer, c contact) error {
	seen := int64(0)
	if !c.LastSeen.IsZero() {
		seen = c.LastSeen.UnixMilli()
	}
	ao := 0
	if c.AppearOffline {
		ao = 1
	}
	_, err := tx.Exec(`INSERT INTO contacts(`+contactCols+`) VALUES(?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT(id) DO UPDATE SET name=excluded.name, nick=excluded.nick, trust=excluded.trust,
		state=excluded.state, box_key=excluded.box_key, via=excluded.via, appear_offline=excluded.appear_offline,
		since=excluded.since, last_seen=excluded.last_seen, out_seq=excluded.out_seq`,
		c.ID[:], c.Name, c.Nick, string(c.Trust), c.State, c.BoxKey, encodeIDs(c.Via), ao, c.Since.UnixMilli(), seen, c.OutSeq)
	return err
}

// request is a row of requests: a contact request waiting for the user.
type request struct {
	ID          identity.NodeID
	Nick, Text  string
	BoxKey      []byte
	Via         []identity.NodeID
	First, Last time.Time
	Count       int
}

func (st *store) request(id identity.NodeID) (request, bool, error) {
	rs, err := st.queryRequests(`WHERE id = ?`, id[:])
	if err != nil || len(rs) == 0 {
		return request{}, false, err
	}
	return rs[0], true, nil
}

func (st *store) queryRequests(where string, args ...any) ([]request, error) {
	rows, err := st.db.Query(`SELECT id, nick, text, box_key, via, first, last, count FROM requests `+where+` ORDER BY first`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []request
	for rows.Next() {
		var r request
		var id, via []byte
		var first, last int64
		if err := rows.Scan(&id, &r.Nick, &r.Text, &r.BoxKey, &via, &first, &last, &r.Count); err != nil {
			return nil, err
		}
		copy(r.ID[:], id)
		r.Via = decodeIDs(via)
		r.First, r.Last = time.UnixMilli(first), time.UnixMilli(last)
		out = append(out, r)
	}
	return out, rows.Err()
}

func putRequest(tx execer, r request) error {
	_, err := tx.Exec(`INSERT INTO requests(id, nick, text, box_key, via, first, last, count) VALUES(?,?,?,?,?,?,?,?)
		ON CONFLICT(id) DO UPDATE SET nick=excluded.nick, text=excluded.text, box_key=excluded.box_key,
		via=excluded.via, last=excluded.last, count=excluded.count`,
		r.ID[:], r.Nick, r.Text, r.BoxKey, encodeIDs(r.Via), r.First.UnixMilli(), r.Last.UnixMilli(), r.Count)
	return err
}

// message is a row of messages.
type message struct {
	ID      wire.MsgID
	Peer    identity.NodeID
	Out     bool
	Seq     uint64
	Time    time.Time
	Text    string
	State   string
	Reason  string
	Updated time.Time
}

const messageCols = `id, peer, dir, seq, time, text, state, reason, updated`

func (st *store) messages(peer *identity.NodeID, limit int) ([]message, error) {
	q := `SELECT ` + messageCols + ` FROM messages`
	var args []any
	if peer != nil {
		q += ` WHERE peer = ?`
		args = append(args, peer[:])
	}
	// The newest limit, shown oldest first. A conversation is ordered by
	// the sender's clock and, within one sender, by its sequence numbers.
	q = `SELECT * FROM (` + q + ` ORDER BY time DESC, seq DESC LIMIT ?) ORDER BY time, seq`
	args = append(args, limit)
	rows, err := st.db.Query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func scanMessage(r interface{ Scan(...any) error }) (message, error) {
	var m message
	var id, peer []byte
	var dir string
	var t, u int64
	if err := r.Scan(&id, &peer, &dir, &m.Seq, &t, &m.Text, &m.State, &m.Reason, &u); err != nil {
		return m, err
	}
	copy(m.ID[:], id)
	copy(m.Peer[:], peer)
	m.Out = dir == "out"
	m.Time, m.Updated = time.UnixMilli(t), time.UnixMilli(u)
	return m, nil
}

func (st *store) message(id wire.MsgID) (message, bool, error) {
	m, err := scanMessage(st.db.QueryRow(`SELECT `+messageCols+` FROM messages WHERE id = ?`, id[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return m, false, nil
	}
	return m, err == nil, err
}

func putMessage(tx execer, m message) error {
	dir := "in"
	if m.Out {
		dir = "out"
	}
	_, err := tx.Exec(`INSERT INTO messages(`+messageCols+`) VALUES(?,?,?,?,?,?,?,?,?)
		ON CONFLICT(id) DO UPDATE SET state=excluded.state, reason=excluded.reason, updated=excluded.updated`,
		m.ID[:], m.Peer[:], dir, m.Seq, m.Time.UnixMilli(), m.Text, m.State, m.Reason, m.Updated.UnixMilli())
	return err
}

// outItem is a row of the outbox: a signed letter to send.
type outItem struct {
	ID      wire.MsgID
	Peer    identity.NodeID
	Kind    wire.LetterKind
	Letter  []byte // wire.EncodeLetter of the signed letter
	Created time.Time
	State   string // queued, stored, failed
	Reason  string
}

func (st *store) outbox() ([]outItem, error) {
	rows, err := st.db.Query(`SELECT id, peer, kind, letter, created, state, reason FROM outbox ORDER BY n`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []outItem
	for rows.Next() {
		var o outItem
		var id, peer []byte
		var created int64
		if err := rows.Scan(&id, &peer, &o.Kind, &o.Letter, &created, &o.State, &o.Reason); err != nil {
			return nil, err
		}
		copy(o.ID[:], id)
		copy(o.Peer[:], peer)
		o.Created = time.UnixMilli(created)
		out = append(out, o)
	}
	return out, rows.Err()
}

func addOut(tx execer, o outItem) error {
	_, err := tx.Exec(`INSERT INTO outbox(id, peer, kind, letter, created, state, reason) VALUES(?,?,?,?,?,?,?)
		ON CONFLICT(id) DO NOTHING`, o.ID[:], o.Peer[:], o.Kind, o.Letter, o.Created.UnixMilli(), o.State, o.Reason)
	return err
}

func setOutState(tx execer, id wire.MsgID, state, reason string) error {
	_, err := tx.Exec(`UPDATE outbox SET state = ?, reason = ? WHERE id = ?`, state, reason, id[:])
	return err
}

func dropOut(tx execer, id wire.MsgID) error {
	_, err := tx.Exec(`DELETE FROM outbox WHERE id = ?`, id[:])
	return err
}

// markSeen records a letter ID and reports whether it was new.
func markSeen(tx execer, id wire.MsgID, now time.Time) (bool, error) {
	r, err := tx.Exec(`INSERT INTO seen(id, at) VALUES(?, ?) ON CONFLICT(id) DO NOTHING`, id[:], now.UnixMilli())
	if err != nil {
		return false, err
	}
	n, err := r.RowsAffected()
	return n == 1, err
}

// hold keeps back an answer to peer (kind: wire.LetterReceipt for message
// id, wire.LetterAccept with a zero id) while the node hides from it.
func hold(tx execer, peer identity.NodeID, kind wire.LetterKind, id wire.MsgID, now time.Time) error {
	_, err := tx.Exec(`INSERT INTO held(peer, id, kind, at) VALUES(?,?,?,?) ON CONFLICT(peer, id) DO NOTHING`,
		peer[:], id[:], kind, now.UnixMilli())
	return err
}

// heldItem is one answer kept back.
type heldItem struct {
	Peer identity.NodeID
	ID   wire.MsgID
	Kind wire.LetterKind
}

// held lists the answers kept back, oldest first.
func (st *store) held() ([]heldItem, error) {
	rows, err := st.db.Query(`SELECT peer, id, kind FROM held ORDER BY at, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []heldItem
	for rows.Next() {
		var h heldItem
		var peer, id []byte
		if err := rows.Scan(&peer, &id, &h.Kind); err != nil {
			return nil, err
		}
		copy(h.Peer[:], peer)
		copy(h.ID[:], id)
		out = append(out, h)
	}
	return out, rows.Err()
}

func (st *store) mailboxes() ([]identity.NodeID, error) {
	rows, err := st.db.Query(`SELECT id FROM mailboxes ORDER BY at DESC LIMIT ?`, wire.MaxVia*2)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []identity.NodeID
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		var id identity.NodeID
		copy(id[:], b)
		out = append(out, id)
	}
	return out, rows.Err()
}

// tx runs f in one transaction.
func (st *store) tx(f func(tx *sql.Tx) error) error {
	tx, err := st.db.Begin()
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// prune forgets seen IDs and mailboxes older than keep.
func (st *store) prune(now time.Time, keep time.Duration) error {
	cut := now.Add(-keep).UnixMilli()
	if _, err := st.db.Exec(`DELETE FROM seen WHERE at < ?`, cut); err != nil {
		return err
	}
	_, err := st.db.Exec(`DELETE FROM mailboxes WHERE at < ?`, cut)
	return err
}

func isClosed(err error) bool {
	return err != nil && strings.Contains(err.Error(), "database is closed")
}
