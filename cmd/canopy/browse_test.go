package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/internal/testwait"
)

// TestBrowseCommandLine is the README's sharing walk-through with the real
// binary: alice shares a folder with everyone and one with her contacts
// (--share-contacts); canopy library shows both; bob browses her and sees
// the public one, then, once they are contacts, both (by the name he gave
// her), and fetches a contacts-only file with canopy get ID; canopy
// network from bob's leaf lists the supernode and alice online; search
// filters by extension and size.
func TestBrowseCommandLine(t *testing.T) {
	bin := canopyBin(t)
	dir := t.TempDir()
	run := func(data string, args ...string) (string, error) {
		cmd := exec.Command(bin, append(args, "--data", data)...)
		cmd.Env = append(os.Environ(), tokenEnv+"=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(out string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return out
	}
	up := func(name, join string, extra ...string) (data, apiAddr string) {
		data, apiAddr = filepath.Join(dir, name), freePort(t)
		args := append([]string{"up", "--data", data, "--listen", freePort(t), "--gossip", freePort(t), "--api", apiAddr,
			"--turn", "off", "--portmap=false", "--log-level", "warn"}, extra...)
		if join != "" {
			args = append(args, "--join", join)
		}
		cmd := exec.Command(bin, args...)
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				t.Logf("%s output:\n%s", name, logs.String())
			}
		})
		waitAPI(t, apiAddr)
		return data, apiAddr
	}
	pub, fam := filepath.Join(dir, "Music"), filepath.Join(dir, "Family")
	for p, data := range map[string]string{
		filepath.Join(pub, "ocean.flac"):       strings.Repeat("o", 5000),
		filepath.Join(pub, "river.mp3"):        strings.Repeat("r", 500),
		filepath.Join(fam, "ocean picnic.jpg"): strings.Repeat("p", 3000),
	} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	snData, snAPI := up("sn", "", "--supernode", "always")
	var st api.Status
	if out, err := run(snData, "status", "--api", snAPI, "--json"); err != nil || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("supernode status: %v %s", err, out)
	}
	alice, aliceAPI := up("alice", st.Control, "--supernode", "never", "--share", pub, "--share-contacts", fam)
	bob, bobAPI := up("bob", st.Control, "--supernode", "never")
	a := func(args ...string) (string, error) { return run(alice, append(args, "--api", aliceAPI)...) }
	b := func(args ...string) (string, error) { return run(bob, append(args, "--api", bobAPI)...) }
	id := func(call func(...string) (string, error)) string {
		var s api.Status
		testwait.Until(t, 30*time.Second, func() bool {
			out, err := call("status", "--json")
			return err == nil && json.Unmarshal([]byte(out), &s) == nil && len(s.Supernodes) == 1 && s.SharedFiles >= 0
		}, "attached")
		return s.ID
	}
	aliceID, bobID := id(a), id(b)

	var lib api.Library
	testwait.Until(t, 30*time.Second, func() bool {
		out, err := a("library", "--json")
		return err == nil && json.Unmarshal([]byte(out), &lib) == nil && lib.Files == 3 && lib.LastScan != nil
	}, "alice's library scanned")
	if lib.Public != 2 || len(lib.Shares) != 2 || lib.Shares[1].Visibility != "contacts" {
		t.Fatalf("alice's library: %+v", lib)
	}
	if out := must(a("library")); !strings.Contains(out, "Family") || !strings.Contains(out, "contacts") || !strings.Contains(out, "everyone") {
		t.Fatalf("library: %s", out)
	}

	var br api.BrowseResponse
	if out := must(b("browse", aliceID, "--json")); json.Unmarshal([]byte(out), &br) != nil || len(br.Files) != 2 {
		t.Fatalf("bob, a stranger, browses alice: %s", out)
	}
	must(b("contacts", "add", aliceID, "--name", "alice"))
	testwait.Until(t, 15*time.Second, func() bool {
		out, err := a("contacts", "requests", "--json")
		var rs []api.Request
		return err == nil && json.Unmarshal([]byte(out), &rs) == nil && len(rs) == 1
	}, "alice sees bob's request")
	must(a("contacts", "accept", bobID))
	var picnic string
	testwait.Until(t, 15*time.Second, func() bool {
		out, err := b("browse", "alice", "--json")
		if err != nil || json.Unmarshal([]byte(out), &br) != nil || len(br.Files) != 3 {
			return false
		}
		for _, f := range br.Files {
			if f.Folder == "Family" && f.Path == "ocean picnic.jpg" {
				picnic = f.ID
			}
		}
		return picnic != ""
	}, "bob, now a contact, sees alice's Family folder")
	if out := must(b("browse", "alice")); !strings.Contains(out, "Family/ocean picnic.jpg") || !strings.Contains(out, "canopy get ID") {
		t.Fatalf("browse: %s", out)
	}
	out := t.TempDir()
	// get takes its flags before the ID.
	// get and search take their flags before the ID or the words.
	bFirst := func(cmd string, args ...string) (string, error) {
		c := exec.Command(bin, append([]string{cmd, "--api", bobAPI, "--data", bob}, args...)...)
		c.Env = append(os.Environ(), tokenEnv+"=")
		o, err := c.CombinedOutput()
		return string(o), err
	}
	must(bFirst("get", "--out", out, picnic))
	if got, err := os.ReadFile(filepath.Join(out, "ocean picnic.jpg")); err != nil || len(got) != 3000 {
		t.Fatalf("the fetched picnic: %d bytes, %v", len(got), err)
	}
	// alice served it: her uploads count its bytes, and the slots are free
	// again once her side of the session has ended.
	var ups api.Uploads
	testwait.Until(t, 15*time.Second, func() bool {
		o, err := a("uploads", "--json")
		return err == nil && json.Unmarshal([]byte(o), &ups) == nil && ups.UploadedDirect+ups.UploadedRelayed >= 3000 && len(ups.Active) == 0
	}, "alice's uploads count the picnic: %+v", ups)
	if o := must(a("uploads")); !strings.Contains(o, "0 of "+strconv.Itoa(ups.Slots)+" upload slots in use") {
		t.Fatalf("uploads: %s", o)
	}

	var nw api.Network
	testwait.Until(t, 15*time.Second, func() bool {
		o, err := b("network", "--json")
		return err == nil && json.Unmarshal([]byte(o), &nw) == nil && len(nw.Contacts) == 1
	}, "bob's network view shows alice online")
	if nw.Totals.Supernodes != 1 || len(nw.Supernodes) != 1 || nw.Supernodes[0].ID != st.ID || !nw.Supernodes[0].Attached {
		t.Fatalf("network: %+v", nw)
	}
	if o := must(b("network")); !strings.Contains(o, "1 supernodes") || !strings.Contains(o, "online: alice") {
		t.Fatalf("network: %s", o)
	}

	var hits []api.Hit
	testwait.Until(t, 15*time.Second, func() bool {
		o, err := bFirst("search", "--json", "ocean")
		return err == nil && json.Unmarshal([]byte(o), &hits) == nil && len(hits) == 1 && hits[0].Name == "ocean.flac"
	}, "bob finds alice's public ocean.flac, and not the contacts-only picnic")
	if o := must(bFirst("search", "--json", "--ext", "mp3", "river")); json.Unmarshal([]byte(o), &hits) != nil || len(hits) != 1 || hits[0].Name != "river.mp3" {
		t.Fatalf("search --ext mp3: %s", o)
	}
	if o := must(bFirst("search", "--json", "--min-size", "1k", "river")); json.Unmarshal([]byte(o), &hits) != nil || len(hits) != 0 {
		t.Fatalf("search --min-size 1k: %s", o)
	}
	if o, err := bFirst("search", "--max-size", "1k", "--min-size", "2k", "river"); err == nil {
		t.Fatalf("max below min was accepted: %s", o)
	}

	// A wish for river mp3s runs at once and downloads alice's river.mp3
	// into the directory it names.
	wishDir := filepath.Join(t.TempDir(), "wished")
	var wish api.Wish
	if o := must(b("wish", "add", "--ext", "mp3", "--to", wishDir, "--json", "river")); json.Unmarshal([]byte(o), &wish) != nil || wish.ID == 0 {
		t.Fatalf("wish add: %s", o)
	}
	var wl api.WishList
	testwait.Until(t, 30*time.Second, func() bool {
		o, err := b("wish", "--json")
		return err == nil && json.Unmarshal([]byte(o), &wl) == nil && len(wl.Wishes) == 1 && len(wl.Wishes[0].Found) == 1
	}, "bob's wish finds river.mp3: %+v", wl)
	if f := wl.Wishes[0].Found[0]; f.Name != "river.mp3" {
		t.Fatalf("the wish found %+v", f)
	}
	testwait.Until(t, 30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(wishDir, "river.mp3"))
		return err == nil
	}, "river.mp3 downloaded into the wish's directory")
	if o := must(b("wish")); !strings.Contains(o, `"river" (mp3)`) || !strings.Contains(o, "river.mp3") || !strings.Contains(o, "1 found") {
		t.Fatalf("wish: %s", o)
	}
	if o, err := b("wish", "add"); err == nil || !strings.Contains(o, "what do you wish for") {
		t.Fatalf("wish add without words: %v %s", err, o)
	}
	must(b("wish", "remove", strconv.FormatInt(wish.ID, 10)))
	if o, err := b("wish", "remove", strconv.FormatInt(wish.ID, 10)); err == nil || !strings.Contains(o, "no such wish") {
		t.Fatalf("removing it twice: %v %s", err, o)
	}

	// alice shares Family with everyone while she runs: bob finds the
	// picnic by a search now.
	if o := must(a("library", "share", fam, "everyone", "--json")); json.Unmarshal([]byte(o), &lib) != nil || lib.Shares[1].Visibility != "everyone" {
		t.Fatalf("library share: %s", o)
	}
	testwait.Until(t, 15*time.Second, func() bool {
		o, err := bFirst("search", "--json", "picnic")
		return err == nil && json.Unmarshal([]byte(o), &hits) == nil && len(hits) == 1
	}, "bob finds the picnic once Family is shared with everyone")
	if o, err := a("library", "share", fam, "friends"); err == nil || !strings.Contains(o, "not everyone, contacts, trusted or none") {
		t.Fatalf("a bad visibility: %v %s", err, o)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "1234": 1234, "700k": 700_000, "4.5MB": 4_500_000, "1GiB": 1 << 30, "2 KiB": 2048, "10b": 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"-1", "k", "1x", "1e30", "NaN"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
	if e, err := parseExts("MP3, .flac,,ogg"); err != nil || strings.Join(e, " ") != "mp3 flac ogg" {
		t.Errorf("exts: %v %v", e, err)
	}
	if _, err := parseExts("a/b"); err == nil {
		t.Error("a/b accepted as an extension")
	}
}
