package api

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseToken(t *testing.T) {
	good := strings.Repeat("0123456789abcdef", 4)
	for in, want := range map[string]string{good: good, good + "\n": good, good + "\r\n": good, good + " \t\n\n": good} {
		if got, err := ParseToken([]byte(in)); err != nil || got != want {
			t.Errorf("ParseToken(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "\n", good[:63], good + "0", strings.ToUpper(good), " " + good, good[:63] + "g", good[:32] + "\n" + good[:32]} {
		if got, err := ParseToken([]byte(in)); !errors.Is(err, ErrBadToken) {
			t.Errorf("ParseToken(%q) = %q, %v; want ErrBadToken", in, got, err)
		}
	}
}

func TestNewTokenTextRoundTrip(t *testing.T) {
	random := bytes.Repeat([]byte{0xa5}, TokenBytes)
	text, err := NewTokenText(random)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ParseToken(text)
	if err != nil || tok != hex.EncodeToString(random) {
		t.Fatalf("ParseToken(NewTokenText) = %q, %v", tok, err)
	}
	if _, err := NewTokenText(random[:16]); err == nil {
		t.Fatal("NewTokenText took 128 bits")
	}
}

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadTokenFile(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v, want ErrNotExist", err)
	}
	path := TokenPath(dir)
	good := strings.Repeat("ab", TokenBytes)
	for content, wantErr := range map[string]bool{
		good + "\n":                              false,
		"":                                       true,
		"not a token\n":                          true,
		good + strings.Repeat(" ", maxTokenFile): true, // too long to be a token file
		good + strings.Repeat(" ", maxTokenFile-len(good)): false,
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		tok, err := ReadTokenFile(dir)
		if wantErr {
			if !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), path) {
				t.Errorf("%d-byte file: %q, %v; want ErrBadToken naming %s", len(content), tok, err, path)
			}
		} else if err != nil || tok != good {
			t.Errorf("%d-byte file: %q, %v; want the token", len(content), tok, err)
		}
	}
	if filepath.Base(path) != TokenFileName {
		t.Errorf("TokenPath = %s", path)
	}
}

// FuzzParseToken: whatever ParseToken accepts is TokenLen lower-case hex
// digits, a prefix of its input followed only by white space, and parses
// to itself.
func FuzzParseToken(f *testing.F) {
	good := strings.Repeat("0f", TokenBytes)
	for _, s := range []string{good, good + "\n", "", strings.ToUpper(good), good[:10], good + "00", "\xff" + good[1:], good + "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := ParseToken(b)
		if err != nil {
			if !errors.Is(err, ErrBadToken) {
				t.Fatalf("error %v does not wrap ErrBadToken", err)
			}
			return
		}
		raw, herr := hex.DecodeString(tok)
		if herr != nil || len(raw) != TokenBytes || strings.ToLower(tok) != tok {
			t.Fatalf("accepted %q", tok)
		}
		if !bytes.HasPrefix(b, []byte(tok)) || strings.Trim(string(b[len(tok):]), " \t\r\n") != "" {
			t.Fatalf("accepted %q as %q", b, tok)
		}
		if again, err := ParseToken([]byte(tok)); err != nil || again != tok {
			t.Fatalf("%q does not parse to itself: %q, %v", tok, again, err)
		}
	})
}
