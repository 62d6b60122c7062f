package relay

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/pion/turn/v5"
)

// relayTestClock is a settable clock for Creds.
type relayTestClock struct {
	mu  sync.Mutex
	now time.Time
}

func newRelayTestClock() *relayTestClock {
	return &relayTestClock{now: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
}

func (c *relayTestClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *relayTestClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func relayTestLeaf(b byte) identity.NodeID { return identity.NodeID{b, 0xc0, 0xff, 0xee} }

func TestRelayCredsIssueCheck(t *testing.T) {
	clk := newRelayTestClock()
	c := NewCreds(CredsConfig{TTL: 10 * time.Minute, Clock: clk.Now})
	leaf := relayTestLeaf(1)
	cred := c.Issue(leaf, clk.Now())

	if want := strconv.FormatInt(clk.Now().Add(10*time.Minute).Unix(), 10) + ":" + leaf.String(); cred.Username != want {
		t.Fatalf("username %q, want %q", cred.Username, want)
	}
	if !cred.Expires.Equal(clk.Now().Add(10 * time.Minute)) {
		t.Fatalf("expires %v", cred.Expires)
	}
	got, key, err := c.Check(cred.Username, "canopy")
	if err != nil {
		t.Fatal(err)
	}
	if got != leaf {
		t.Fatalf("leaf %s, want %s", got, leaf)
	}
	// The key must be the one a TURN client derives from the password.
	if want := turn.GenerateAuthKey(cred.Username, "canopy", cred.Password); !bytes.Equal(key, want) {
		t.Fatalf("key %x, want %x", key, want)
	}
}

func TestRelayCredsCheckRefuses(t *testing.T) {
	clk := newRelayTestClock()
	c := NewCreds(CredsConfig{TTL: 10 * time.Minute, Clock: clk.Now})
	leaf := relayTestLeaf(2)
	good := c.Issue(leaf, clk.Now())
	exp, id, _ := strings.Cut(good.Username, ":")

	tests := []struct {
		name     string
		username string
		advance  time.Duration
		want     error
	}{
		{"valid until the last second", good.Username, 10*time.Minute - time.Second, nil},
		{"expired at its expiry", good.Username, 10 * time.Minute, ErrCredsExpired},
		{"expired long ago", good.Username, 48 * time.Hour, ErrCredsExpired},
		{"empty", "", 0, ErrCredsMalformed},
		{"no colon", exp + id, 0, ErrCredsMalformed},
		{"no expiry", ":" + id, 0, ErrCredsMalformed},
		{"no leaf", exp + ":", 0, ErrCredsMalformed},
		{"plus sign", "+" + exp + ":" + id, 0, ErrCredsMalformed},
		{"leading zero", "0" + exp + ":" + id, 0, ErrCredsMalformed},
		{"negative", "-" + exp + ":" + id, 0, ErrCredsMalformed},
		{"zero", "0:" + id, 0, ErrCredsMalformed},
		{"hex expiry", "0x1f:" + id, 0, ErrCredsMalformed},
		{"expiry overflows", "99999999999999999999:" + id, 0, ErrCredsMalformed},
		{"upper-case leaf", exp + ":" + strings.ToUpper(id), 0, ErrCredsMalformed},
		{"short leaf", exp + ":" + id[:51], 0, ErrCredsMalformed},
		{"leaf with a second colon", exp + ":" + id[:51] + ":", 0, ErrCredsMalformed},
		{"trailing space", good.Username + " ", 0, ErrCredsMalformed},
		{"too long", exp + ":" + id + strings.Repeat("a", 1000), 0, ErrCredsMalformed},
		{"non-canonical base32 tail", exp + ":" + id[:51] + "b", 0, ErrCredsMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newRelayTestClock()
			c.clock = clk.Now // same secret, own time
			clk.Advance(tt.advance)
			_, key, err := c.Check(tt.username, "canopy")
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("Check(%q) = %v, want %v", tt.username, err, tt.want)
			}
			if err != nil && key != nil {
				t.Fatal("key returned with an error")
			}
		})
	}
}

// A credential altered to name another leaf or a later expiry yields a key
// that does not match what the holder derives from its password, so pion's
// integrity check refuses it.
func TestRelayCredsTamperedKeyDiffers(t *testing.T) {
	clk := newRelayTestClock()
	c := NewCreds(CredsConfig{Clock: clk.Now})
	cred := c.Issue(relayTestLeaf(3), clk.Now())
	exp, _, _ := strings.Cut(cred.Username, ":")
	later, _ := strconv.ParseInt(exp, 10, 64)

	for _, user := range []string{
		exp + ":" + relayTestLeaf(4).String(),
		strconv.FormatInt(later+3600, 10) + ":" + relayTestLeaf(3).String(),
	} {
		_, key, err := c.Check(user, "canopy")
		if err != nil {
			t.Fatalf("Check(%q): %v", user, err)
		}
		if bytes.Equal(key, turn.GenerateAuthKey(user, "canopy", cred.Password)) {
			t.Fatalf("%q accepted with the password of %q", user, cred.Username)
		}
	}
	// And a credential from another supernode (another secret) is refused.
	other := NewCreds(CredsConfig{Clock: clk.Now}).Issue(relayTestLeaf(3), clk.Now())
	_, key, _ := c.Check(other.Username, "canopy")
	if bytes.Equal(key, turn.GenerateAuthKey(other.Username, "canopy", other.Password)) {
		t.Fatal("credential of another secret accepted")
	}
}

// Issue rotates the secret every TTL; credentials signed with the previous
// secret stay valid for their whole life, and those of the one before are
// refused.
func TestRelayCredsRotation(t *testing.T) {
	clk := newRelayTestClock()
	ttl := 10 * time.Minute
	c := NewCreds(CredsConfig{TTL: ttl, Clock: clk.Now})
	leaf := relayTestLeaf(5)
	valid := func(cred Credential) error {
		_, key, err := c.Check(cred.Username, "canopy")
		if err != nil {
			return err
		}
		if !bytes.Equal(key, turn.GenerateAuthKey(cred.Username, "canopy", cred.Password)) {
			return errors.New("key mismatch")
		}
		return nil
	}

	a := c.Issue(leaf, clk.Now())
	clk.Advance(ttl - time.Second)
	a2 := c.Issue(leaf, clk.Now()) // same secret, near the end of its time
	clk.Advance(2 * time.Second)
	b := c.Issue(leaf, clk.Now()) // rotates
	if c.keys.Load().prev == nil {
		t.Fatal("no rotation after TTL")
	}
	if err := valid(a2); err != nil {
		t.Fatalf("credential of the previous secret refused: %v", err)
	}
	if err := valid(b); err != nil {
		t.Fatalf("fresh credential refused: %v", err)
	}
	if err := valid(a); !errors.Is(err, ErrCredsExpired) {
		t.Fatalf("first credential: %v, want expired", err)
	}

	// In the same second as a rotation, new credentials must still expire
	// after every credential of the previous secret.
	c.Rotate(clk.Now())
	d := c.Issue(leaf, clk.Now())
	if err := valid(d); err != nil {
		t.Fatalf("credential issued right after a rotation: %v", err)
	}
	if err := valid(b); err != nil {
		t.Fatalf("credential of the previous secret refused after Rotate: %v", err)
	}
	// a2 was signed two secrets ago: retired (it would have expired anyway
	// had Issue rotated on its own schedule).
	c.Rotate(clk.Now())
	if err := valid(b); !errors.Is(err, ErrCredsRetired) {
		t.Fatalf("credential two rotations old: %v, want retired", err)
	}
	if err := valid(d); err != nil {
		t.Fatalf("credential of the previous secret refused: %v", err)
	}
}

func TestRelayCredsConcurrent(t *testing.T) {
	clk := newRelayTestClock()
	c := NewCreds(CredsConfig{TTL: time.Second, Clock: clk.Now})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 200 {
				if j%50 == 0 {
					clk.Advance(time.Second)
				}
				cred := c.Issue(relayTestLeaf(byte(i)), clk.Now())
				_, _, _ = c.Check(cred.Username, "canopy")
			}
		})
	}
	wg.Wait()
}

func FuzzParseRelayUsername(f *testing.F) {
	clk := newRelayTestClock()
	c := NewCreds(CredsConfig{Clock: clk.Now})
	f.Add(c.Issue(relayTestLeaf(1), clk.Now()).Username)
	f.Add("1:" + relayTestLeaf(0).String())
	f.Add("9223372036854775807:" + relayTestLeaf(9).String())
	f.Add("")
	f.Add(":")
	f.Add("123:abc")
	f.Add("0001:" + relayTestLeaf(1).String())
	f.Fuzz(func(t *testing.T, s string) {
		exp, leaf, err := parseRelayUsername(s)
		if err != nil {
			if !errors.Is(err, ErrCredsMalformed) {
				t.Fatalf("error %v is not ErrCredsMalformed", err)
			}
			return
		}
		// Accepted user names are canonical and bounded.
		if back := strconv.FormatInt(exp, 10) + ":" + leaf.String(); back != s {
			t.Fatalf("%q parsed to %q", s, back)
		}
		if len(s) > maxRelayUsernameLen || exp <= 0 {
			t.Fatalf("accepted %q", s)
		}
		// Check agrees with the parser.
		if _, _, err := c.Check(s, "canopy"); errors.Is(err, ErrCredsMalformed) {
			t.Fatalf("Check refused what the parser accepted: %v", err)
		}
	})
}
