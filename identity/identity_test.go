package identity

import (
	"bytes"
	"crypto/ed25519"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/canopy-p2p/canopy/internal/atomicfile"
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

// legacyKeyFile is a key file as Canopy wrote it before format 2.
func legacyKeyFile(id *Identity) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: legacyPEMType, Bytes: id.Private.Seed()})
}

// TestKeyFileFormat: a new key file is in the current format and names the
// node ID it holds.
func TestKeyFileFormat(t *testing.T) {
	dir := t.TempDir()
	id, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	want := "-----BEGIN CANOPY NODE KEY-----\nFormat: 2\nNode-ID: " + id.ID.String() + "\n\n"
	if !strings.HasPrefix(string(b), want) {
		t.Fatalf("key file begins %q, want %q", b, want)
	}
	got, format, err := decodeKeyFile(b)
	if err != nil || format != KeyFileFormat || got.ID != id.ID || !bytes.Equal(got.Private, id.Private) {
		t.Fatalf("decode: format %d, %v", format, err)
	}
}

// TestKeyFileEveryChangeIsRefused: measured on main, one base64 character
// changed in node.key started the node as another node, silently. Now every
// change of one character — replaced by any other byte, deleted, or one
// inserted — is refused, and none reads as any identity.
func TestKeyFileEveryChangeIsRefused(t *testing.T) {
	id, _ := Generate()
	good := encodeKeyFile(id)
	var variants int
	check := func(what string, b []byte) {
		t.Helper()
		variants++
		if got, _, err := decodeKeyFile(b); err == nil {
			t.Fatalf("%s: accepted, as node %s (the key is %s)\n%s", what, got.ID.Short(), id.ID.Short(), b)
		}
	}
	for i := range good {
		for c := range 256 {
			if byte(c) == good[i] {
				continue
			}
			b := bytes.Clone(good)
			b[i] = byte(c)
			check(fmt.Sprintf("byte %d set to %q", i, byte(c)), b)
		}
		check(fmt.Sprintf("byte %d deleted", i), slices.Delete(bytes.Clone(good), i, i+1))
		for _, c := range []byte("A=\n ") {
			check(fmt.Sprintf("%q inserted at %d", c, i), slices.Insert(bytes.Clone(good), i, c))
		}
	}
	check("a byte appended", append(bytes.Clone(good), '\n'))
	t.Logf("%d variants of a %d-byte key file, all refused", variants, len(good))
}

// TestDamagedKeyFileIsRefusedAndKept: LoadOrCreate refuses a damaged key
// file with an error that names it and says it is not replaced, and leaves
// it, and the directory, exactly as they were.
func TestDamagedKeyFileIsRefusedAndKept(t *testing.T) {
	id, _ := Generate()
	good := encodeKeyFile(id)
	// A sample of positions across every line of the file, and a file of
	// some other kind in its place.
	var damaged [][]byte
	for i := 0; i < len(good); i += 7 {
		b := bytes.Clone(good)
		b[i] ^= 0x01
		damaged = append(damaged, b)
	}
	damaged = append(damaged, []byte("not a key"), bytes.Repeat([]byte("x"), maxKeyFileSize+1), nil)
	for i, b := range damaged {
		dir := t.TempDir()
		path := filepath.Join(dir, KeyFileName)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := LoadOrCreate(dir)
		if got != nil || !errors.Is(err, ErrKeyFileDamaged) {
			t.Fatalf("variant %d: LoadOrCreate = %v, %v; want ErrKeyFileDamaged", i, got, err)
		}
		if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "does not replace it") {
			t.Fatalf("variant %d: the error %q does not name the file and say it is kept", i, msg)
		}
		after, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(after, b) {
			t.Fatalf("variant %d: the damaged key file was changed", i)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Fatalf("variant %d: the directory holds %d entries, want only the key file", i, len(entries))
		}
	}
}

// TestLegacyKeyFileIsUpgraded: a key file written before format 2 loads as
// the same identity and is rewritten in format 2, which loads again.
func TestLegacyKeyFileIsUpgraded(t *testing.T) {
	id, _ := Generate()
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFileName)
	if err := os.WriteFile(path, legacyKeyFile(id), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != id.ID || !bytes.Equal(got.Private, id.Private) {
		t.Fatal("a format 1 key file loaded as another identity")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, encodeKeyFile(id)) {
		t.Fatalf("the key file was not rewritten in format %d:\n%s", KeyFileFormat, b)
	}
	if fi, _ := os.Stat(path); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Fatalf("upgraded key file mode %o, want 600", fi.Mode().Perm())
	}
	if again, err := LoadOrCreate(dir); err != nil || again.ID != id.ID {
		t.Fatalf("reloading the upgraded file: %v", err)
	}
	// Format 1 never had headers; one that has them is not format 1.
	withHeader := pem.EncodeToMemory(&pem.Block{Type: legacyPEMType, Headers: map[string]string{headerFormat: "1"}, Bytes: id.Private.Seed()})
	if err := os.WriteFile(path, withHeader, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir); !errors.Is(err, ErrKeyFileDamaged) {
		t.Fatalf("a format 1 file with a header: %v", err)
	}
}

// TestLegacyKeyFileUpgradeFailureKeepsIt: when the upgrade cannot be
// written, LoadOrCreate fails and the format 1 file stays as it was.
func TestLegacyKeyFileUpgradeFailureKeepsIt(t *testing.T) {
	id, _ := Generate()
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFileName)
	old := legacyKeyFile(id)
	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	full := errors.New("no space left on device")
	writeFile = func(string, []byte, os.FileMode) error { return full }
	defer func() { writeFile = atomicfile.Write }()
	if _, err := LoadOrCreate(dir); !errors.Is(err, full) || !strings.Contains(err.Error(), "upgrade") {
		t.Fatalf("LoadOrCreate = %v, want the upgrade's error", err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, old) {
		t.Fatal("a failed upgrade changed the key file")
	}
	writeFile = atomicfile.Write
	if got, err := LoadOrCreate(dir); err != nil || got.ID != id.ID {
		t.Fatalf("the next start: %v", err)
	}
}

func FuzzDecodeKeyFile(f *testing.F) {
	id, _ := Generate()
	f.Add(encodeKeyFile(id))
	f.Add(legacyKeyFile(id))
	f.Add([]byte("-----BEGIN CANOPY NODE KEY-----\nFormat: 2\n\n-----END CANOPY NODE KEY-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, format, err := decodeKeyFile(b)
		if err != nil {
			if got != nil || format != 0 {
				t.Fatal("an error with a result")
			}
			return
		}
		if got.ID != IDFromPublicKey(got.Public) || !bytes.Equal(got.Private.Public().(ed25519.PublicKey), got.Public) {
			t.Fatal("an identity whose parts do not match")
		}
		switch format {
		case KeyFileFormat:
			// Only the exact bytes Canopy writes are accepted.
			if !bytes.Equal(b, encodeKeyFile(got)) {
				t.Fatalf("accepted a format %d file that is not as Canopy writes it:\n%q", format, b)
			}
		case 1:
		default:
			t.Fatalf("format %d", format)
		}
	})
}
