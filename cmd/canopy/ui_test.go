package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/demo"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/node"
	"github.com/canopy-p2p/canopy/promotion"
)

// TestUICommand runs `canopy ui` against a node: it prints a one-time
// link that logs a browser in once (a session cookie and a redirect that
// drops the code), and a second use is sent back to the login page. With
// a display and an xdg-open on the PATH it hands the link to xdg-open;
// without a display it starts nothing and still succeeds; with no node it
// exits 3.
func TestUICommand(t *testing.T) {
	canopyBin(t)
	dir := t.TempDir()
	cfg := demo.NodeOptions(dir, "n", zap.NewNop())
	cfg.API, cfg.Consent, cfg.RoleInterval = "127.0.0.1:0", promotion.ConsentNever, node.NoRoleLoop
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	data := filepath.Dir(n.APITokenFile())
	env := cleanEnv("HOME=" + dir)

	r := runBin(t, env, "ui", "--api", n.APIAddr(), "--data", data, "--no-open")
	link := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(link, "http://"+n.APIAddr()+"/ui/login?code=") {
		t.Fatalf("canopy ui: %d %q %q", r.code, r.stdout, r.stderr)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer noRedirect.CloseIdleConnections()
	get := func(u string) *http.Response {
		t.Helper()
		resp, err := noRedirect.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := get(link)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" || len(resp.Cookies()) != 1 {
		t.Fatalf("first use of the link: %d to %q with cookies %v, want 303 to /ui/ with the session", resp.StatusCode, resp.Header.Get("Location"), resp.Cookies())
	}
	if c := resp.Cookies()[0]; !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || strings.Contains(link, c.Value) {
		t.Fatalf("session cookie %+v", c)
	}
	if resp := get(link); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login?expired=1" || len(resp.Cookies()) != 0 {
		t.Fatalf("second use of the link: %d to %q with cookies %v, want 303 to the login page and no session", resp.StatusCode, resp.Header.Get("Location"), resp.Cookies())
	}

	// A desktop: xdg-open (here a script that notes its argument) gets a
	// fresh link.
	bin := t.TempDir()
	opened := filepath.Join(dir, "opened")
	script := "#!/bin/sh\nprintf '%s' \"$1\" > " + opened + "\n"
	if err := os.WriteFile(filepath.Join(bin, browserOpener), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	desk := append(cleanEnv("HOME="+dir, "DISPLAY=:0"), "PATH="+bin+":"+os.Getenv("PATH"))
	r = runBin(t, desk, "ui", "--api", n.APIAddr(), "--data", data)
	got, _ := os.ReadFile(opened)
	if r.code != 0 || string(got) != strings.TrimSpace(r.stdout) || string(got) == link {
		t.Fatalf("canopy ui with a desktop: %d, printed %q, opened %q (the first link %q)", r.code, r.stdout, got, link)
	}
	// No display: nothing is started, the link is printed, exit 0.
	os.Remove(opened)
	headless := []string{}
	for _, kv := range desk {
		if !strings.HasPrefix(kv, "DISPLAY=") && !strings.HasPrefix(kv, "WAYLAND_DISPLAY=") {
			headless = append(headless, kv)
		}
	}
	r = runBin(t, headless, "ui", "--api", n.APIAddr(), "--data", data)
	if _, err := os.Stat(opened); r.code != 0 || err == nil || !strings.Contains(r.stderr, "no browser started") {
		t.Fatalf("canopy ui without a display: %d %q (opened: %v)", r.code, r.stderr, err)
	}
	// No node.
	if r := runBin(t, env, "ui", "--api", freePort(t), "--data", data, "--no-open"); r.code != 3 {
		t.Fatalf("canopy ui without a node: exit %d %q, want 3", r.code, r.stderr)
	}
}

// TestUpShowsSettingsToUI: the node that canopy up runs serves, at GET
// /v1/config (the web UI's settings page), what `canopy config show`
// prints: each setting with the flag, variable, file or default behind it.
func TestUpShowsSettingsToUI(t *testing.T) {
	bin := canopyBin(t)
	dir := t.TempDir()
	data, apiAddr := filepath.Join(dir, "data"), freePort(t)
	cmd := exec.Command(bin, "up", "--data", data, "--listen", freePort(t), "--gossip", freePort(t), "--api", apiAddr,
		"--turn", "off", "--portmap=false", "--supernode", "never", "--log-level", "warn")
	cmd.Env = cleanEnv("HOME="+dir, "CANOPY_ATTACH=2")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	waitAPI(t, apiAddr)
	var tok string
	testwait.Until(t, 10*time.Second, func() bool {
		var err error
		tok, err = api.ReadTokenFile(data)
		return err == nil
	}, "the token file")
	req, _ := http.NewRequest("GET", "http://"+apiAddr+"/v1/config", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	defer http.DefaultClient.CloseIdleConnections()
	var got api.Settings
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/config: %d %v", resp.StatusCode, err)
	}
	want := map[string]string{"api": "flag " + apiAddr, "attach": "env 2", "log_level": "flag warn", "upload": "default "}
	for _, s := range got.Settings {
		if w, ok := want[s.Key]; ok {
			if g := s.Source + " " + fmt.Sprint(s.Value); g != w {
				t.Errorf("%s: %q, want %q", s.Key, g, w)
			}
			delete(want, s.Key)
		}
	}
	if len(want) > 0 {
		t.Errorf("settings missing: %v", want)
	}
}
