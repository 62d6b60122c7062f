package api

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// TokenFileName is the file in a node's data directory that holds its API
// token. The node creates it on first start (mode 0600, so that only the
// user who runs the node can read it); the command line reads it from the
// same data directory.
const TokenFileName = "api.token"

// TokenBytes is the entropy of a token: 256 bits, so that guessing one is
// out of the question even for a local process that may try as fast as
// loopback allows.
const TokenBytes = 32

// TokenLen is the length of a token as written: TokenBytes in lower-case hex.
const TokenLen = 2 * TokenBytes

// maxTokenFile bounds what ReadTokenFile reads: a token, a newline and room
// for an editor's stray whitespace. Anything longer is not a token file, and
// reading it whole (it could be a device or a huge file put there by
// mistake) would only waste memory.
const maxTokenFile = 4 << 10

// CookieName begins the name of the cookie that carries a web UI session
// (the node appends "_" and its API port). It holds a session ID, never the
// token; the server accepts it only from its own origin, and programs send
// the Authorization header instead.
const CookieName = "canopy_session"

// ErrBadToken reports a token (in a file, a flag or the environment) that is
// not TokenLen lower-case hex digits.
var ErrBadToken = errors.New("not a Canopy API token")

// ParseToken checks a token as written in a token file, a flag or the
// environment: TokenLen lower-case hex digits, optionally followed by
// whitespace (a newline, as editors and `echo` leave one). It returns the
// token without the whitespace.
func ParseToken(b []byte) (string, error) {
	s := strings.TrimRight(string(b), " \t\r\n")
	switch {
	case s == "":
		return "", fmt.Errorf("%w: empty", ErrBadToken)
	case len(s) != TokenLen:
		return "", fmt.Errorf("%w: %d characters, want %d hex digits", ErrBadToken, len(s), TokenLen)
	}
	for i := 0; i < len(s); i++ {
		// Lower case only: the server compares tokens byte for byte, so
		// accepting "AB" for "ab" here would only defer the refusal.
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", fmt.Errorf("%w: character %d is not a lower-case hex digit", ErrBadToken, i+1)
		}
	}
	return s, nil
}

// NewTokenText encodes TokenBytes random bytes as a token file's content.
func NewTokenText(random []byte) ([]byte, error) {
	if len(random) != TokenBytes {
		return nil, fmt.Errorf("api: a token needs %d random bytes, got %d", TokenBytes, len(random))
	}
	return []byte(hex.EncodeToString(random) + "\n"), nil
}

// TokenPath is where the node with data directory dataDir keeps its token.
func TokenPath(dataDir string) string { return filepath.Join(dataDir, TokenFileName) }

// ReadTokenFile reads and checks the token of the node whose data directory
// is dataDir. A missing file gives an error wrapping os.ErrNotExist; a file
// that is empty or holds anything but a token gives one wrapping
// ErrBadToken, naming the file.
func ReadTokenFile(dataDir string) (string, error) {
	path := TokenPath(dataDir)
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("API token: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("API token: read %s: %w", path, err)
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("API token file %s: %w: longer than %d bytes", path, ErrBadToken, maxTokenFile)
	}
	tok, err := ParseToken(b)
	if err != nil {
		return "", fmt.Errorf("API token file %s is damaged (%w); delete it and restart the node to make a new one", path, err)
	}
	return tok, nil
}
