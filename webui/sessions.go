package webui

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Defaults for the SessionConfig fields left zero.
const (
	// DefaultCodeTTL is how long a one-time login code (the link `canopy
	// ui` prints) can be redeemed: long enough to copy the link into a
	// browser by hand, short enough that a link left in a terminal's
	// scroll-back is worthless soon after.
	DefaultCodeTTL = 2 * time.Minute
	// DefaultSessionIdle is how long a session lives without a request: a
	// browser tab left open overnight still works in the morning (its event
	// streams keep it in use), one closed for a day has to log in again.
	DefaultSessionIdle = 24 * time.Hour
	// DefaultMaxSessions bounds the sessions held at once (the least
	// recently used goes first): a person has a few browsers, and a script
	// that logs in in a loop cannot grow the node's memory.
	DefaultMaxSessions = 32
	// DefaultMaxCodes bounds the unredeemed codes held at once (the oldest
	// goes first), for the same reason.
	DefaultMaxCodes = 16
)

// secretBytes is the entropy of a code and of a session ID: 256 bits, as
// the API token's, so that neither is easier to guess than the token.
const secretBytes = 32

// ErrConfig reports a bad SessionConfig.
var ErrConfig = errors.New("webui: bad config")

// SessionConfig configures Sessions.
type SessionConfig struct {
	CodeTTL     time.Duration
	SessionIdle time.Duration
	MaxSessions int
	MaxCodes    int
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// WithDefaults fills the fields left zero with the Default* constants.
func (c SessionConfig) WithDefaults() SessionConfig {
	if c.CodeTTL == 0 {
		c.CodeTTL = DefaultCodeTTL
	}
	if c.SessionIdle == 0 {
		c.SessionIdle = DefaultSessionIdle
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.MaxCodes == 0 {
		c.MaxCodes = DefaultMaxCodes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate checks a config after WithDefaults.
func (c SessionConfig) Validate() error {
	switch {
	case c.CodeTTL < 0 || c.SessionIdle < 0:
		return fmt.Errorf("%w: negative lifetime (code %v, session %v)", ErrConfig, c.CodeTTL, c.SessionIdle)
	case c.MaxSessions < 0 || c.MaxCodes < 0:
		return fmt.Errorf("%w: negative bound (sessions %d, codes %d)", ErrConfig, c.MaxSessions, c.MaxCodes)
	}
	return nil
}

// Sessions holds the web UI's login state in memory: one-time codes
// waiting to be redeemed and the sessions of logged-in browsers. Nothing
// is written to disk, so a restarted node asks every browser to log in
// again, which `canopy ui` makes one command.
//
// Both codes and session IDs are kept by their SHA-256, not as sent: a
// map look-up on the secret itself could, in principle, leak through its
// timing how much of a guess matched; one on its hash leaks nothing about
// the secret.
type Sessions struct {
	cfg      SessionConfig
	mu       sync.Mutex
	codes    map[[32]byte]time.Time // code hash → expiry
	sessions map[[32]byte]time.Time // session hash → last use
}

// NewSessions returns an empty store.
func NewSessions(cfg SessionConfig) (*Sessions, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Sessions{cfg: cfg, codes: map[[32]byte]time.Time{}, sessions: map[[32]byte]time.Time{}}, nil
}

func newSecret() (string, [32]byte, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", [32]byte{}, fmt.Errorf("webui: random: %w", err)
	}
	s := hex.EncodeToString(b)
	return s, sha256.Sum256([]byte(s)), nil
}

// NewCode makes a one-time login code and says until when it can be
// redeemed.
func (s *Sessions) NewCode() (code string, expires time.Time, err error) {
	code, h, err := newSecret()
	if err != nil {
		return "", time.Time{}, err
	}
	now := s.cfg.Now()
	expires = now.Add(s.cfg.CodeTTL)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	if len(s.codes) >= s.cfg.MaxCodes {
		dropOldest(s.codes)
	}
	s.codes[h] = expires
	return code, expires, nil
}

// Redeem uses up a code: it returns a new session ID when the code is one
// NewCode made, not yet redeemed and not expired. A code works once.
func (s *Sessions) Redeem(code string) (session string, ok bool, err error) {
	h := sha256.Sum256([]byte(code))
	now := s.cfg.Now()
	s.mu.Lock()
	exp, found := s.codes[h]
	delete(s.codes, h)
	s.mu.Unlock()
	if !found || !now.Before(exp) {
		return "", false, nil
	}
	session, err = s.NewSession()
	return session, err == nil, err
}

// NewSession starts a session (after a login with the token, or a
// redeemed code) and returns its ID, the cookie's value.
func (s *Sessions) NewSession() (string, error) {
	id, h, err := newSecret()
	if err != nil {
		return "", err
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	if len(s.sessions) >= s.cfg.MaxSessions {
		dropOldest(s.sessions)
	}
	s.sessions[h] = now
	return id, nil
}

// Valid says whether id is a live session, and counts the request as a use
// of it.
func (s *Sessions) Valid(id string) bool {
	h := sha256.Sum256([]byte(id))
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	last, ok := s.sessions[h]
	if !ok {
		return false
	}
	if now.Sub(last) >= s.cfg.SessionIdle {
		delete(s.sessions, h)
		return false
	}
	s.sessions[h] = now
	return true
}

// End ends a session (logout). Ending an unknown one does nothing.
func (s *Sessions) End(id string) {
	h := sha256.Sum256([]byte(id))
	s.mu.Lock()
	delete(s.sessions, h)
	s.mu.Unlock()
}

// Len returns how many codes and sessions are held.
func (s *Sessions) Len() (codes, sessions int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.codes), len(s.sessions)
}

func (s *Sessions) expireLocked(now time.Time) {
	for h, exp := range s.codes {
		if !now.Before(exp) {
			delete(s.codes, h)
		}
	}
	for h, last := range s.sessions {
		if now.Sub(last) >= s.cfg.SessionIdle {
			delete(s.sessions, h)
		}
	}
}

// dropOldest removes the entry with the earliest time. The maps are small
// (Max* entries), so a scan is cheaper than keeping them ordered.
func dropOldest(m map[[32]byte]time.Time) {
	var oldest [32]byte
	var at time.Time
	first := true
	for h, t := range m {
		if first || t.Before(at) {
			oldest, at, first = h, t, false
		}
	}
	if !first {
		delete(m, oldest)
	}
}
