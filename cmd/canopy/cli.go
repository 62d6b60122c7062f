package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/canopy-p2p/canopy/api"
)

// The exit codes, as README.md documents them.
const (
	exitOK      = 0
	exitFailure = 1
	// exitUsage: the command line is wrong (an unknown command or flag, a
	// bad flag value, a missing argument).
	exitUsage = 2
	// exitNoNode: nothing listens at the local API address: the node is
	// not running (connection refused). Scripts can start it and retry.
	exitNoNode = 3
)

// command is one entry of the command table (commandTable). The
// dispatcher, the usage text, every command's -h and `canopy completion`
// are all made from it, so that none of them can drift from the others.
type command struct {
	name string
	// args is the synopsis after the name and [flags], e.g. "WORDS...".
	args string
	// summary is one line for the command list.
	summary string
	// help, if set, is more text for the command's -h.
	help string
	// run runs the command with the arguments after its name. It must
	// parse its flags with parseFlags. Nil for a group of subcommands
	// (canopy config), which needs one of them.
	run func(ctx context.Context, args []string) error
	// subs are the subcommands (canopy sim sweep, canopy config show).
	subs []*command
	// argChoices are the values the first argument may take, for
	// completion (canopy completion bash|zsh|fish).
	argChoices []string
}

func (c *command) sub(name string) *command {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

// usageError is a wrong command line: main exits with exitUsage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// errHelpShown is returned by parseFlags after it printed the help that
// -h asked for: main exits with exitOK.
var errHelpShown = errors.New("help shown")

// errDescribed is returned by parseFlags in describe mode (describe).
var errDescribed = errors.New("flags described")

type ctxKey int

const (
	// keyCommand holds the *commandPath that is running, for parseFlags's
	// help.
	keyCommand ctxKey = iota
	// keyDescribe holds a **flag.FlagSet: describe mode.
	keyDescribe
)

// commandPath is a command with the names that lead to it ("sim sweep").
type commandPath struct {
	cmd  *command
	name string
}

// parseFlags parses a command's flags. On -h or --help it prints the
// command's help to stdout and returns errHelpShown; a bad flag is a
// usageError. In describe mode it hands the flag set over without
// parsing and returns errDescribed, which the command returns at once:
// that is how completion and the tests learn a command's flags without
// running it.
func parseFlags(ctx context.Context, fs *flag.FlagSet, args []string) error {
	if d, ok := ctx.Value(keyDescribe).(**flag.FlagSet); ok {
		*d = fs
		return errDescribed
	}
	// The flag package's own messages go nowhere: main prints the error
	// once, and help goes to stdout.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		if p, ok := ctx.Value(keyCommand).(*commandPath); ok {
			printHelp(os.Stdout, p, fs)
		}
		return errHelpShown
	default:
		return usageError{err}
	}
}

// describe returns the flags c defines (nil when it defines none or is a
// group), by running it in describe mode: with a context that is already
// done, so that a command that failed to call parseFlags first cannot
// reach the network.
func describe(c *command) *flag.FlagSet {
	if c.run == nil {
		return nil
	}
	var fs *flag.FlagSet
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), keyDescribe, &fs))
	cancel()
	if err := c.run(ctx, nil); !errors.Is(err, errDescribed) {
		return nil
	}
	return fs
}

// printHelp prints a command's usage and its flags, with two dashes as
// the README writes them (Go's flag package takes one or two).
func printHelp(w io.Writer, p *commandPath, fs *flag.FlagSet) {
	c := p.cmd
	syn := "canopy " + p.name
	if c.run != nil && fs != nil && hasFlags(fs) {
		syn += " [flags]"
	}
	if len(c.subs) > 0 {
		syn += " [COMMAND]"
	}
	if c.args != "" {
		syn += " " + c.args
	}
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", syn, c.summary)
	if c.help != "" {
		fmt.Fprintf(w, "\n%s", strings.TrimLeft(c.help, "\n"))
	}
	if len(c.subs) > 0 {
		fmt.Fprintf(w, "\nCommands:\n")
		for _, s := range c.subs {
			fmt.Fprintf(w, "  %-12s %s\n", s.name, s.summary)
		}
	}
	if fs != nil && hasFlags(fs) {
		fmt.Fprintf(w, "\nFlags:\n")
		printFlags(w, fs)
	}
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		if sf, ok := f.Value.(*settingFlag); ok {
			name = sf.s.valueName
			if sf.s.kind == kindBool {
				name = ""
			}
		}
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n        %s", line, strings.ReplaceAll(usage, "\n", "\n        "))
		if !isZeroDefault(f) {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

func isZeroDefault(f *flag.Flag) bool {
	switch f.DefValue {
	case "", "0", "false", "[]", "0s":
		return true
	}
	return false
}

// topUsage is `canopy -h`: every command of the table.
func topUsage(w io.Writer, cmds []*command) {
	fmt.Fprint(w, "canopy — peer-to-peer file sharing for people at home\n\nUsage: canopy COMMAND [flags] [ARGS]\n\nCommands:\n")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
		for _, s := range c.subs {
			fmt.Fprintf(w, "  %-12s %s\n", c.name+" "+s.name, s.summary)
		}
	}
	fmt.Fprint(w, `
The commands that talk to a running node send its API token: from --data DIR
(default that of canopy up), or --api-token / $`+tokenEnv+`.
Settings come from flags, then $CANOPY_* variables, then the config file
(canopy config show tells which), then the defaults.

Run "canopy COMMAND -h" for the flags of a command.
Exit codes: 0 done, 1 failed, 2 wrong command line, 3 no node running at the API address.
`)
}

// dispatch runs the command that args name and returns the exit code.
// Errors go to stderr, one line each.
func dispatch(ctx context.Context, cmds []*command, args []string, stderr io.Writer) int {
	if len(args) == 0 {
		topUsage(stderr, cmds)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		topUsage(os.Stdout, cmds)
		return exitOK
	case "help":
		// canopy help COMMAND... is COMMAND... -h.
		if len(args) == 1 {
			topUsage(os.Stdout, cmds)
			return exitOK
		}
		return dispatch(ctx, cmds, append(append([]string(nil), args[1:]...), "-h"), stderr)
	case "--version", "-v":
		args = append([]string{"version"}, args[1:]...)
	}
	var c *command
	for _, x := range cmds {
		if x.name == args[0] {
			c = x
		}
	}
	if c == nil {
		fmt.Fprintf(stderr, "canopy: unknown command %q; run \"canopy -h\" for the list\n", args[0])
		return exitUsage
	}
	p := &commandPath{cmd: c, name: c.name}
	rest := args[1:]
	for len(rest) > 0 && p.cmd.sub(rest[0]) != nil {
		p = &commandPath{cmd: p.cmd.sub(rest[0]), name: p.name + " " + rest[0]}
		rest = rest[1:]
	}
	if p.cmd.run == nil {
		if len(rest) > 0 && (rest[0] == "-h" || rest[0] == "--help" || rest[0] == "-help") {
			printHelp(os.Stdout, p, nil)
			return exitOK
		}
		if len(rest) > 0 {
			fmt.Fprintf(stderr, "canopy %s: unknown command %q\n", p.name, rest[0])
		}
		printHelp(stderr, p, nil)
		return exitUsage
	}
	err := p.cmd.run(context.WithValue(ctx, keyCommand, p), rest)
	return exitCode(stderr, p.name, err)
}

// exitCode prints err (if any) and returns the exit code for it.
func exitCode(stderr io.Writer, name string, err error) int {
	switch {
	case err == nil, errors.Is(err, errHelpShown):
		return exitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "canopy %s: %v\nRun \"canopy %s -h\" for usage.\n", name, err, name)
		return exitUsage
	case notRunning(err):
		fmt.Fprintf(stderr, "canopy %s: %v\n", name, err)
		return exitNoNode
	default:
		fmt.Fprintf(stderr, "canopy %s: %v\n", name, err)
		return exitFailure
	}
}

// notRunning says whether err is a refused connection to the local API:
// no node listens there. A node that is there but slow, or an address
// that does not route, is a failure like any other.
func notRunning(err error) bool {
	return errors.Is(err, api.ErrNoNode) && errors.Is(err, syscall.ECONNREFUSED)
}
