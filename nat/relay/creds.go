package relay

import (
	"crypto/hmac"
	"crypto/md5" //nolint:gosec // TURN's long-term key is MD5 by definition (RFC 8489 §9.2.2).
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/canopy-p2p/canopy/identity"
)

// DefaultCredsTTL is how long a TURN credential issued by a supernode
// stays valid. An hour covers an allocation made at any time in the first
// half of it up to the relay's 30-minute allocation cap (DefaultQuotas),
// while a credential that leaks is useful to someone else for at most an hour.
// The TURN REST API draft suggests about a day for browsers that cannot ask
// again; a Canopy leaf asks its supernode whenever it sets up a transfer.
const DefaultCredsTTL = time.Hour

// maxRelayUsernameLen bounds the TURN user name Check accepts: at most 19
// digits of expiry (the largest int64), a colon and a 52-character node ID.
// Anything longer is rejected before any parsing or hashing.
const maxRelayUsernameLen = 19 + 1 + 52

// relaySecretLen is the size of a credential secret: 256 bits, the output
// size of SHA-256, which RFC 2104 §3 gives as the key length for HMAC's full
// strength.
const relaySecretLen = 32

// Credential is one time-limited TURN credential for one leaf.
type Credential struct {
	// Username is "<unix expiry>:<leaf node ID>", as in the TURN REST API
	// draft (draft-uberti-behave-turn-rest-00 §2.2).
	Username string
	// Password is base64(HMAC-SHA256(secret, Username)).
	Password string
	// Expires is when the relay stops accepting the credential (whole
	// seconds, like the expiry in Username).
	Expires time.Time
}

// CredsConfig configures NewCreds.
type CredsConfig struct {
	// TTL is how long an issued credential is valid. Zero means
	// DefaultCredsTTL; it is rounded up to whole seconds.
	TTL time.Duration
	// Clock tells Check the time. Nil means time.Now. Tests and the simulator
	// inject their own.
	Clock func() time.Time
}

// withDefaults fills the zero fields of c: TTL (also when negative) and
// Clock.
func (c CredsConfig) withDefaults() CredsConfig {
	if c.TTL <= 0 {
		c.TTL = DefaultCredsTTL
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return c
}

// Creds issues and checks the per-leaf, time-limited TURN credentials of
// one supernode, in the style of the TURN REST API draft
// (draft-uberti-behave-turn-rest-00): the user name carries the expiry and the
// leaf's node ID, and the password is an HMAC of the user name under a secret
// only this supernode process knows. The relay therefore keeps no per-leaf
// state to authenticate anyone, a credential names the leaf it was issued to
// (quotas are charged to that leaf), and it cannot be altered to extend its
// life or change its leaf without breaking the HMAC.
//
// Two things differ from the draft, on purpose: the HMAC is SHA-256 rather
// than SHA-1 (only this process ever verifies it, so interoperability with
// other TURN servers' secrets does not matter), and the secret is random per
// process and rotates every TTL, the previous one still accepted so that no
// unexpired credential is cut short. A restart invalidates every credential,
// which is right: the leaves re-attach and ask again.
//
// Which secret signed a credential follows from its expiry: every credential
// issued after a rotation expires strictly later than every one issued before
// it (Issue adds a second when needed), so Check derives exactly one key, as
// pion's AuthHandler requires, without trying both.
//
// Creds is safe for concurrent use. Check does not lock.
type Creds struct {
	ttl   time.Duration
	clock func() time.Time

	// mu serialises Issue and Rotate; keys is replaced whole, so Check reads
	// a consistent snapshot without locking.
	mu   sync.Mutex
	keys atomic.Pointer[relayKeys]
}

// relayKeys is an immutable snapshot of the secrets in use.
type relayKeys struct {
	cur, prev []byte // prev is nil until the first rotation
	born      time.Time
	// prevMaxExpiry is the latest expiry issued under prev; every credential
	// issued under cur expires strictly after it. retiredMaxExpiry is the
	// same for the secret before prev, which is forgotten: a credential
	// expiring no later than that cannot be checked any more.
	prevMaxExpiry, retiredMaxExpiry int64
	// curMaxExpiry is the latest expiry issued under cur so far. It is the
	// only field Issue changes without rotating (under mu, via a new snapshot).
	curMaxExpiry int64
}

// NewCreds returns credentials with a fresh random secret.
func NewCreds(cfg CredsConfig) *Creds {
	cfg = cfg.withDefaults()
	c := &Creds{ttl: (cfg.TTL + time.Second - 1).Truncate(time.Second), clock: cfg.Clock}
	c.keys.Store(&relayKeys{cur: newRelaySecret(), born: c.clock()})
	return c
}

// newRelaySecret returns 32 random bytes. crypto/rand.Read never fails (it
// crashes the program if the kernel cannot supply randomness).
func newRelaySecret() []byte {
	b := make([]byte, relaySecretLen)
	_, _ = rand.Read(b)
	return b
}

// TTL returns how long issued credentials are valid.
func (c *Creds) TTL() time.Duration { return c.ttl }

// Issue returns a credential for leaf, valid from now for TTL. It rotates the
// secret first if the current one is older than TTL (plus a second, which
// covers the rounding of expiries to whole seconds), so a supernode that
// issues credentials rotates without a timer of its own, and the secret it
// drops then signed only credentials that have expired.
func (c *Creds) Issue(leaf identity.NodeID, now time.Time) Credential {
	return c.issue(leaf, now, 0)
}

// issue is Issue for a credential that must expire after floor (Unix
// seconds): the relay ties a credential to a leaf's attachment by refusing
// those that expire no later than the floor it took when the leaf attached.
// A credential issued under it lives at most a second longer than TTL for
// that, as floor is at most the latest expiry issued before.
func (c *Creds) issue(leaf identity.NodeID, now time.Time, floor int64) Credential {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.keys.Load()
	if now.Sub(k.born) >= c.ttl+time.Second {
		k = c.rotateLocked(now)
	}
	exp := now.Add(c.ttl).Unix()
	if exp <= k.prevMaxExpiry {
		// Issued after a rotation: must expire after everything signed with
		// the previous secret, or Check would pick the wrong key.
		exp = k.prevMaxExpiry + 1
	}
	if exp <= floor {
		exp = floor + 1
	}
	if exp > k.curMaxExpiry {
		nk := *k
		nk.curMaxExpiry = exp
		c.keys.Store(&nk)
		k = &nk
	}
	user := strconv.FormatInt(exp, 10) + ":" + leaf.String()
	return Credential{
		Username: user,
		Password: relayPassword(k.cur, user),
		Expires:  time.Unix(exp, 0),
	}
}

// Rotate replaces the secret with a fresh one. Credentials signed with the
// replaced secret stay valid until they expire; those signed with the secret
// before it stop working. Issue rotates by itself every TTL, which keeps every
// credential valid for its whole life; call Rotate directly only to retire a
// secret early (it cuts short the credentials of the secret before).
func (c *Creds) Rotate(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotateLocked(now)
}

func (c *Creds) rotateLocked(now time.Time) *relayKeys {
	old := c.keys.Load()
	prevMax := old.curMaxExpiry
	if prevMax < old.prevMaxExpiry {
		prevMax = old.prevMaxExpiry
	}
	k := &relayKeys{
		cur: newRelaySecret(), prev: old.cur, born: now,
		prevMaxExpiry: prevMax, retiredMaxExpiry: old.prevMaxExpiry,
	}
	c.keys.Store(k)
	return k
}

// Check validates a TURN user name and returns the leaf it was issued to and
// the long-term key MD5(username ":" realm ":" password) (RFC 8489 §9.2.2)
// that pion then checks the request's MESSAGE-INTEGRITY against. A wrong
// password is therefore caught by pion, not here: Check only refuses user
// names that are malformed, expired or from a retired secret. The caller
// must check that realm is its own.
func (c *Creds) Check(username, realm string) (identity.NodeID, []byte, error) {
	_, leaf, key, err := c.check(username, realm)
	return leaf, key, err
}

// maxExpiry is the latest expiry of any credential issued so far (zero
// before the first). A leaf's attachment takes it as its floor: every
// credential issued before the attachment expires no later.
func (c *Creds) maxExpiry() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.keys.Load()
	return max(k.curMaxExpiry, k.prevMaxExpiry)
}

// check is Check, also returning the credential's expiry.
func (c *Creds) check(username, realm string) (int64, identity.NodeID, []byte, error) {
	exp, leaf, err := parseRelayUsername(username)
	if err != nil {
		return 0, identity.NodeID{}, nil, err
	}
	if c.clock().Unix() >= exp {
		return 0, identity.NodeID{}, nil, fmt.Errorf("%w: leaf %s at %s", ErrCredsExpired, leaf.Short(),
			time.Unix(exp, 0).UTC().Format(time.RFC3339))
	}
	k := c.keys.Load()
	secret := k.cur
	switch {
	case exp <= k.retiredMaxExpiry:
		secret = nil
	case exp <= k.prevMaxExpiry:
		secret = k.prev
	}
	if secret == nil {
		return 0, identity.NodeID{}, nil, fmt.Errorf("%w: leaf %s", ErrCredsRetired, leaf.Short())
	}
	return exp, leaf, relayLongTermKey(username, realm, relayPassword(secret, username)), nil
}

// parseRelayUsername splits "<unix expiry>:<leaf node ID>" and accepts only
// the canonical form Issue produces (no sign, no leading zeros, lower-case
// ID), so that one credential has exactly one spelling.
func parseRelayUsername(username string) (int64, identity.NodeID, error) {
	if len(username) > maxRelayUsernameLen {
		return 0, identity.NodeID{}, fmt.Errorf("%w: %d bytes, at most %d", ErrCredsMalformed, len(username), maxRelayUsernameLen)
	}
	expStr, leafStr, ok := strings.Cut(username, ":")
	if !ok {
		return 0, identity.NodeID{}, fmt.Errorf("%w: no ':'", ErrCredsMalformed)
	}
	exp, err := strconv.ParseInt(expStr, 10, 64)
	if err != nil || exp <= 0 || strconv.FormatInt(exp, 10) != expStr {
		return 0, identity.NodeID{}, fmt.Errorf("%w: bad expiry %q", ErrCredsMalformed, expStr)
	}
	leaf, err := identity.ParseNodeID(leafStr)
	if err != nil || leaf.String() != leafStr {
		return 0, identity.NodeID{}, fmt.Errorf("%w: bad leaf ID %q", ErrCredsMalformed, leafStr)
	}
	return exp, leaf, nil
}

// relayPassword is base64(HMAC-SHA256(secret, username)).
func relayPassword(secret []byte, username string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// relayLongTermKey is the STUN long-term credential key (RFC 8489 §9.2.2).
func relayLongTermKey(username, realm, password string) []byte {
	h := md5.New() //nolint:gosec // mandated by the protocol
	h.Write([]byte(username + ":" + realm + ":" + password))
	return h.Sum(nil)
}
