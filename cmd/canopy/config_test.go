package main

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/node"
	"github.com/canopy-p2p/canopy/promotion"
)

func noEnv(string) string { return "" }

func mapEnv(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestSettingsDefaults: with nothing set, every setting is the node
// package's default (DefaultConfig), and the binary's own two.
func TestSettingsDefaults(t *testing.T) {
	res, u, err := resolveSettings(upSettings(), nil, noEnv, configFile{})
	if err != nil {
		t.Fatal(err)
	}
	def := node.DefaultConfig()
	got := u.node
	if got.DataDir != def.DataDir || got.Listen != def.Listen || got.API != def.API || got.TURN != def.TURN ||
		got.STUN != def.STUN || got.Attach != def.Attach || got.Consent != def.Consent ||
		got.PortMap != defaultPortMap || u.logLevel != defaultLogLevel {
		t.Errorf("defaults: %+v (log %s), want those of %+v", got, u.logLevel, def)
	}
	// The ones the node derives stay zero, for it to derive.
	if got.Advertise != "" || got.Gossip != "" || got.Downloads != "" || got.PolicyFile != "" || got.STUNAlternate.IsValid() ||
		got.UpBandwidth != 0 || got.RelayQuotas.MaxBytesPerSecondPerLeaf != 0 || len(got.Shares) != 0 || len(got.Join) != 0 {
		t.Errorf("derived settings set: %+v", got)
	}
	for _, r := range res {
		if r.from != fromDefault {
			t.Errorf("%s from %s", r.s.key, r.from)
		}
	}
	if err := got.Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
}

// TestSettingsPrecedence: flag > environment > file > default, for each
// kind of setting, and lists split in the environment.
func TestSettingsPrecedence(t *testing.T) {
	file := map[string][]string{"listen": {"127.0.0.1:1001"}, "share": {"/f1", "/f2"}, "attach": {"2"}, "portmap": {"false"}, "join": {"127.0.0.1:9"}}
	env := map[string]string{"CANOPY_LISTEN": "127.0.0.1:1002", "CANOPY_SHARE": "/e1" + string(os.PathListSeparator) + "/e2",
		"CANOPY_JOIN": "127.0.0.1:7, 127.0.0.1:8", "CANOPY_SUPERNODE": "never"}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	uf := addUpFlags(fs)
	if err := fs.Parse([]string{"--listen", "127.0.0.1:1003", "--attach", "5", "--share", "/a", "--share", "/b"}); err != nil {
		t.Fatal(err)
	}
	res, u, err := resolveSettings(uf.table, uf.flags, mapEnv(env), configFile{path: "/c.toml", found: true, values: file})
	if err != nil {
		t.Fatal(err)
	}
	from := map[string]source{}
	for _, r := range res {
		from[r.s.key] = r.from
	}
	n := u.node
	for _, c := range []struct {
		key  string
		ok   bool
		from source
	}{
		{"listen", n.Listen == "127.0.0.1:1003", fromFlag},
		{"attach", n.Attach == 5, fromFlag},
		{"share", strings.Join(n.Shares, ",") == "/a,/b", fromFlag},
		{"join", strings.Join(n.Join, ",") == "127.0.0.1:7,127.0.0.1:8", fromEnv},
		{"supernode", n.Consent == promotion.ConsentNever, fromEnv},
		{"portmap", !n.PortMap, fromFile},
		{"api", n.API == node.DefaultAPI, fromDefault},
	} {
		if !c.ok || from[c.key] != c.from {
			t.Errorf("%s: value wrong (%v) or from %s, want from %s: %+v", c.key, !c.ok, from[c.key], c.from, n)
		}
	}
	// Without the flag, the environment's list; without both, the file's.
	res, u, err = resolveSettings(uf.table, nil, mapEnv(env), configFile{path: "/c.toml", values: file})
	if err != nil || strings.Join(u.node.Shares, ",") != "/e1,/e2" || u.node.Listen != "127.0.0.1:1002" || u.node.Attach != 2 {
		t.Errorf("env over file: %v %+v", err, u.node)
	}
	_, u, err = resolveSettings(uf.table, nil, noEnv, configFile{path: "/c.toml", values: file})
	if err != nil || strings.Join(u.node.Shares, ",") != "/f1,/f2" || u.node.Listen != "127.0.0.1:1001" {
		t.Errorf("file over default: %v %+v", err, u.node)
	}
	_ = res
}

// TestConfigRejects: each bad file is refused with the key and the reason;
// all problems at once.
func TestConfigRejects(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, text string
		want       []string // each must be in the error
	}{
		{"no version", `listen = "127.0.0.1:1"`, []string{"version: missing"}},
		{"newer version", "version = 2", []string{"version: a number (2): this canopy reads version 1"}},
		{"version as text", `version = "1"`, []string{"version: a string"}},
		{"unknown key", "version = 1\nlsiten = \"127.0.0.1:1\"", []string{`"lsiten": unknown setting`}},
		{"a table", "version = 1\n[policy]\nmin_uptime = \"1h\"", []string{"policy: want a string, got a table"}},
		{"unknown table", "version = 1\n[extra]\na = 1", []string{`"extra": unknown setting`}},
		{"wrong type", "version = 1\nattach = \"3\"\nportmap = 1\nshare = \"/x\"\njoin = [1]",
			[]string{`attach: want a whole number, got a string ("3")`, "portmap: want true or false, got a number", "share: want a list of strings", "join: want a list of strings, got an item a number"}},
		{"bad values", "version = 1\nattach = 0\nsupernode = \"sometimes\"\nlisten = \"nowhere\"\nupload = \"fast\"\nstun_alt = \"x\"\nlog_level = \"loud\"\nshare = [\"\"]\napi = \"127.0.0.1\"",
			[]string{`attach: "0": want a whole number, at least 1`, `supernode: "sometimes": want auto, never or always`, `listen: "nowhere" is not HOST:PORT`,
				`upload: rate "fast" needs a unit`, `stun_alt: "x" is not IP:PORT`, `log_level: "loud"`, "share: an empty directory name", `api: "127.0.0.1" is not HOST:PORT`}},
		{"syntax", "version = 1\nlisten = \"x\n", []string{"line 2"}},
		{"too large", "version = 1\n#" + strings.Repeat("x", maxConfigFile), []string{"larger than"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".toml")
			if err := os.WriteFile(path, []byte(c.text), 0o644); err != nil {
				t.Fatal(err)
			}
			table := upSettings()
			cf, err := loadConfigFile(path, table)
			if err == nil {
				_, _, err = resolveSettings(table, nil, noEnv, cf)
			}
			if err == nil || !errors.Is(err, errConfig) {
				t.Fatalf("%q: %v, want a config error", c.text, err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// TestConfigShowThroughTheBinary: config show names each value's source,
// from a file at the default path, the environment and a flag, and
// accepts a full sample file (README's).
func TestConfigShowThroughTheBinary(t *testing.T) {
	dir := t.TempDir()
	cfgDir := filepath.Join(dir, "xdg")
	os.MkdirAll(filepath.Join(cfgDir, "canopy"), 0o755)
	text := sampleConfig
	path := filepath.Join(cfgDir, "canopy", "config.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	env := cleanEnv("HOME="+dir, "XDG_CONFIG_HOME="+cfgDir, "CANOPY_ATTACH=4", "CANOPY_SHARE=/e1:/e2", "CANOPY_PPROF=true")
	r := runBin(t, env, "config", "show", "--json", "--listen", "127.0.0.1:7000")
	var c api.Settings
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &c) != nil {
		t.Fatalf("config show: %d %q %q", r.code, r.stdout, r.stderr)
	}
	got := map[string]api.Setting{}
	for _, s := range c.Settings {
		got[s.Key] = s
	}
	for key, want := range map[string]struct {
		value  string
		source string
	}{
		"listen":         {"127.0.0.1:7000", "flag"},
		"attach":         {"4", "env"},
		"share":          {"[/e1 /e2]", "env"},
		"share_contacts": {"[/home/me/Photos/family]", "file"},
		"join":           {"[203.0.113.7:7373 198.51.100.2:7373]", "file"},
		"supernode":      {"auto", "file"},
		"upload":         {"20mbit", "file"},
		"portmap":        {"true", "file"},
		"log_level":      {"info", "file"},
		"stun":           {node.DefaultSTUN, "default"},
		"pprof":          {"true", "env"},
	} {
		s := got[key]
		if mustText(s.Value) != want.value || s.Source != want.source {
			t.Errorf("%s: %v from %s, want %s from %s", key, s.Value, s.Source, want.value, want.source)
		}
	}
	if !c.FileFound || c.File != path {
		t.Errorf("file %s found %v, want %s", c.File, c.FileFound, path)
	}
	if b, _ := os.ReadFile(path); string(b) != text {
		t.Error("config show changed the file")
	}
	// The words version names the source too.
	r = runBin(t, env, "config", "show")
	if r.code != 0 || !strings.Contains(r.stdout, "env $CANOPY_ATTACH") || !strings.Contains(r.stdout, "config file: "+path) {
		t.Errorf("config show: %q", r.stdout)
	}
	// A bad value in the environment is refused, named.
	r = runBin(t, append(env, "CANOPY_SUPERNODE=maybe"), "config", "show")
	if r.code != exitFailure || !strings.Contains(r.stderr, `$CANOPY_SUPERNODE: "maybe": want auto, never or always`) {
		t.Errorf("bad env: %d %q", r.code, r.stderr)
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// mustText is a shown value as Go prints it ([/e1 /e2], 4, true).
func mustText(v any) string {
	switch x := v.(type) {
	case []any:
		var s []string
		for _, e := range x {
			s = append(s, mustText(e))
		}
		return "[" + strings.Join(s, " ") + "]"
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		if x {
			return "true"
		}
		return "false"
	case string:
		return x
	}
	return mustJSON(v)
}

// sampleConfig is the sample in README.md, which TestREADMESample checks
// is there word for word.
const sampleConfig = `# ~/.config/canopy/config.toml: every setting of canopy up. A flag wins
# over $CANOPY_<KEY>, which wins over this file.
version = 1
data = "/home/me/.local/share/canopy"
share = ["/home/me/Music", "/home/me/Public"]
share_contacts = ["/home/me/Photos/family"]   # contacts only
share_trusted = ["/home/me/Documents/shared"] # trusted contacts only
listen = "0.0.0.0:7373"
api = "127.0.0.1:7375"
join = ["203.0.113.7:7373", "198.51.100.2:7373"]
supernode = "auto"      # auto, never or always
upload = "20mbit"       # your line's capacity, for the supernode checks
download = "100mbit"
attach = 3
turn = "0.0.0.0:3478"   # or "off"
portmap = true
log_level = "info"
`

func TestREADMESample(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "```toml\n"+sampleConfig+"```") {
		t.Error("README.md does not hold the sample config file of config_test.go")
	}
}

// FuzzDecodeConfig: any bytes as a config file are decoded or refused
// with a config error, never a panic; what decodes names only settings,
// and resolving it either works or names the file.
func FuzzDecodeConfig(f *testing.F) {
	for _, s := range []string{sampleConfig, "version = 1", "", "version = 1\nshare = []", "version = 1\n[x]\ny = [[1], {a = 2}]",
		"version = 1\nattach = 99999999999999999999", "version = 1\nlisten = '''\n'''", "version = 1\nportmap = \"yes\"",
		"version = 1.0", "version = 1\nstun_alt = \"[::1]:3478\"\nstun = \"127.0.0.1:3479\""} {
		f.Add([]byte(s))
	}
	table := upSettings()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxConfigFile {
			return
		}
		values, err := decodeConfig("f.toml", data, table)
		if err != nil {
			if !errors.Is(err, errConfig) || !strings.Contains(err.Error(), "f.toml") {
				t.Fatalf("decode error %q is not a config error naming the file", err)
			}
			return
		}
		for k := range values {
			if !strings.Contains(sampleKeys(table), " "+k+" ") {
				t.Fatalf("decoded an unknown key %q", k)
			}
		}
		if _, _, err := resolveSettings(table, nil, noEnv, configFile{path: "f.toml", found: true, values: values}); err != nil &&
			(!errors.Is(err, errConfig) || !strings.Contains(err.Error(), "f.toml")) {
			t.Fatalf("resolve error %q is not a config error naming the file", err)
		}
	})
}

func sampleKeys(table []*setting) string {
	s := " "
	for _, x := range table {
		s += x.key + " "
	}
	return s
}
