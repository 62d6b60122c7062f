package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/canopy-p2p/canopy/internal/atomicfile"
	"github.com/canopy-p2p/canopy/internal/quarantine"
	"github.com/canopy-p2p/canopy/promotion"
)

// roleHistoryFile is the role history's file name in the data directory.
const roleHistoryFile = "role.json"

// roleHistoryVersion is the version of the role history file format.
const roleHistoryVersion = 1

// maxRoleHistorySize bounds the role history file loadHistory reads. A
// well-formed file with maxSessions sessions is about 3 KiB; anything near the
// bound is not one.
const maxRoleHistorySize = 64 << 10

// maxSessions is how many completed sessions the history keeps for
// AvgUptime: enough to smooth out one odd session, few enough that a node
// whose habits change (an always-on machine becomes a laptop) is judged by
// its recent behaviour within a few weeks.
const maxSessions = 20

// Errors of loadHistory, wrapped with the path and the detail.
var (
	// errHistoryCorrupt is returned for a role history file that cannot be
	// decoded or holds impossible values.
	errHistoryCorrupt = errors.New("role history is corrupt")
	// errHistoryTooLarge is returned for a role history file larger than
	// maxRoleHistorySize.
	errHistoryTooLarge = errors.New("role history file is too large")
)

// roleSession is one run of the node, from start to its end or, while it
// runs, to the last time it was seen alive.
type roleSession struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// length is the session's length; zero if the wall clock went backwards.
func (s roleSession) length() time.Duration { return max(s.End.Sub(s.Start), 0) }

// roleRecord is the role history's persisted content, and the value
// roleHistory.Snapshot returns.
type roleRecord struct {
	// Version is roleHistoryVersion.
	Version int `json:"version"`
	// Sessions are the last maxSessions completed sessions, oldest first.
	Sessions []roleSession `json:"sessions,omitempty"`
	// Current is the running session: Start is when it began and End when
	// the node was last seen alive (Touch). It is zero after Close. A file
	// whose Current is set was left by a node that did not close cleanly.
	Current roleSession `json:"current,omitzero"`
	// LastSwitch is when the node last changed role; zero if it never has.
	LastSwitch time.Time `json:"last_switch,omitzero"`
	// Role is the role the node last recorded (promotion.Role's String), or
	// empty if it never recorded one.
	Role string `json:"role,omitempty"`
	// Demotions is the number of demotions in a row (promotion.Input's
	// Demotions).
	Demotions int `json:"demotions,omitempty"`
}

// validate reports a record that no run of the node writes.
func (r *roleRecord) validate() error {
	switch {
	case r.Version != roleHistoryVersion:
		return fmt.Errorf("version %d, want %d", r.Version, roleHistoryVersion)
	case r.Role != "" && r.Role != promotion.RoleLeaf.String() && r.Role != promotion.RoleSupernode.String():
		return fmt.Errorf("unknown role %q", r.Role)
	case r.Demotions < 0:
		return fmt.Errorf("demotions %d is negative", r.Demotions)
	}
	return nil
}

// roleHistory is what the promotion policy needs to remember across
// restarts: past session lengths, the last role change and the demotion
// count. It is kept in the data directory as JSON (roleHistoryFile) and
// written atomically, so that a crash at any moment leaves the previous
// version or the new one. The role loop updates it and the status API reads
// it, so it is safe for concurrent use.
type roleHistory struct {
	path string

	// saveMu serialises Save, so that writes reach the disk in the order
	// their content was taken. It is taken before mu, never after.
	saveMu sync.Mutex

	mu     sync.Mutex // guards the fields below
	rec    roleRecord
	closed bool // Close has ended the current session
}

// loadHistory reads the role history at path and starts a new session at
// now. A session the previous run left open (the node crashed or was killed)
// is recorded as ending when that run was last seen alive, which is why the
// role loop calls Touch periodically. A missing file is a first start. A
// file that cannot be read, is larger than maxRoleHistorySize or is corrupt
// must not stop the node (the history only tunes the promotion policy, and
// rebuilds itself as the node runs): loadHistory then returns an empty
// history and the error, which the caller logs once, and moves a corrupt or
// oversized file aside as path.corrupt-<UTC time> for inspection, keeping
// the newest quarantine.DefaultKeep copies. The returned history is never
// nil, and is saved (with its new session) before loadHistory returns; an
// error saving it is returned too.
func loadHistory(path string, now time.Time) (*roleHistory, error) {
	h := &roleHistory{path: path}
	rec, loadErr := readRoleRecord(path, now)
	if loadErr != nil {
		rec = roleRecord{}
	}
	rec.Version = roleHistoryVersion
	if !rec.Current.Start.IsZero() {
		end := rec.Current.End
		if end.Before(rec.Current.Start) {
			end = rec.Current.Start
		}
		rec.Sessions = appendSession(rec.Sessions, roleSession{Start: rec.Current.Start, End: end})
	}
	if len(rec.Sessions) > maxSessions {
		rec.Sessions = slices.Clone(rec.Sessions[len(rec.Sessions)-maxSessions:])
	}
	rec.Current = roleSession{Start: now, End: now}
	h.rec = rec
	return h, errors.Join(loadErr, h.Save())
}

// readRoleRecord reads and validates the file at path; a missing file is an
// empty record. A corrupt or oversized file is moved aside (quarantine.Move
// at now), and the error says where it went.
func readRoleRecord(path string, now time.Time) (roleRecord, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return roleRecord{}, nil
	}
	if err != nil {
		return roleRecord{}, fmt.Errorf("role history: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxRoleHistorySize+1))
	f.Close()
	if err != nil {
		return roleRecord{}, fmt.Errorf("role history: read %s: %w", path, err)
	}
	var bad error
	var rec roleRecord
	if len(data) > maxRoleHistorySize {
		bad = fmt.Errorf("%w: %s exceeds %d bytes", errHistoryTooLarge, path, maxRoleHistorySize)
	} else if err := json.Unmarshal(data, &rec); err != nil {
		bad = fmt.Errorf("%w: %s: %s", errHistoryCorrupt, path, boundReason(err))
	} else if err := rec.validate(); err != nil {
		bad = fmt.Errorf("%w: %s: %s", errHistoryCorrupt, path, boundReason(err))
	}
	if bad == nil {
		return rec, nil
	}
	moved, err := quarantine.Move(path, now, quarantine.DefaultKeep)
	if moved == "" {
		return roleRecord{}, fmt.Errorf("%w (it could not be moved aside: %v; starting with an empty history)", bad, err)
	}
	note := ""
	if err != nil {
		note = "; " + err.Error()
	}
	return roleRecord{}, fmt.Errorf("%w (moved aside to %s; starting with an empty history%s)", bad, moved, note)
}

// appendSession appends s and drops the oldest sessions beyond maxSessions.
func appendSession(sessions []roleSession, s roleSession) []roleSession {
	sessions = append(sessions, s)
	if n := len(sessions); n > maxSessions {
		sessions = slices.Delete(sessions, 0, n-maxSessions)
	}
	return sessions
}

// Save writes the history to its file atomically and durably: a temporary
// file in the same directory is written and synced, renamed over the file,
// and the directory is synced so that the rename survives a power cut.
func (h *roleHistory) Save() error {
	h.saveMu.Lock()
	defer h.saveMu.Unlock()
	h.mu.Lock()
	data, err := json.MarshalIndent(h.rec, "", "\t")
	h.mu.Unlock()
	if err != nil {
		return fmt.Errorf("role history: encode: %w", err)
	}
	data = append(data, '\n')
	if err := atomicfile.Write(h.path, data, 0o600); err != nil {
		return fmt.Errorf("role history: save %s: %w", h.path, err)
	}
	return nil
}

// Touch records that the node is alive at now and saves the history, so that
// after a crash the session counts as ending at most one Touch interval
// before it really did. The role loop calls it about once a minute. It does
// nothing after Close.
func (h *roleHistory) Touch(now time.Time) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.rec.Current.End = now
	h.mu.Unlock()
	return h.Save()
}

// Close ends the current session at now and saves the history. It is
// idempotent: later calls, and Touch, do nothing.
func (h *roleHistory) Close(now time.Time) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	s := roleSession{Start: h.rec.Current.Start, End: now}
	h.rec.Sessions = appendSession(h.rec.Sessions, s)
	h.rec.Current = roleSession{}
	h.mu.Unlock()
	return h.Save()
}

// Switched records that the node changed role to `to` at now, and saves the
// history. demotion says the change carried out a promotion.Demote decision,
// and forcedByConsent that the decision was forced by the user's consent
// (ConsentNever); backoffMax is promotion.Params.BackoffMax.
//
// It keeps the demotion count as promotion.Input.Demotions documents: each
// demotion not forced by consent counts one more in a row, and a supernode
// stint of at least backoffMax first resets the count, because a node that
// served that long showed that its earlier demotions were transient. A
// promotion leaves the count alone: the count is of demotions in a row, and
// only a long stint breaks the row.
//
// A restart ends a supernode stint without a demotion, since every node
// starts as a leaf. The role loop records that by calling Switched(now,
// promotion.RoleLeaf, false, false, backoffMax) at startup, whatever the
// recorded role: when the recorded role is supernode, the stint is taken to
// have ended with the previous session (when it was last seen alive), and
// that is recorded as the time of the switch; when it is leaf or unset, the
// call only records the role. Switching to the recorded role is otherwise a
// no-op.
func (h *roleHistory) Switched(now time.Time, to promotion.Role, demotion, forcedByConsent bool, backoffMax time.Duration) error {
	h.mu.Lock()
	r := &h.rec
	from := r.Role
	if from == to.String() {
		h.mu.Unlock()
		return nil
	}
	at := now
	if from == promotion.RoleSupernode.String() {
		end := now
		if r.LastSwitch.Before(r.Current.Start) && len(r.Sessions) > 0 {
			// The stint began in an earlier session, so a restart ended it.
			end = r.Sessions[len(r.Sessions)-1].End
			if end.Before(r.LastSwitch) {
				end = r.LastSwitch
			}
			at = end
		}
		if end.Sub(r.LastSwitch) >= backoffMax {
			r.Demotions = 0
		}
	}
	if demotion && !forcedByConsent {
		r.Demotions++
	}
	if from != "" || to != promotion.RoleLeaf {
		// Starting as a leaf is not a role change; anything else is.
		r.LastSwitch = at
	}
	r.Role = to.String()
	h.mu.Unlock()
	return h.Save()
}

// SinceSwitch is promotion.Input.SinceSwitch: the time since the last role
// change, or math.MaxInt64 if the node has never changed role. It is zero if
// the wall clock has gone back past the last change, which errs on the side
// of waiting.
func (h *roleHistory) SinceSwitch(now time.Time) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rec.LastSwitch.IsZero() {
		return time.Duration(math.MaxInt64)
	}
	return max(now.Sub(h.rec.LastSwitch), 0)
}

// AvgUptime is promotion.Input.AvgUptime: the mean length of the completed
// sessions the history keeps, zero when there are none. The running session
// is not included; promotion.Input.Uptime covers it.
func (h *roleHistory) AvgUptime() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.rec.Sessions) == 0 {
		return 0
	}
	var sum time.Duration
	for _, s := range h.rec.Sessions {
		// Saturate rather than overflow: twenty sessions cannot reach
		// 292 years, but a hand-edited file can claim anything.
		if l := s.length(); sum > math.MaxInt64-l {
			sum = math.MaxInt64
		} else {
			sum += l
		}
	}
	return sum / time.Duration(len(h.rec.Sessions))
}

// Uptime is promotion.Input.Uptime: the length of the current session at
// now, zero after Close.
func (h *roleHistory) Uptime(now time.Time) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return 0
	}
	return max(now.Sub(h.rec.Current.Start), 0)
}

// Snapshot returns a copy of the history's content, for the role loop
// (Demotions, Role) and the status API.
func (h *roleHistory) Snapshot() roleRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rec
	r.Sessions = slices.Clone(r.Sessions)
	return r
}
