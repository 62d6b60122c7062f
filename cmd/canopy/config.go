package main

// The settings of `canopy up`, and where each comes from. One table
// (upSettings) names every setting once: its config-file key, its flag
// (the key with - for _), its environment variable (CANOPY_ and the key in
// capitals), its default (from the node's and other packages' named
// constants) and how its text is checked and put into node.Config. The
// flags of `canopy up` and `canopy config show`, the environment, the
// config file and the help are all read through it. Precedence: a flag,
// then the environment, then the file, then the default.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/BurntSushi/toml"
	"go.uber.org/zap/zapcore"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/nat/relay"
	"github.com/canopy-p2p/canopy/node"
	"github.com/canopy-p2p/canopy/promotion"
)

// configVersion is the version of the config file format this binary
// reads; a file must say it (version = 1), so that a later format is
// refused rather than misread.
const configVersion = 1

// maxConfigFile bounds the config file: a full one is about 2 KiB, a long
// list of shares a few more.
const maxConfigFile = 1 << 20

// configEnv names a config file, as --config does (the flag wins).
const configEnv = "CANOPY_CONFIG"

// The settings whose default is the binary's own rather than a package's:
// node.Config leaves port mapping off (tests must not talk to the
// machine's router), and the binary turns it on for people at home.
const (
	defaultPortMap  = true
	defaultLogLevel = "info"
)

// errConfig is the class of every config error (errors.Is).
var errConfig = errors.New("config")

// configError is one bad setting: where it came from (a file, $VAR,
// --flag; empty for a problem of the file as a whole), which setting and
// why.
type configError struct {
	where, key string
	err        error
}

func (e *configError) Error() string {
	s := e.key + ": " + e.err.Error()
	if e.key == "" {
		s = e.err.Error()
	}
	if e.where != "" {
		s = e.where + ": " + s
	}
	return s
}

func (e *configError) Unwrap() error        { return e.err }
func (e *configError) Is(target error) bool { return target == errConfig }

type settingKind int

const (
	kindString settingKind = iota
	kindList
	kindInt
	kindBool
)

// upConfig is what the settings fill: the node's Config and the binary's
// own settings.
type upConfig struct {
	node     node.Config
	logLevel string
}

// setting is one `canopy up` setting.
type setting struct {
	key  string
	kind settingKind
	// envSep separates a list's items in the environment variable.
	envSep string
	// def is the default, as text (a list: its items). An empty default
	// means the node derives the value; defNote says how.
	def     []string
	defNote string
	usage   string
	// valueName is the help's name of the value (HOST:PORT, DIR).
	valueName string
	// choices are the only values, for the help and completion.
	choices []string
	// apply checks v (a scalar's one item, or a list's items) and puts it
	// into u; its error is the reason, without the setting's name.
	apply func(u *upConfig, v []string) error
}

func (s *setting) flagName() string { return strings.ReplaceAll(s.key, "_", "-") }
func (s *setting) envName() string  { return "CANOPY_" + strings.ToUpper(s.key) }

// scalar adapts a check of one value.
func scalar(f func(u *upConfig, v string) error) func(*upConfig, []string) error {
	return func(u *upConfig, v []string) error {
		if len(v) != 1 {
			return fmt.Errorf("takes one value, got %d", len(v))
		}
		return f(u, v[0])
	}
}

// checkHostPort accepts HOST:PORT with a numeric port; empty when
// optional (the node derives it).
func checkHostPort(v string, optional bool) error {
	if v == "" && optional {
		return nil
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		reason := err.Error()
		if ae, ok := errors.AsType[*net.AddrError](err); ok {
			reason = ae.Err
		}
		return fmt.Errorf("%q is not HOST:PORT: %s", v, reason)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", v, port)
	}
	if strings.ContainsAny(host, " \t\r\n") {
		return fmt.Errorf("%q: the host has white space in it", v)
	}
	return nil
}

// address is the apply of an address setting; off says whether node.Off
// (or its old spelling "-") turns the service off.
func address(off, optional bool, dst func(*upConfig) *string) func(*upConfig, []string) error {
	return scalar(func(u *upConfig, v string) error {
		if off && (v == node.Off || v == "-") {
			*dst(u) = v
			return nil
		}
		if err := checkHostPort(v, optional); err != nil {
			if off {
				return fmt.Errorf("%w (or %s)", err, node.Off)
			}
			return err
		}
		*dst(u) = v
		return nil
	})
}

func rate(dst func(*upConfig, float64)) func(*upConfig, []string) error {
	return scalar(func(u *upConfig, v string) error {
		r, err := parseRate(v)
		if err != nil {
			return err
		}
		dst(u, r)
		return nil
	})
}

// upSettings is the table of every `canopy up` setting, in the order the
// help and `canopy config show` list them.
func upSettings() []*setting {
	def := node.DefaultConfig()
	consent, _ := def.Consent.MarshalText()
	return []*setting{
		{key: "data", def: []string{def.DataDir}, valueName: "DIR",
			usage: "data directory: key, API token (" + "api.token" + "), library database, host cache",
			apply: scalar(func(u *upConfig, v string) error {
				if v == "" {
					return errors.New("must name a directory")
				}
				u.node.DataDir = v
				return nil
			})},
		{key: "share", kind: kindList, envSep: string(os.PathListSeparator), valueName: "DIR",
			usage: "directory to share (repeatable; in $CANOPY_SHARE separated by " + string(os.PathListSeparator) + ")",
			apply: func(u *upConfig, v []string) error {
				if slices.Contains(v, "") {
					return errors.New("an empty directory name")
				}
				u.node.Shares = slices.Clone(v)
				return nil
			}},
		{key: "share_contacts", kind: kindList, envSep: string(os.PathListSeparator), valueName: "DIR",
			usage: "directory to share with your contacts only: never in a supernode's index (repeatable)",
			apply: func(u *upConfig, v []string) error {
				if slices.Contains(v, "") {
					return errors.New("an empty directory name")
				}
				u.node.ShareContacts = slices.Clone(v)
				return nil
			}},
		{key: "share_trusted", kind: kindList, envSep: string(os.PathListSeparator), valueName: "DIR",
			usage: "directory to share with your trusted contacts only (repeatable)",
			apply: func(u *upConfig, v []string) error {
				if slices.Contains(v, "") {
					return errors.New("an empty directory name")
				}
				u.node.ShareTrusted = slices.Clone(v)
				return nil
			}},
		{key: "listen", def: []string{def.Listen}, valueName: "HOST:PORT", usage: "control listener (TLS); a supernode gossips on PORT+1",
			apply: address(false, false, func(u *upConfig) *string { return &u.node.Listen })},
		{key: "advertise", defNote: "derived from listen", valueName: "HOST:PORT", usage: "the control address other nodes should dial",
			apply: address(false, true, func(u *upConfig) *string { return &u.node.Advertise })},
		{key: "gossip", defNote: "listen's port + 1", valueName: "HOST:PORT", usage: "the supernode's gossip (memberlist) address, UDP and TCP",
			apply: address(false, true, func(u *upConfig) *string { return &u.node.Gossip })},
		{key: "api", def: []string{def.API}, valueName: "HOST:PORT",
			usage: "local API address (loopback only; " + node.Off + " for none); clients need the token the node keeps in data",
			apply: address(true, false, func(u *upConfig) *string { return &u.node.API })},
		{key: "downloads", defNote: "data's " + node.DownloadsDirName, valueName: "DIR",
			usage: "where downloads go when canopy get names no --out, and the only place the API creates missing directories",
			apply: scalar(func(u *upConfig, v string) error { u.node.Downloads = v; return nil })},
		{key: "join", kind: kindList, envSep: ",", valueName: "HOST:PORT",
			usage: "control address of a supernode to join through (repeatable; in $CANOPY_JOIN separated by commas)",
			apply: func(u *upConfig, v []string) error {
				for _, a := range v {
					if err := checkHostPort(a, false); err != nil {
						return err
					}
				}
				u.node.Join = slices.Clone(v)
				return nil
			}},
		{key: "supernode", def: []string{string(consent)}, choices: []string{"auto", "never", "always"}, valueName: "auto|never|always",
			usage: "may this node become a supernode: auto (when it qualifies and the network needs one), never, or always (from the start: for public nodes you operate)",
			apply: scalar(func(u *upConfig, v string) error {
				c, err := promotion.ParseConsent(v)
				if err != nil {
					return fmt.Errorf("%q: want auto, never or always", v)
				}
				u.node.Consent = c
				return nil
			})},
		{key: "upload", defNote: "undeclared: the node promotes only in an emergency", valueName: "RATE",
			usage: "your connection's upload capacity, e.g. 20mbit or 2MB/s (for the supernode bandwidth check)",
			apply: rate(func(u *upConfig, r float64) { u.node.UpBandwidth = r })},
		{key: "download", defNote: "undeclared", valueName: "RATE", usage: "your connection's download capacity, e.g. 100mbit",
			apply: rate(func(u *upConfig, r float64) { u.node.DownBandwidth = r })},
		{key: "up-limit", defNote: "none", valueName: "RATE",
			usage: "cap on this node's uploads, all together, e.g. 500kB/s or 4mbit",
			apply: rate(func(u *upConfig, r float64) { u.node.UpLimit = r })},
		{key: "down-limit", defNote: "none", valueName: "RATE",
			usage: "cap on this node's downloads, all together, e.g. 2MB/s",
			apply: rate(func(u *upConfig, r float64) { u.node.DownLimit = r })},
		{key: "attach", kind: kindInt, def: []string{strconv.Itoa(def.Attach)}, valueName: "N", usage: "supernodes a leaf keeps links to",
			apply: scalar(func(u *upConfig, v string) error {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 {
					return fmt.Errorf("%q: want a whole number, at least 1", v)
				}
				u.node.Attach = n
				return nil
			})},
		{key: "policy", defNote: "built-in", valueName: "FILE", usage: "promotion policy file, as canopy sim sweep writes it",
			apply: scalar(func(u *upConfig, v string) error { u.node.PolicyFile = v; return nil })},
		{key: "turn", def: []string{def.TURN}, valueName: "HOST:PORT",
			usage: "as a supernode, the TURN relay (and STUN binding service) for leaves, UDP and TCP (" + node.Off + " for none)",
			apply: address(true, false, func(u *upConfig) *string { return &u.node.TURN })},
		{key: "stun", def: []string{def.STUN}, valueName: "HOST:PORT",
			usage: "as a supernode, an RFC 5780 STUN service for NAT behaviour discovery (needs stun_alt; " + node.Off + " for none)",
			apply: address(true, false, func(u *upConfig) *string { return &u.node.STUN })},
		{key: "stun_alt", defNote: "none", valueName: "IP:PORT", usage: "the supernode's second public address and port, for the RFC 5780 STUN service",
			apply: scalar(func(u *upConfig, v string) error {
				if v == "" {
					u.node.STUNAlternate = netip.AddrPort{}
					return nil
				}
				ap, err := netip.ParseAddrPort(v)
				if err != nil {
					return fmt.Errorf("%q is not IP:PORT", v)
				}
				u.node.STUNAlternate = ap
				return nil
			})},
		{key: "relay_rate", defNote: fmt.Sprintf("%d KiB/s; total: half of upload", relay.DefaultMaxBytesPerSecondPerLeaf>>10), valueName: "RATE",
			usage: "as a supernode, the relay bandwidth one leaf may use, e.g. 2mbit",
			apply: rate(func(u *upConfig, r float64) { u.node.RelayQuotas.MaxBytesPerSecondPerLeaf = int64(r) })},
		{key: "portmap", kind: kindBool, def: []string{strconv.FormatBool(defaultPortMap)},
			usage: "ask the home router (NAT-PMP, UPnP-IGD) to forward the control port",
			apply: scalar(func(u *upConfig, v string) error {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return fmt.Errorf("%q: want true or false", v)
				}
				u.node.PortMap = b
				return nil
			})},
		{key: "pprof", kind: kindBool, def: []string{strconv.FormatBool(def.PProf)},
			usage: "serve Go's profiles (net/http/pprof) under /debug/pprof/ on the local API, token required",
			apply: scalar(func(u *upConfig, v string) error {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return fmt.Errorf("%q: want true or false", v)
				}
				u.node.PProf = b
				return nil
			})},
		{key: "log_level", def: []string{defaultLogLevel}, choices: []string{"debug", "info", "warn", "error"}, valueName: "LEVEL",
			usage: "debug, info, warn or error",
			apply: scalar(func(u *upConfig, v string) error {
				if _, err := zapcore.ParseLevel(v); err != nil || !slices.Contains([]string{"debug", "info", "warn", "error"}, v) {
					return fmt.Errorf("%q: want debug, info, warn or error", v)
				}
				u.logLevel = v
				return nil
			})},
	}
}

// settingFlag is a setting's flag: it keeps the text given, checked as it
// is set.
type settingFlag struct {
	s    *setting
	vals []string
	set  bool
}

func (f *settingFlag) String() string {
	if f == nil || f.s == nil {
		return ""
	}
	if f.s.kind == kindList {
		return ""
	}
	return strings.Join(f.s.def, ",")
}

func (f *settingFlag) Set(v string) error {
	vals := []string{v}
	if f.s.kind == kindList && f.set {
		vals = append(slices.Clone(f.vals), v)
	}
	var scratch upConfig
	if err := f.s.apply(&scratch, vals); err != nil {
		return err
	}
	f.vals, f.set = vals, true
	return nil
}

// IsBoolFlag lets --portmap stand alone; the flag package asks it.
func (f *settingFlag) IsBoolFlag() bool { return f.s != nil && f.s.kind == kindBool }

// Choices are the values completion offers.
func (f *settingFlag) Choices() []string {
	if f.s == nil {
		return nil
	}
	return f.s.choices
}

// upFlags are the flags of every setting, and --config.
type upFlags struct {
	table  []*setting
	flags  map[string]*settingFlag
	config *string
}

func addUpFlags(fs *flag.FlagSet) *upFlags {
	uf := &upFlags{table: upSettings(), flags: map[string]*settingFlag{}}
	for _, s := range uf.table {
		f := &settingFlag{s: s}
		uf.flags[s.key] = f
		usage := s.usage
		if s.defNote != "" {
			usage += " (default: " + s.defNote + ")"
		}
		fs.Var(f, s.flagName(), usage)
	}
	uf.config = addConfigFlag(fs)
	return uf
}

func addConfigFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "the config `FILE` (default: $"+configEnv+", else "+displayConfigPath()+")")
}

func displayConfigPath() string {
	if p := defaultConfigPath(); p != "" {
		return p
	}
	return "$XDG_CONFIG_HOME/canopy/config.toml"
}

// source is where a setting's value came from.
type source int

const (
	fromDefault source = iota
	fromFile
	fromEnv
	fromFlag
)

func (s source) String() string { return [...]string{"default", "file", "env", "flag"}[s] }

// resolved is a setting's effective value.
type resolved struct {
	s     *setting
	value []string
	from  source
	// where is the flag, the variable or the file.
	where string
}

// configFile is the config file as read, or the default path when there
// is none.
type configFile struct {
	path   string
	found  bool
	values map[string][]string
}

// defaultConfigPath is $XDG_CONFIG_HOME/canopy/config.toml, or
// ~/.config/canopy/config.toml; "" when neither can be known. (A relative
// XDG_CONFIG_HOME is ignored, as the XDG base directory specification
// says.)
func defaultConfigPath() string {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "canopy", "config.toml")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".config", "canopy", "config.toml")
	}
	return ""
}

// loadConfigFile reads the config file: flagPath (--config), else
// $CANOPY_CONFIG, else the default path. A file named by the flag or the
// variable must exist; the default one may be missing. The file is only
// ever read.
func loadConfigFile(flagPath string, table []*setting) (configFile, error) {
	path, named := flagPath, "--config"
	if path == "" {
		path, named = os.Getenv(configEnv), "$"+configEnv
	}
	if path == "" {
		path, named = defaultConfigPath(), ""
	}
	cf := configFile{path: path}
	if path == "" {
		return cf, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) && named == "" {
		return cf, nil
	}
	if err != nil {
		return cf, &configError{where: named, err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return cf, &configError{where: path, err: err}
	}
	if len(data) > maxConfigFile {
		return cf, &configError{where: path, err: fmt.Errorf("larger than %d bytes: not a Canopy config file", maxConfigFile)}
	}
	if cf.values, err = decodeConfig(path, data, table); err != nil {
		return cf, err
	}
	cf.found = true
	return cf, nil
}

// decodeConfig decodes a config file into each setting's text, checking
// the version, that every key is a setting, and that each value has the
// setting's TOML type. It does not check the values themselves: resolve
// does, with the same code as for flags. Every problem is reported,
// joined, each naming its key and wrapping errConfig.
func decodeConfig(path string, data []byte, table []*setting) (map[string][]string, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, &configError{where: path, err: err}
	}
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, &configError{where: path, key: key, err: fmt.Errorf(format, a...)})
	}
	switch v, ok := raw["version"]; {
	case !ok:
		bad("version", "missing: a config file begins with version = %d", configVersion)
	case v != any(int64(configVersion)):
		bad("version", "%s: this canopy reads version %d", tomlShown(v), configVersion)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make(map[string][]string)
	for _, k := range keys {
		if k == "version" {
			continue
		}
		i := slices.IndexFunc(table, func(s *setting) bool { return s.key == k })
		if i < 0 {
			bad(fmt.Sprintf("%q", k), "unknown setting (canopy up -h lists them, each flag the key with - for _)")
			continue
		}
		s, v := table[i], raw[k]
		switch s.kind {
		case kindString:
			if t, ok := v.(string); ok {
				out[k] = []string{t}
			} else {
				bad(k, "want a string, got %s", tomlShown(v))
			}
		case kindInt:
			if n, ok := v.(int64); ok {
				out[k] = []string{strconv.FormatInt(n, 10)}
			} else {
				bad(k, "want a whole number, got %s", tomlShown(v))
			}
		case kindBool:
			if b, ok := v.(bool); ok {
				out[k] = []string{strconv.FormatBool(b)}
			} else {
				bad(k, "want true or false, got %s", tomlShown(v))
			}
		case kindList:
			arr, ok := v.([]any)
			if !ok {
				bad(k, "want a list of strings such as [\"a\", \"b\"], got %s", tomlShown(v))
				continue
			}
			items := make([]string, 0, len(arr))
			for _, x := range arr {
				t, ok := x.(string)
				if !ok {
					bad(k, "want a list of strings, got an item %s", tomlShown(x))
					break
				}
				items = append(items, t)
			}
			if len(items) == len(arr) {
				out[k] = items
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// tomlShown names a decoded TOML value for an error: its type, and the
// value itself when short.
func tomlShown(v any) string {
	var kind string
	switch v.(type) {
	case string:
		kind = "a string"
	case int64:
		kind = "a number"
	case float64:
		kind = "a decimal number"
	case bool:
		kind = "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	default:
		return fmt.Sprintf("a %T", v)
	}
	s := fmt.Sprintf("%#v", v)
	if len(s) > 40 {
		return kind
	}
	return kind + " (" + s + ")"
}

// resolve finds each setting's value (flag, environment, file, default),
// checks it and puts it into an upConfig. Every bad value is reported,
// joined, each naming where it came from and the setting.
func (uf *upFlags) resolve(env func(string) string) ([]resolved, upConfig, configFile, error) {
	cf, err := loadConfigFile(*uf.config, uf.table)
	if err != nil {
		return nil, upConfig{}, cf, err
	}
	res, u, err := resolveSettings(uf.table, uf.flags, env, cf)
	return res, u, cf, err
}

func resolveSettings(table []*setting, flags map[string]*settingFlag, env func(string) string, cf configFile) ([]resolved, upConfig, error) {
	var u upConfig
	var errs []error
	out := make([]resolved, 0, len(table))
	for _, s := range table {
		r := resolved{s: s, value: s.def, from: fromDefault}
		if f := flags[s.key]; f != nil && f.set {
			r.value, r.from, r.where = f.vals, fromFlag, "--"+s.flagName()
		} else if e := env(s.envName()); e != "" {
			r.value, r.from, r.where = []string{e}, fromEnv, "$"+s.envName()
			if s.kind == kindList {
				r.value = nil
				for _, item := range strings.Split(e, s.envSep) {
					if item = strings.TrimSpace(item); item != "" {
						r.value = append(r.value, item)
					}
				}
			}
		} else if v, ok := cf.values[s.key]; ok {
			r.value, r.from, r.where = v, fromFile, cf.path
		}
		if s.kind != kindList && len(r.value) == 0 {
			r.value = []string{""}
		}
		if err := s.apply(&u, r.value); err != nil {
			switch r.from {
			case fromFile:
				errs = append(errs, &configError{where: cf.path, key: s.key, err: err})
			case fromDefault:
				errs = append(errs, &configError{where: "the default", key: s.key, err: err})
			default:
				errs = append(errs, &configError{where: r.where, err: err})
			}
		}
		out = append(out, r)
	}
	return out, u, errors.Join(errs...)
}

func runUp(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	uf := addUpFlags(fs)
	if err := parseFlags(ctx, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("up takes no arguments, got %q (a directory to share is --share DIR)", fs.Arg(0))
	}
	res, u, cf, err := uf.resolve(os.Getenv)
	if err != nil {
		return err
	}
	log, err := newLogger(u.logLevel)
	if err != nil {
		return err
	}
	defer log.Sync()
	cfg := u.node
	cfg.Logger = log
	cfg.Jobs.AfterStep = killHook()
	cfg.PeopleAfterStep = peopleKillHook()
	shown := shownSettings(res, cf)
	cfg.Settings = &shown
	n, err := node.Start(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "canopy: node %s is up as a %s (control %s, API %s). Ctrl-C to stop.\n", n.ID().Short(), n.Role(), n.Control(), n.APIAddr())
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "canopy: leaving the network…")
	return n.Close()
}

// shownSettings is what `canopy config show --json` prints, and what
// canopy up hands the node for the web UI's settings page.
func shownSettings(res []resolved, cf configFile) api.Settings {
	out := api.Settings{File: cf.path, FileFound: cf.found}
	for _, r := range res {
		ss := api.Setting{Key: r.s.key, Flag: "--" + r.s.flagName(), Env: r.s.envName(), Source: r.from.String(), Where: r.where}
		switch r.s.kind {
		case kindList:
			ss.Value = append([]string{}, r.value...)
		case kindInt:
			ss.Value, _ = strconv.Atoi(r.value[0])
		case kindBool:
			ss.Value, _ = strconv.ParseBool(r.value[0])
		default:
			ss.Value = r.value[0]
		}
		if r.from == fromDefault {
			ss.Default = r.s.defNote
		}
		out.Settings = append(out.Settings, ss)
	}
	return out
}

func runConfigShow(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("config show", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	uf := addUpFlags(fs)
	if err := parseFlags(ctx, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("config show takes no arguments")
	}
	res, u, cf, err := uf.resolve(os.Getenv)
	if err != nil {
		return err
	}
	// The checks the node makes at start that involve more than one
	// setting (stun needs stun_alt) or the API's loopback rule.
	if err := u.node.Validate(); err != nil {
		return err
	}
	out := shownSettings(res, cf)
	if *asJSON {
		return printJSON(out)
	}
	switch {
	case cf.path == "":
		fmt.Println("config file: none (no home directory)")
	case cf.found:
		fmt.Printf("config file: %s\n", cf.path)
	default:
		fmt.Printf("config file: %s (none there)\n", cf.path)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "\nSETTING\tVALUE\tFROM")
	for i, r := range res {
		ss := out.Settings[i]
		val := strings.Join(r.value, ", ")
		if r.s.kind == kindList {
			val = "[" + val + "]"
		}
		if val == "" && ss.Default != "" {
			val = "(" + ss.Default + ")"
		}
		from := ss.Source
		if r.from == fromFlag || r.from == fromEnv {
			from += " " + r.where
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", r.s.key, val, from)
	}
	return w.Flush()
}
