package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// completionCase is a command line being completed: the words before the
// cursor and the word under it, and the completions it must offer
// (exactly, as a set).
type completionCase struct {
	words []string
	cur   string
	want  []string
}

// completionCases are made from the command table itself, not from the
// completion tree: every command path must offer its subcommands and
// argument values, and with "--" every flag that describe finds; and the
// flags with choices offer them.
func completionCases(t *testing.T) []completionCase {
	var top []string
	for _, c := range commandTable() {
		top = append(top, c.name)
	}
	cases := []completionCase{{nil, "", top}, {nil, "--", []string{"--help", "--version"}}}
	for _, p := range tablePaths() {
		words := strings.Fields(p.name)
		var next []string
		for _, s := range p.cmd.subs {
			next = append(next, s.name)
		}
		next = append(next, p.cmd.argChoices...)
		cases = append(cases, completionCase{words, "", next})
		flags := []string{"--help"}
		if fs := describe(p.cmd); fs != nil {
			fs.VisitAll(func(f *flag.Flag) { flags = append(flags, "--"+f.Name) })
		}
		cases = append(cases, completionCase{words, "--", flags})
	}
	return append(cases,
		completionCase{[]string{"up", "--supernode"}, "", []string{"auto", "never", "always"}},
		completionCase{[]string{"up", "--share", "/x", "--log-level"}, "", []string{"debug", "info", "warn", "error"}},
		completionCase{[]string{"config", "show", "--supernode"}, "a", []string{"auto", "always"}},
		completionCase{[]string{"completion"}, "f", []string{"fish"}},
		completionCase{[]string{"search", "--api", "127.0.0.1:1"}, "--li", []string{"--limit"}},
		completionCase{nil, "st", []string{"status"}},
	)
}

// filter keeps the completions that begin with cur, as every shell does.
func (c completionCase) expected() []string {
	var out []string
	for _, w := range c.want {
		if strings.HasPrefix(w, c.cur) {
			out = append(out, w)
		}
	}
	slices.Sort(out)
	return out
}

func completionScript(t *testing.T, shell string) string {
	var b strings.Builder
	if err := writeCompletion(&b, shell, completionTree(commandTable())); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "canopy."+shell)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func needShell(t *testing.T, shell string) string {
	t.Helper()
	p, err := exec.LookPath(shell)
	if err != nil {
		t.Skipf("%s is not installed", shell)
	}
	return p
}

// runCases runs one shell over every case: script prints, for case i, a
// line "i|completion completion ...".
func runCases(t *testing.T, shell string, cases []completionCase, out []byte) {
	t.Helper()
	got := map[int][]string{}
	for _, line := range strings.Split(string(out), "\n") {
		var i int
		idx, rest, ok := strings.Cut(line, "|")
		if !ok || func() bool { _, err := fmt.Sscan(idx, &i); return err != nil }() {
			continue
		}
		got[i] = strings.Fields(rest)
		slices.Sort(got[i])
	}
	for i, c := range cases {
		if want := c.expected(); !slices.Equal(got[i], want) {
			t.Errorf("%s: canopy %s %q: offered %q, want %q", shell, strings.Join(c.words, " "), c.cur, got[i], want)
		}
	}
	if t.Failed() {
		t.Logf("%s output:\n%s", shell, out)
	}
}

// TestCompletionBash sources the bash script and completes every case.
func TestCompletionBash(t *testing.T) {
	bash := needShell(t, "bash")
	script := completionScript(t, "bash")
	cases := completionCases(t)
	var b strings.Builder
	fmt.Fprintf(&b, "source %s\n", single(script))
	for i, c := range cases {
		words := append(append([]string{"canopy"}, c.words...), c.cur)
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, single(w))
		}
		fmt.Fprintf(&b, "COMP_WORDS=(%s); COMP_CWORD=%d; COMPREPLY=(); _canopy; echo \"%d|${COMPREPLY[*]}\"\n", strings.Join(quoted, " "), len(words)-1, i)
	}
	out, err := exec.Command(bash, "--norc", "-c", b.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	runCases(t, "bash", cases, out)
}

// TestCompletionZsh loads the zsh script with compinit (it must load
// cleanly), then runs its function with the completion system's
// builtins replaced by ones that print what they are offered.
func TestCompletionZsh(t *testing.T) {
	zsh := needShell(t, "zsh")
	script := completionScript(t, "zsh")
	if out, err := exec.Command(zsh, "-f", "-c", "autoload -U compinit && compinit -u -d "+single(filepath.Join(t.TempDir(), "zcompdump"))+" && source "+single(script)).CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("zsh could not load the script: %v\n%s", err, out)
	}
	cases := completionCases(t)
	var b strings.Builder
	// _describe -t TAG DESCR ARRAY: the array holds "name:description".
	b.WriteString(`compdef() { :; }
_describe() { local x; for x in ${(P)4}; do REPLY+=" ${x%%:*}"; done }
compadd() { shift; REPLY+=" $*"; }
_files() { REPLY+=" "; }
emit() { local x; local -a out; for x in ${=REPLY}; do [[ $x == ${2}* ]] && out+=($x); done; print -r -- "$1|${out[*]}"; }
`)
	fmt.Fprintf(&b, "source %s\n", single(script))
	for i, c := range cases {
		words := append(append([]string{"canopy"}, c.words...), c.cur)
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, single(w))
		}
		// zsh filters by the prefix itself; the stubs do not, so the
		// filter is applied here.
		fmt.Fprintf(&b, "words=(%s); CURRENT=%d; REPLY=''; _canopy; emit %d %s\n", strings.Join(quoted, " "), len(words), i, single(c.cur))
	}
	out, err := exec.Command(zsh, "-f", "-c", b.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("zsh: %v\n%s", err, out)
	}
	runCases(t, "zsh", cases, out)
}

// TestCompletionFish completes every case with fish's own complete -C.
func TestCompletionFish(t *testing.T) {
	fish := needShell(t, "fish")
	script := completionScript(t, "fish")
	cases := completionCases(t)
	var b strings.Builder
	fmt.Fprintf(&b, "source %s\n", fishSingle(script))
	for i, c := range cases {
		line := strings.Join(append(append([]string{"canopy"}, c.words...), c.cur), " ")
		fmt.Fprintf(&b, "set -l r (complete -C %s | string replace -r '\\t.*' ''); echo \"%d|$r\"\n", fishSingle(line), i)
	}
	cmd := exec.Command(fish, "--no-config", "-c", b.String())
	cmd.Env = cleanEnv("HOME=" + t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fish: %v\n%s", err, out)
	}
	runCases(t, "fish", cases, out)
}

// TestCompletionCommand: the binary prints each shell's script, and the
// same one the tests above check.
func TestCompletionCommand(t *testing.T) {
	env := cleanEnv("HOME=" + t.TempDir())
	for _, shell := range completionShells {
		r := runBin(t, env, "completion", shell)
		want, _ := os.ReadFile(completionScript(t, shell))
		if r.code != 0 || r.stdout != string(want) || r.stderr != "" {
			t.Errorf("completion %s: exit %d, %d bytes (want %d), stderr %q", shell, r.code, len(r.stdout), len(want), r.stderr)
		}
	}
}
