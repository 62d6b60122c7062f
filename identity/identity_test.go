package identity

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	a, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key file mode %o, want 600", perm)
	}
	b, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID || a.ID != IDFromPublicKey(b.Public) {
		t.Fatal("reloading the key gave another identity")
	}
	if err := os.WriteFile(filepath.Join(dir, KeyFileName), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir); err == nil {
		t.Fatal("a damaged key file was accepted (and would have been replaced silently)")
	}
}

func TestNodeIDText(t *testing.T) {
	id, _ := Generate()
	s := id.ID.String()
	if len(s) != 52 || id.ID.Short() != s[:10] {
		t.Fatalf("string form %q", s)
	}
	p, err := ParseNodeID(s)
	if err != nil || p != id.ID {
		t.Fatalf("parse: %v", err)
	}
	for _, bad := range []string{"", "abc", s[:51], s + "a", s[:51] + "1", s[:51] + "!"} {
		if _, err := ParseNodeID(bad); !errors.Is(err, ErrBadNodeID) {
			t.Errorf("ParseNodeID(%q) = %v", bad, err)
		}
	}
}

func TestSignVerify(t *testing.T) {
	a, _ := Generate()
	b, _ := Generate()
	msg := []byte("offer")
	sig := a.Sign(msg)
	if err := Verify(a.ID, a.Public, msg, sig); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"other message":       Verify(a.ID, a.Public, []byte("answer"), sig),
		"key of another node": Verify(b.ID, a.Public, msg, sig),
		"other key":           Verify(a.ID, b.Public, msg, sig),
		"short key":           Verify(a.ID, a.Public[:5], msg, sig),
	} {
		if !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzParseNodeID(f *testing.F) {
	id, _ := Generate()
	f.Add(id.ID.String())
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseNodeID(s)
		if err != nil {
			return
		}
		if p.String() != strings.ToLower(s) {
			t.Fatalf("%q parsed, but its canonical form is %q", s, p.String())
		}
	})
}
