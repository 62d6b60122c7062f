package node

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/webui"
)

// The refusal log writes one line per reason per refusalLogInterval and
// says how many it left out; the reasons are limited independently.
func TestRefusalLogIsRateLimited(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	now := time.Unix(1_000_000, 0)
	l := newRefusalLog(zap.New(core), func() time.Time { return now })
	r := httptest.NewRequest(http.MethodGet, "/v1/status", nil)
	r.Host = strings.Repeat("h", 10_000)
	for range 5 {
		l.log(refusedHost, r)
	}
	l.log(refusedOrigin, r)
	if got := logs.Len(); got != 2 {
		t.Fatalf("%d lines for 5 host and 1 origin refusals in an instant, want 2", got)
	}
	now = now.Add(refusalLogInterval)
	l.log(refusedHost, r)
	all := logs.All()
	if len(all) != 3 {
		t.Fatalf("%d lines after the interval, want 3", len(all))
	}
	last := all[2].ContextMap()
	if last["reason"] != "host" || last["not_logged_since_last"] != uint64(4) {
		t.Errorf("third line %v, want reason host with 4 not logged", last)
	}
	if h := last["host"].(string); len(h) > maxLoggedHeader+len("…") {
		t.Errorf("logged a %d-byte Host header, want at most %d", len(h), maxLoggedHeader)
	}
}

// loopbackOracle is what a loopback Host may be, computed differently from
// loopbackHost (net.ParseIP, not netip): the names and addresses the
// guard lets through.
func loopbackOracle(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// FuzzAPIGuard sends requests with arbitrary Host, Origin, Sec-Fetch-Site,
// Authorization and Cookie headers through the guard. Whatever passes must
// have a loopback Host, no foreign Origin or fetch site, and the token or a
// live web UI session (never the token in a cookie).
func FuzzAPIGuard(f *testing.F) {
	tok := strings.Repeat("5a", api.TokenBytes)
	sessions, err := webui.NewSessions(webui.SessionConfig{})
	if err != nil {
		f.Fatal(err)
	}
	sess, err := sessions.NewSession()
	if err != nil {
		f.Fatal(err)
	}
	cookie := sessionCookie("7375") + "="
	for _, s := range [][5]string{
		{"127.0.0.1:7375", "", "", "Bearer " + tok, ""},
		{"evil.example", "http://evil.example", "cross-site", "Bearer " + tok, ""},
		{"localhost:7375", "http://localhost:7375", "same-origin", "", cookie + sess},
		{"localhost:7375", "", "same-origin", "", cookie + sess},
		{"127.0.0.1:7375", "", "none", "", cookie + tok},
		{"[::1]:7375", "null", "none", "bearer " + tok, ""},
		{"localhost.", "http://127.0.0.1:7375/", "same-site", "Basic x", ""},
		{"[::ffff:127.0.0.1]", "http://[::1]:7375", "", "Bearer  " + tok + " ", cookie + sess},
		{"127.0.0.1:x", "http://user@127.0.0.1:7375", "", "Bearer " + tok[:10], ""},
		{"[fe80::1%lo]:7375", "http://127.1:7375", "", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	f.Fuzz(func(t *testing.T, host, origin, site, auth, cookie string) {
		reached := false
		g := newAPIGuard(tok, "7375", 1<<10, sessions, zap.NewNop(), http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }))
		r := httptest.NewRequest(http.MethodGet, "/v1/status", nil)
		r.Host = host
		for k, v := range map[string]string{"Origin": origin, "Sec-Fetch-Site": site, "Authorization": auth, "Cookie": cookie} {
			if v != "" {
				r.Header.Set(k, v)
			}
		}
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		if !reached {
			if w.Code != http.StatusUnauthorized && w.Code != http.StatusForbidden {
				t.Fatalf("refused with %d, want 401 or 403", w.Code)
			}
			return
		}
		h := host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			h = hh
		}
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		if !loopbackOracle(h) {
			t.Fatalf("passed with Host %q", host)
		}
		if site != "" && site != "same-origin" && site != "none" {
			t.Fatalf("passed with Sec-Fetch-Site %q", site)
		}
		if origin != "" {
			u, err := url.Parse(origin)
			if err != nil || u.Scheme != "http" || u.Port() != "7375" || !loopbackOracle(u.Hostname()) {
				t.Fatalf("passed with Origin %q", origin)
			}
		}
		if !strings.Contains(auth, tok) && !strings.Contains(cookie, sess) {
			t.Fatalf("passed without the token or a session (Authorization %q, Cookie %q)", auth, cookie)
		}
		if auth == "" && origin == "" && site != "same-origin" && site != "none" {
			t.Fatalf("a cookie passed without proof of origin (site %q)", site)
		}
	})
}
