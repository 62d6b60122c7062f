package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/demo"
	"github.com/canopy-p2p/canopy/node"
	"github.com/canopy-p2p/canopy/promotion"
)

// startAPINode starts a leaf-only node that serves the local API on a free
// loopback port and returns it with its token, read from its data directory
// as the command line reads it.
func startAPINode(t *testing.T, mod func(*node.Config)) (*node.Node, string) {
	t.Helper()
	cfg := demo.NodeOptions(t.TempDir(), "api", testLog(t))
	cfg.API, cfg.Consent, cfg.RoleInterval = "127.0.0.1:0", promotion.ConsentNever, node.NoRoleLoop
	if mod != nil {
		mod(&cfg)
	}
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	tok, err := api.ReadTokenFile(filepath.Dir(n.APITokenFile()))
	if err != nil {
		t.Fatal(err)
	}
	return n, tok
}

// apiRequest describes one raw HTTP request to the API.
type apiRequest struct {
	method, path string
	host         string            // Host header; empty: the API's address
	token        string            // Authorization: Bearer; empty: none
	header       map[string]string // further headers
	body         io.Reader
	chunked      bool // send the body without a length
}

type apiAnswer struct {
	code   int
	err    string // the api.Error message
	header http.Header
}

func send(t *testing.T, n *node.Node, r apiRequest) apiAnswer {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	body := r.body
	if r.chunked && body != nil {
		body = struct{ io.Reader }{body} // hides the length: Transfer-Encoding: chunked
	}
	req, err := http.NewRequest(r.method, "http://"+n.APIAddr()+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.chunked {
		req.ContentLength = -1
	}
	if r.host != "" {
		req.Host = r.host
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	a := apiAnswer{code: resp.StatusCode, header: resp.Header}
	if resp.StatusCode/100 != 2 {
		var e api.Error
		if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
			t.Fatalf("%s %s: %d answer is not an api.Error: %q", r.method, r.path, resp.StatusCode, b)
		}
		a.err = e.Error
	}
	return a
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

// TestAPIRefusals sends each kind of request the API must refuse, with
// everything else right, and then the same request made right; each
// refusal is counted under its reason.
func TestAPIRefusals(t *testing.T) {
	n, tok := startAPINode(t, nil)
	_, port, _ := strings.Cut(n.APIAddr(), ":")
	wrong := strings.Repeat("0", api.TokenLen)
	js := map[string]string{"Content-Type": "application/json"}
	search := func() io.Reader { return jsonBody(api.SearchRequest{Words: "song", TimeoutMS: 10}) }
	for _, tc := range []struct {
		name   string
		req    apiRequest
		code   int
		msg    string
		reason func(node.APIRefusals) uint64
	}{
		{"no token", apiRequest{path: "/v1/status"}, 401, "needs its token", func(r node.APIRefusals) uint64 { return r.NoToken }},
		{"wrong token", apiRequest{path: "/v1/status", token: wrong}, 401, "wrong API token", func(r node.APIRefusals) uint64 { return r.WrongToken }},
		{"token prefix", apiRequest{path: "/v1/status", token: tok[:32]}, 401, "wrong API token", func(r node.APIRefusals) uint64 { return r.WrongToken }},
		{"basic auth", apiRequest{path: "/v1/status", header: map[string]string{"Authorization": "Basic " + tok}}, 401, "Bearer", func(r node.APIRefusals) uint64 { return r.WrongToken }},
		{"evil host", apiRequest{path: "/v1/status", token: tok, host: "evil.example"}, 403, "loopback host", func(r node.APIRefusals) uint64 { return r.Host }},
		{"evil host with the API port", apiRequest{path: "/v1/status", token: tok, host: "evil.example:" + port}, 403, "loopback host", func(r node.APIRefusals) uint64 { return r.Host }},
		{"localhost. is looked up in the DNS", apiRequest{path: "/v1/status", token: tok, host: "localhost.:" + port}, 403, "loopback host", func(r node.APIRefusals) uint64 { return r.Host }},
		{"a name under localhost", apiRequest{path: "/v1/status", token: tok, host: "127.0.0.1.nip.io:" + port}, 403, "loopback host", func(r node.APIRefusals) uint64 { return r.Host }},
		{"a private address", apiRequest{path: "/v1/status", token: tok, host: "192.168.1.1:" + port}, 403, "loopback host", func(r node.APIRefusals) uint64 { return r.Host }},
		{"evil origin", apiRequest{path: "/v1/status", token: tok, header: map[string]string{"Origin": "http://evil.example"}}, 403, "cross-origin", func(r node.APIRefusals) uint64 { return r.Origin }},
		{"null origin", apiRequest{path: "/v1/status", token: tok, header: map[string]string{"Origin": "null"}}, 403, "cross-origin", func(r node.APIRefusals) uint64 { return r.Origin }},
		{"another local port", apiRequest{path: "/v1/status", token: tok, header: map[string]string{"Origin": "http://127.0.0.1:1"}}, 403, "cross-origin", func(r node.APIRefusals) uint64 { return r.Origin }},
		{"https origin", apiRequest{path: "/v1/status", token: tok, header: map[string]string{"Origin": "https://" + n.APIAddr()}}, 403, "cross-origin", func(r node.APIRefusals) uint64 { return r.Origin }},
		{"cross-site fetch", apiRequest{path: "/v1/status", token: tok, header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, 403, "other web pages", func(r node.APIRefusals) uint64 { return r.CrossSite }},
		{"same-site fetch (another port)", apiRequest{path: "/v1/status", token: tok, header: map[string]string{"Sec-Fetch-Site": "same-site"}}, 403, "other web pages", func(r node.APIRefusals) uint64 { return r.CrossSite }},
		{"text/plain body", apiRequest{method: "POST", path: "/v1/search", token: tok, header: map[string]string{"Content-Type": "text/plain"}, body: search()}, 415, "application/json", func(r node.APIRefusals) uint64 { return r.ContentType }},
		{"form body", apiRequest{method: "POST", path: "/v1/search", token: tok, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: strings.NewReader("words=x")}, 415, "application/json", func(r node.APIRefusals) uint64 { return r.ContentType }},
		{"no content type", apiRequest{method: "POST", path: "/v1/natcheck", token: tok}, 415, "application/json", func(r node.APIRefusals) uint64 { return r.ContentType }},
		{"1 MiB body", apiRequest{method: "POST", path: "/v1/search", token: tok, header: js, body: bytes.NewReader(bytes.Repeat([]byte(" "), 1<<20))}, 413, "request too large", func(r node.APIRefusals) uint64 { return r.TooLarge }},
		{"1 MiB body, chunked", apiRequest{method: "POST", path: "/v1/search", token: tok, header: js, chunked: true,
			body: io.MultiReader(strings.NewReader(`{"words":"`), bytes.NewReader(bytes.Repeat([]byte("a"), 1<<20)), strings.NewReader(`"}`))}, 413, "request too large", func(r node.APIRefusals) uint64 { return r.TooLarge }},
		{"1 MiB of space after a valid value, chunked", apiRequest{method: "POST", path: "/v1/search", token: tok, header: js, chunked: true,
			body: io.MultiReader(search(), bytes.NewReader(bytes.Repeat([]byte(" "), 1<<20)))}, 413, "request too large", func(r node.APIRefusals) uint64 { return r.TooLarge }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.reason(n.APIRefusals())
			a := send(t, n, tc.req)
			if a.code != tc.code || !strings.Contains(a.err, tc.msg) {
				t.Fatalf("answer %d %q, want %d with %q", a.code, a.err, tc.code, tc.msg)
			}
			if tc.code == 401 && !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without WWW-Authenticate: Bearer (%q)", a.header.Get("WWW-Authenticate"))
			}
			if got := tc.reason(n.APIRefusals()); got != before+1 {
				t.Errorf("its refusal counter went from %d to %d, want +1 (%+v)", before, got, n.APIRefusals())
			}
		})
	}

	// The same requests, made right, pass the guard: status answers 200;
	// the search reaches the handler, which says the node is attached to
	// no supernode (502), not that the request was refused.
	before := n.APIRefusals()
	for _, tc := range []struct {
		name string
		req  apiRequest
		code int
	}{
		{"status", apiRequest{path: "/v1/status", token: tok}, 200},
		{"localhost host", apiRequest{path: "/v1/status", token: tok, host: "localhost:" + port}, 200},
		{"other loopback address, other port", apiRequest{path: "/v1/status", token: tok, host: "127.0.0.9:1"}, 200},
		{"IPv6 loopback", apiRequest{path: "/v1/status", token: tok, host: "[::1]:" + port}, 200},
		{"host without port", apiRequest{path: "/v1/status", token: tok, host: "localhost"}, 200},
		{"own origin", apiRequest{path: "/v1/status", token: tok, header: map[string]string{"Origin": "http://" + n.APIAddr()}}, 200},
		{"own origin by name", apiRequest{path: "/v1/status", token: tok, header: map[string]string{"Origin": "http://localhost:" + port}}, 200},
		{"same-origin fetch", apiRequest{path: "/v1/status", token: tok, header: map[string]string{"Sec-Fetch-Site": "same-origin"}}, 200},
		{"json with charset", apiRequest{method: "POST", path: "/v1/search", token: tok, header: map[string]string{"Content-Type": "application/json; charset=utf-8"}, body: search()}, 502},
		{"chunked json", apiRequest{method: "POST", path: "/v1/search", token: tok, header: js, chunked: true, body: search()}, 502},
	} {
		if a := send(t, n, tc.req); a.code != tc.code {
			t.Errorf("%s: answer %d %q, want %d", tc.name, a.code, a.err, tc.code)
		}
	}
	if after := n.APIRefusals(); after != before {
		t.Errorf("requests made right were counted as refusals: %+v, then %+v", before, after)
	}
	if a := send(t, n, apiRequest{method: "POST", path: "/v1/search", token: tok, header: js, body: strings.NewReader(`{"words":"x"} {"words":"y"}`)}); a.code != 400 {
		t.Errorf("two JSON values: answer %d %q, want 400", a.code, a.err)
	}

	// The client sends the token, and says 401 in a way callers can test.
	st, err := api.NewClient(n.APIAddr(), tok).Status(context.Background())
	if err != nil || st.ID != n.ID().String() {
		t.Fatalf("client with the token: %v %+v", err, st)
	}
	if _, err := api.NewClient(n.APIAddr(), wrong).Status(context.Background()); !errors.Is(err, api.ErrUnauthorized) {
		t.Fatalf("client with a wrong token: %v, want ErrUnauthorized", err)
	}
}

// uiSession logs in to n's web UI with the token, as the login page does,
// and returns the session cookie ("name=value").
func uiSession(t *testing.T, n *node.Node, tok string) string {
	t.Helper()
	req, err := http.NewRequest("POST", "http://"+n.APIAddr()+"/ui/login", jsonBody(map[string]string{"token": tok}))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "http://"+n.APIAddr())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cs := resp.Cookies()
	if resp.StatusCode != 200 || len(cs) != 1 || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("login: %d, cookies %v: want 200 and one HttpOnly SameSite=Strict cookie", resp.StatusCode, cs)
	}
	if cs[0].Value == tok {
		t.Fatal("the session cookie holds the token")
	}
	return cs[0].Name + "=" + cs[0].Value
}

// TestAPICookie: the session cookie counts only on a request that proves
// it comes from the API's own origin, since browsers send cookies to every
// port of localhost; a request that changes something needs the Origin
// header itself. The token in a cookie counts for nothing.
func TestAPICookie(t *testing.T) {
	n, tok := startAPINode(t, nil)
	own := "http://" + n.APIAddr()
	cookie := uiSession(t, n, tok)
	name, _, _ := strings.Cut(cookie, "=")
	for _, tc := range []struct {
		name   string
		method string
		header map[string]string
		code   int
	}{
		{"own origin", "GET", map[string]string{"Cookie": cookie, "Origin": own}, 200},
		{"same-origin fetch", "GET", map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "same-origin"}, 200},
		{"typed into the address bar", "GET", map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "none"}, 200},
		{"no proof of origin", "GET", map[string]string{"Cookie": cookie}, 403},
		{"a POST needs more than none", "POST", map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "none", "Content-Type": "application/json"}, 403},
		{"a POST needs its Origin", "POST", map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}, 403},
		{"a POST from its own origin", "POST", map[string]string{"Cookie": cookie, "Origin": own, "Content-Type": "application/json"}, 200},
		{"a POST from another origin", "POST", map[string]string{"Cookie": cookie, "Origin": "http://127.0.0.1:1", "Content-Type": "application/json"}, 403},
		{"wrong cookie", "GET", map[string]string{"Cookie": name + "=" + strings.Repeat("1", 64), "Origin": own}, 401},
		{"the token as the cookie", "GET", map[string]string{"Cookie": name + "=" + tok, "Origin": own}, 401},
		{"from another page", "GET", map[string]string{"Cookie": cookie, "Origin": "http://localhost:1"}, 403},
	} {
		path := "/v1/status"
		if tc.method == "POST" {
			path = "/v1/ui/code"
		}
		a := send(t, n, apiRequest{method: tc.method, path: path, header: tc.header, body: strings.NewReader("{}")})
		if a.code != tc.code {
			t.Errorf("%s: answer %d %q, want %d", tc.name, a.code, a.err, tc.code)
		}
	}
}

// TestAPIWebPageAttack is the request of the issue: a page on
// evil.example posts a download into ~/.config/autostart/ as text/plain
// (which needs no CORS preflight), as a rebound name and directly. Nothing
// is created.
func TestAPIWebPageAttack(t *testing.T) {
	n, tok := startAPINode(t, nil)
	target := filepath.Join(t.TempDir(), ".config", "autostart")
	body := fmt.Sprintf(`{"id":%q,"out":%q}`, strings.Repeat("ab", 32), target)
	page := map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
	for _, host := range []string{"evil.example", ""} {
		a := send(t, n, apiRequest{method: "POST", path: "/v1/get", host: host, header: page, body: strings.NewReader(body)})
		if a.code != 403 {
			t.Errorf("host %q: answer %d %q, want 403", host, a.code, a.err)
		}
	}
	// With the token but a text/plain body: 415.
	if a := send(t, n, apiRequest{method: "POST", path: "/v1/get", token: tok, header: map[string]string{"Content-Type": "text/plain"}, body: strings.NewReader(body)}); a.code != 415 {
		t.Errorf("text/plain with the token: answer %d %q, want 415", a.code, a.err)
	}
	if _, err := os.Stat(filepath.Dir(target)); !os.IsNotExist(err) {
		t.Fatalf("%s exists after the attack (%v)", filepath.Dir(target), err)
	}
}

// TestAPIGetOut downloads through the API: into the downloads directory
// when the request names no directory, into a missing directory inside it
// (created), and into an existing directory elsewhere; a missing directory
// outside it is refused and not created, however the path is dressed up.
func TestAPIGetOut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	want := bytes.Repeat([]byte("token guarded song "), 20000)
	files := []map[string][]byte{{}, {"Guarded Song.bin": want}}
	net, err := demo.Start(ctx, dir, 1, 2, files, "127.0.0.1:0", testLog(t))
	if net != nil {
		defer net.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := net.WaitSettled(ctx); err != nil {
		t.Fatal(err)
	}
	n := net.Leaves[0]
	data := filepath.Dir(n.APITokenFile())
	tok, err := api.ReadTokenFile(data)
	if err != nil {
		t.Fatal(err)
	}
	c := api.NewClient(n.APIAddr(), tok)
	res, err := c.Search(ctx, api.SearchRequest{Words: "guarded song", TimeoutMS: 2000, Limit: 1})
	if err != nil || len(res.Hits) != 1 {
		t.Fatalf("search: %v %+v", err, res)
	}
	id := res.Hits[0].ID
	downloads := filepath.Join(data, node.DownloadsDirName)
	get := func(out string) (string, error) {
		ev, err := c.Get(ctx, api.GetRequest{ID: id, Out: out}, nil)
		if err != nil {
			return "", err
		}
		got, err := os.ReadFile(ev.Path)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: the downloaded file differs (%v)", ev.Path, err)
		}
		return ev.Path, nil
	}
	for _, tc := range []struct{ out, wantDir string }{
		{"", downloads},
		{filepath.Join(downloads, "albums", "new"), filepath.Join(downloads, "albums", "new")},
		{filepath.Join(downloads, "x", "..", "y"), filepath.Join(downloads, "y")},
		{filepath.Join(dir, "leaf2"), filepath.Join(dir, "leaf2")}, // exists, outside: the user's choice
	} {
		path, err := get(tc.out)
		if err != nil {
			t.Fatalf("get into %q: %v", tc.out, err)
		}
		if filepath.Dir(path) != tc.wantDir {
			t.Errorf("get into %q saved %s, want it in %s", tc.out, path, tc.wantDir)
		}
	}

	outside := filepath.Join(dir, "autostart")
	if err := os.Symlink(dir, filepath.Join(downloads, "link-out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "dangling"), filepath.Join(downloads, "dangling")); err != nil {
		t.Fatal(err)
	}
	before := n.APIRefusals().Out
	refused := []struct{ out, msg string }{
		{outside, "only inside its downloads directory"},
		{filepath.Join(downloads, "..", "..", "autostart"), "only inside its downloads directory"}, // cleaned: outside
		{downloads + "-evil", "only inside its downloads directory"},                               // a prefix is not inside
		{filepath.Join(downloads, "link-out", "autostart"), "only inside its downloads directory"}, // a link out of it
		{filepath.Join(downloads, "dangling"), "symbolic link"},                                    // a link to a missing directory
		{filepath.Join(downloads, "dangling", "autostart"), "symbolic link"},                       // and below it
		{"relative/dir", "not an absolute directory"},
		{filepath.Join(dir, "leaf2", "shared", "Guarded Song.bin"), "not a directory"},
	}
	for _, tc := range refused {
		if _, err := get(tc.out); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("get into %q: %v, want a refusal with %q", tc.out, err, tc.msg)
		}
	}
	if got := n.APIRefusals().Out; got != before+uint64(len(refused)) {
		t.Errorf("out refusals went from %d to %d, want +%d", before, got, len(refused))
	}
	for _, p := range []string{outside, downloads + "-evil", filepath.Join(dir, "dangling")} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after a refused download (%v)", p, err)
		}
	}
}

// TestAPITokenFile: the first start creates the token (0600, TokenLen hex
// digits), later starts reuse it, and a token file that is empty, damaged
// or readable by others stops the node with an error that names the file.
func TestAPITokenFile(t *testing.T) {
	data := t.TempDir()
	n, tok := startAPINode(t, func(c *node.Config) { c.DataDir = data })
	path := n.APITokenFile()
	if path != filepath.Join(data, api.TokenFileName) {
		t.Fatalf("token file %s, want it in the data directory %s", path, data)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("token file mode %v, want 0600", perm)
	}
	if len(tok) != api.TokenLen {
		t.Errorf("token %q: %d characters, want %d", tok, len(tok), api.TokenLen)
	}
	n.Close()
	n2, tok2 := startAPINode(t, func(c *node.Config) { c.DataDir = data })
	if tok2 != tok {
		t.Fatalf("the second start made a new token")
	}
	if a := send(t, n2, apiRequest{path: "/v1/status", token: tok}); a.code != 200 {
		t.Fatalf("the old token no longer works: %d %q", a.code, a.err)
	}
	n2.Close()

	for _, tc := range []struct {
		name    string
		content string
		perm    os.FileMode
		msg     string
	}{
		{"empty", "", 0o600, "empty"},
		{"short", "abc\n", 0o600, "damaged"},
		{"upper case", strings.ToUpper(tok), 0o600, "damaged"},
		{"readable by others", tok + "\n", 0o644, "readable by other users"},
	} {
		if err := os.WriteFile(path, []byte(tc.content), tc.perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tc.perm); err != nil {
			t.Fatal(err)
		}
		cfg := demo.NodeOptions(t.TempDir(), "bad", testLog(t))
		cfg.DataDir, cfg.API, cfg.Consent = data, "127.0.0.1:0", promotion.ConsentNever
		n, err := node.Start(context.Background(), cfg)
		if err == nil {
			n.Close()
			t.Errorf("%s token file: the node started", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s token file: %v, want an error naming %s with %q", tc.name, err, path, tc.msg)
		}
		// Nothing is lost: the node does not replace a file it cannot read.
		if b, _ := os.ReadFile(path); string(b) != tc.content {
			t.Errorf("%s token file: rewritten to %q", tc.name, b)
		}
	}
}
