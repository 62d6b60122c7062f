package webui

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// clock is a settable clock for the session store.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// TestSessions: a code works once and only before it expires; a session
// lives while it is used and ends after SessionIdle unused, or at End; the
// bounds drop the oldest.
func TestSessions(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	s, err := NewSessions(SessionConfig{Now: c.now, MaxSessions: 2, MaxCodes: 2})
	if err != nil {
		t.Fatal(err)
	}
	code, exp, err := s.NewCode()
	if err != nil || !exp.Equal(c.t.Add(DefaultCodeTTL)) {
		t.Fatalf("code: %v, expires %v", err, exp)
	}
	sess, ok, err := s.Redeem(code)
	if err != nil || !ok || !s.Valid(sess) || sess == code {
		t.Fatalf("first redeem: %q %v %v", sess, ok, err)
	}
	if _, ok, _ := s.Redeem(code); ok {
		t.Fatal("a code worked twice")
	}
	late, _, _ := s.NewCode()
	c.t = c.t.Add(DefaultCodeTTL)
	if _, ok, _ := s.Redeem(late); ok {
		t.Fatal("an expired code worked")
	}
	if _, ok, _ := s.Redeem(""); ok {
		t.Fatal("an empty code worked")
	}
	// Used just before the idle limit, the session goes on; unused for
	// the whole of it, it ends.
	if !s.Valid(sess) {
		t.Fatal("a session ended within its idle limit")
	}
	c.t = c.t.Add(DefaultSessionIdle - time.Second)
	if !s.Valid(sess) {
		t.Fatal("a session in use ended")
	}
	c.t = c.t.Add(DefaultSessionIdle)
	if s.Valid(sess) {
		t.Fatal("a session unused for SessionIdle is still valid")
	}
	a, _ := s.NewSession()
	c.t = c.t.Add(time.Second)
	b, _ := s.NewSession()
	c.t = c.t.Add(time.Second)
	s.Valid(a) // a is now the more recently used
	c.t = c.t.Add(time.Second)
	d, _ := s.NewSession()
	if !s.Valid(a) || s.Valid(b) || !s.Valid(d) {
		t.Fatal("the bound did not drop the least recently used session")
	}
	s.End(a)
	if s.Valid(a) {
		t.Fatal("an ended session is valid")
	}
	for range 5 {
		s.NewCode()
	}
	if codes, sessions := s.Len(); codes != 2 || sessions != 1 {
		t.Fatalf("held %d codes and %d sessions, want 2 and 1", codes, sessions)
	}
	if _, err := NewSessions(SessionConfig{MaxSessions: -1}); err == nil {
		t.Fatal("a negative bound was accepted")
	}
}

// FuzzLogin sends arbitrary bodies to the token login. Only a body whose
// token is the right one logs in (a 200 with a session cookie); anything
// else is a 400 or 401 and starts no session.
func FuzzLogin(f *testing.F) {
	const token = "5a5a"
	for _, b := range []string{`{"token":"5a5a"}`, `{"token":" 5a5a\n"}`, `{"token":"5a5b"}`, `{}`, `{"token":1}`, `{"token":"5a5a","x":1}`, `[`, strings.Repeat(" ", 2000) + `{"token":"5a5a"}`} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s, _ := NewSessions(SessionConfig{})
		mux := http.NewServeMux()
		Register(mux, Config{Sessions: s, CookieName: "c", CheckToken: func(tok string) bool { return tok == token }})
		r := httptest.NewRequest(http.MethodPost, LoginPath, bytes.NewReader(body))
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		_, sessions := s.Len()
		switch w.Code {
		case http.StatusOK:
			var req LoginRequest
			if err := json.Unmarshal(body, &req); sessions != 1 || len(w.Result().Cookies()) != 1 || err != nil || strings.TrimSpace(req.Token) != token {
				t.Fatalf("logged in with %q: %d sessions, cookies %v", body, sessions, w.Result().Cookies())
			}
		case http.StatusBadRequest, http.StatusUnauthorized:
			if sessions != 0 || len(w.Result().Cookies()) != 0 {
				t.Fatalf("refused %q but started a session", body)
			}
		default:
			t.Fatalf("answer %d to %q", w.Code, body)
		}
	})
}
