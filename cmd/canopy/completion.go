package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// completionShells are the shells `canopy completion` writes for.
var completionShells = []string{"bash", "zsh", "fish"}

const completionHelp = `Prints a completion script for the shell, made from the same command table
the binary dispatches with: commands, subcommands, flags, and the values of
flags that take only a few.

  bash:  source <(canopy completion bash)       (or save it in ~/.local/share/bash-completion/completions/canopy)
  zsh:   source <(canopy completion zsh)        (after compinit; or save it as _canopy in a directory of $fpath)
  fish:  canopy completion fish | source        (or save it as ~/.config/fish/completions/canopy.fish)
`

func runCompletion(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("completion", flag.ContinueOnError)
	if err := parseFlags(ctx, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || !slices.Contains(completionShells, fs.Arg(0)) {
		return usageErrorf("name one shell: %s", strings.Join(completionShells, ", "))
	}
	return writeCompletion(os.Stdout, fs.Arg(0), completionTree(commandTable()))
}

// compNode is one command as completion sees it: where it sits
// ("/sim/sweep"), what may follow it, and its flags.
type compNode struct {
	path string
	// words are the subcommands and argument values that may follow,
	// with a description each.
	words []compWord
	flags []compFlag
}

type compWord struct{ name, desc string }

type compFlag struct {
	name, desc string
	// value says the flag takes a value; choices are its only values
	// (none: a file name, or anything).
	value   bool
	choices []string
}

// completionTree walks the command table: every command, in order, its
// flags learnt by describe.
func completionTree(cmds []*command) []compNode {
	top := compNode{flags: []compFlag{{name: "help", desc: "show the commands"}, {name: "version", desc: "print the version"}}}
	for _, c := range cmds {
		top.words = append(top.words, compWord{c.name, c.summary})
	}
	nodes := []compNode{top}
	var walk func(prefix string, c *command)
	walk = func(prefix string, c *command) {
		n := compNode{path: prefix + "/" + c.name}
		for _, s := range c.subs {
			n.words = append(n.words, compWord{s.name, s.summary})
		}
		for _, a := range c.argChoices {
			n.words = append(n.words, compWord{a, a})
		}
		if fs := describe(c); fs != nil {
			fs.VisitAll(func(f *flag.Flag) {
				_, usage := flag.UnquoteUsage(f)
				cf := compFlag{name: f.Name, desc: firstSentence(usage), value: true}
				if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
					cf.value = false
				}
				if ch, ok := f.Value.(interface{ Choices() []string }); ok {
					cf.choices = ch.Choices()
				}
				n.flags = append(n.flags, cf)
			})
		}
		n.flags = append(n.flags, compFlag{name: "help", desc: "show the usage and flags"})
		nodes = append(nodes, n)
		for _, s := range c.subs {
			walk(n.path, s)
		}
	}
	for _, c := range cmds {
		walk("", c)
	}
	return nodes
}

// firstSentence is a flag's usage cut for a completion menu.
func firstSentence(s string) string {
	if i := strings.Index(s, "; "); i > 0 {
		s = s[:i]
	}
	if i := strings.Index(s, ": "); i > 0 {
		s = s[:i]
	}
	if i := strings.Index(s, " ("); i > 0 {
		s = s[:i]
	}
	if len(s) > 72 {
		s = s[:strings.LastIndex(s[:72], " ")] + "…"
	}
	return s
}

func writeCompletion(w io.Writer, shell string, nodes []compNode) error {
	var b strings.Builder
	switch shell {
	case "bash":
		bashCompletion(&b, nodes)
	case "zsh":
		zshCompletion(&b, nodes)
	case "fish":
		fishCompletion(&b, nodes)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// paths is the shells' case pattern of every command path.
func paths(nodes []compNode) string {
	var ps []string
	for _, n := range nodes[1:] {
		ps = append(ps, n.path)
	}
	return strings.Join(ps, "|")
}

func names[T any](xs []T, name func(T) string) string {
	var out []string
	for _, x := range xs {
		out = append(out, name(x))
	}
	return strings.Join(out, " ")
}

// single quotes s for bash, zsh and fish alike.
func single(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// fishSingle quotes s for fish, which escapes inside single quotes.
func fishSingle(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func bashCompletion(b *strings.Builder, nodes []compNode) {
	fmt.Fprintf(b, `# bash completion for canopy, written by "canopy completion bash" from its command table.
# Load it with: source <(canopy completion bash)
_canopy() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local cpath="" w i
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${COMP_WORDS[i]}"
        case "$cpath/$w" in
        %s) cpath="$cpath/$w" ;;
        esac
    done
    local words="" flags=""
    case "$cpath" in
`, paths(nodes))
	for _, n := range nodes {
		fmt.Fprintf(b, "    %s) words=%s; flags=%s ;;\n", single(n.path),
			single(names(n.words, func(w compWord) string { return w.name })),
			single(names(n.flags, func(f compFlag) string { return "--" + f.name })))
	}
	b.WriteString("    esac\n    case \"$cpath $prev\" in\n")
	for _, n := range nodes {
		for _, f := range n.flags {
			switch {
			case len(f.choices) > 0:
				fmt.Fprintf(b, "    %s) COMPREPLY=($(compgen -W %s -- \"$cur\")); return ;;\n", single(n.path+" --"+f.name), single(strings.Join(f.choices, " ")))
			case f.value:
				// Nothing offered: complete -o default lists file names.
				fmt.Fprintf(b, "    %s) COMPREPLY=(); return ;;\n", single(n.path+" --"+f.name))
			}
		}
	}
	b.WriteString(`    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    fi
}
complete -o default -F _canopy canopy
`)
}

func zshCompletion(b *strings.Builder, nodes []compNode) {
	fmt.Fprintf(b, `#compdef canopy
# zsh completion for canopy, written by "canopy completion zsh" from its command table.
# Load it with: source <(canopy completion zsh) after compinit, or save it as _canopy in a directory of $fpath.
compdef _canopy canopy
_canopy() {
  local cur=${words[CURRENT]} prev=${words[CURRENT-1]}
  local cpath="" w i
  for ((i = 2; i < CURRENT; i++)); do
    w=${words[i]}
    case "$cpath/$w" in
      (%s) cpath="$cpath/$w" ;;
    esac
  done
  local -a cmds flags
  case "$cpath" in
`, paths(nodes))
	for _, n := range nodes {
		var cmds, flags []string
		for _, w := range n.words {
			cmds = append(cmds, single(w.name+":"+w.desc))
		}
		for _, f := range n.flags {
			flags = append(flags, single("--"+f.name+":"+f.desc))
		}
		fmt.Fprintf(b, "    (%s) cmds=(%s); flags=(%s) ;;\n", single(n.path), strings.Join(cmds, " "), strings.Join(flags, " "))
	}
	b.WriteString("  esac\n  case \"$cpath $prev\" in\n")
	for _, n := range nodes {
		for _, f := range n.flags {
			switch {
			case len(f.choices) > 0:
				fmt.Fprintf(b, "    (%s) compadd -- %s; return ;;\n", single(n.path+" --"+f.name), strings.Join(f.choices, " "))
			case f.value:
				fmt.Fprintf(b, "    (%s) _files; return ;;\n", single(n.path+" --"+f.name))
			}
		}
	}
	b.WriteString(`  esac
  if [[ $cur == -* ]]; then
    _describe -t flags 'flag' flags
  else
    _describe -t commands 'command' cmds
  fi
}
if [[ "${funcstack[1]}" == _canopy ]]; then _canopy "$@"; fi
`)
}

func fishCompletion(b *strings.Builder, nodes []compNode) {
	var cases []string
	for _, n := range nodes[1:] {
		cases = append(cases, n.path)
	}
	fmt.Fprintf(b, `# fish completion for canopy, written by "canopy completion fish" from its command table.
# Load it with: canopy completion fish | source
function __canopy_path
    set -l p ""
    for w in (commandline -opc)[2..-1]
        switch "$p/$w"
            case %s
                set p "$p/$w"
        end
    end
    echo $p
end
function __canopy_at
    set -l p (__canopy_path)
    test "$p" = "$argv[1]"
end
complete -c canopy -f
`, strings.Join(cases, " "))
	for _, n := range nodes {
		cond := fishSingle("__canopy_at '" + n.path + "'")
		for _, w := range n.words {
			fmt.Fprintf(b, "complete -c canopy -n %s -a %s -d %s\n", cond, fishSingle(w.name), fishSingle(w.desc))
		}
		for _, f := range n.flags {
			opt := ""
			switch {
			case len(f.choices) > 0:
				opt = " -x -a " + fishSingle(strings.Join(f.choices, " "))
			case f.value:
				opt = " -r -F"
			}
			fmt.Fprintf(b, "complete -c canopy -n %s -l %s%s -d %s\n", cond, f.name, opt, fishSingle(f.desc))
		}
	}
}
