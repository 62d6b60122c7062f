package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/textsafe"
	"github.com/canopy-p2p/canopy/wire"
)

// The people commands: profile, contacts, msg (README.md, "People").

const profileUsage = `canopy profile [--json]
canopy profile set [--nick NAME] [--status online|away|busy|invisible] [--text TEXT]`

const contactsUsage = `canopy contacts [--json]                      the roster with presence
canopy contacts add NODE-ID [--name LOCAL-NAME] [--message TEXT]
canopy contacts requests [--json]             requests waiting for your answer
canopy contacts accept|deny|remove CONTACT
canopy contacts trust CONTACT contact|trusted|blocked
canopy contacts appear-offline CONTACT on|off
(CONTACT: a node ID, or your name, their nickname or an ID prefix that names one contact)`

const msgUsage = `canopy msg send CONTACT TEXT...
canopy msg [CONTACT] [--json] [--follow] [--limit N]`

// parseMixed parses fs's flags wherever they stand among the positional
// arguments, which it returns.
func parseMixed(ctx context.Context, fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(ctx, fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func peopleClient(fs *flag.FlagSet) *apiFlags { return addAPIFlags(fs) }

func runProfile(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("profile", flag.ContinueOnError)
	af := peopleClient(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	nick := fs.String("nick", "", "set the nickname (with set)")
	status := fs.String("status", "", "set the status: online, away, busy or invisible (with set)")
	text := fs.String("text", "", "set the status text (with set)")
	pos, err := parseMixed(ctx, fs, args)
	if err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	var p api.Profile
	switch {
	case len(pos) == 0:
		p, err = c.Profile(ctx)
	case len(pos) == 1 && pos[0] == "set":
		var set api.ProfileSet
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "nick":
				set.Nick = nick
			case "status":
				set.Status = status
			case "text":
				set.Text = text
			}
		})
		if set.Nick == nil && set.Status == nil && set.Text == nil {
			return errors.New("profile set: name at least one of --nick, --status, --text")
		}
		p, err = c.SetProfile(ctx, set)
	default:
		return usageErrorf("usage:\n%s", profileUsage)
	}
	if err != nil {
		return af.explain(err)
	}
	if *asJSON {
		return printJSON(p)
	}
	fmt.Printf("%s (%s)  %s", personName(p.Nick, p.Short), p.ID, p.Status)
	if p.Text != "" {
		fmt.Printf(": %s", shown(p.Text))
	}
	fmt.Println()
	return nil
}

// personName is how a person is shown: the nickname with the short ID,
// since nicknames are unique only in context.
func personName(nick, short string) string {
	if nick == "" {
		return short
	}
	return shown(nick) + " [" + short + "]"
}

// resolveContact finds the contact arg names: a node ID, a local name, a
// nickname or an ID prefix that names exactly one contact.
func resolveContact(ctx context.Context, c *api.Client, arg string) (string, error) {
	if id, err := identity.ParseNodeID(arg); err == nil {
		return id.String(), nil
	}
	cs, err := c.Contacts(ctx)
	if err != nil {
		return "", err
	}
	var match []api.Contact
	for _, k := range cs {
		if k.Name == arg || k.Nick == arg || (len(arg) >= 4 && strings.HasPrefix(k.ID, strings.ToLower(arg))) {
			match = append(match, k)
		}
	}
	switch len(match) {
	case 1:
		return match[0].ID, nil
	case 0:
		if len(arg) == 52 {
			_, err := identity.ParseNodeID(arg)
			return "", fmt.Errorf("%q is not a valid node ID (nothing was sent): %w", arg, err)
		}
		return "", fmt.Errorf("no contact is named %q (by node ID, name, nickname or ID prefix)", arg)
	}
	var names []string
	for _, k := range match {
		names = append(names, personName(k.Nick, k.Short))
	}
	return "", fmt.Errorf("%q names %d contacts: %s; use the node ID", arg, len(match), strings.Join(names, ", "))
}

func runContacts(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("contacts", flag.ContinueOnError)
	af := peopleClient(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	name := fs.String("name", "", "your name for the contact (with add)")
	note := fs.String("message", "", "a note with the request (with add)")
	pos, err := parseMixed(ctx, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 && pos[0] == "add" {
		if len(pos) != 2 {
			return usageErrorf("usage: canopy contacts add NODE-ID [--name LOCAL-NAME] [--message TEXT]")
		}
		// A mistyped ID is refused here, before anything is sent.
		if _, err := identity.ParseNodeID(pos[1]); err != nil {
			return fmt.Errorf("%q is not a node ID (nothing was sent): %w", pos[1], err)
		}
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	return af.explain(contactsCommand(ctx, c, pos, *name, *note, *asJSON))
}

func contactsCommand(ctx context.Context, c *api.Client, pos []string, name, note string, asJSON bool) error {
	if len(pos) == 0 {
		cs, err := c.Contacts(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(cs)
		}
		printContacts(cs)
		return nil
	}
	switch cmd := pos[0]; {
	case cmd == "add":
		k, err := c.AddContact(ctx, api.ContactAdd{ID: pos[1], Name: name, Message: note})
		if err != nil {
			return err
		}
		return printContact(k, asJSON, "request sent to")
	case cmd == "requests" && len(pos) == 1:
		rs, err := c.Requests(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(rs)
		}
		if len(rs) == 0 {
			fmt.Println("no contact requests")
		}
		for _, r := range rs {
			line := fmt.Sprintf("%s  %s", personName(r.Nick, r.Short), r.ID)
			if r.Count > 1 {
				line += fmt.Sprintf("  (asked %d times)", r.Count)
			}
			fmt.Println(line)
			if r.Text != "" {
				fmt.Printf("    %q\n", shown(r.Text))
			}
		}
		return nil
	case (cmd == "accept" || cmd == "deny" || cmd == "remove") && len(pos) == 2:
		id := pos[1]
		if cmd == "remove" {
			var err error
			if id, err = resolveContact(ctx, c, id); err != nil {
				return err
			}
		} else if _, err := identity.ParseNodeID(id); err != nil {
			return fmt.Errorf("%q is not a node ID: %w", id, err)
		}
		k, err := c.ContactAction(ctx, id, cmd)
		if err != nil {
			return err
		}
		if cmd == "accept" {
			return printContact(k, asJSON, "accepted")
		}
		fmt.Printf("%s: done\n", cmd)
		return nil
	case cmd == "trust" && len(pos) == 3:
		id, err := resolveContact(ctx, c, pos[1])
		if err != nil {
			return err
		}
		k, err := c.SetTrust(ctx, id, pos[2])
		if err != nil {
			return err
		}
		return printContact(k, asJSON, "trust set:")
	case cmd == "appear-offline" && len(pos) == 3 && (pos[2] == "on" || pos[2] == "off"):
		id, err := resolveContact(ctx, c, pos[1])
		if err != nil {
			return err
		}
		k, err := c.SetAppearOffline(ctx, id, pos[2] == "on")
		if err != nil {
			return err
		}
		return printContact(k, asJSON, "appear offline "+pos[2]+" for")
	}
	return usageErrorf("usage:\n%s", contactsUsage)
}

func printContact(k api.Contact, asJSON bool, what string) error {
	if asJSON {
		return printJSON(k)
	}
	fmt.Printf("%s %s (%s; trust %s)\n", what, personName(k.Nick, k.Short), k.State, k.Trust)
	return nil
}

func printContacts(cs []api.Contact) {
	if len(cs) == 0 {
		fmt.Println("no contacts yet: canopy contacts add NODE-ID")
		return
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CONTACT\tNAME\tTRUST\tSTATUS\tSEEN\tWHERE")
	for _, k := range cs {
		status := k.Status
		switch {
		case k.State == "requested":
			status = "request sent"
		case k.State == "blocked":
			status = "-"
		case k.Text != "":
			status += ": " + shown(k.Text)
		}
		if k.AppearOffline {
			status += " (you appear offline to them)"
		}
		seen := "-"
		switch {
		case k.Online:
			seen = "now"
		case k.LastSeen != nil:
			seen = k.LastSeen.Local().Format(time.DateTime)
		}
		var where []string
		for _, s := range k.Where {
			where = append(where, s[:10])
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", personName(k.Nick, k.Short), shown(k.Name), k.Trust, status, seen, strings.Join(where, ","))
	}
	w.Flush()
}

func runMsg(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("msg", flag.ContinueOnError)
	af := peopleClient(fs)
	asJSON := fs.Bool("json", false, "print JSON (one object per line with --follow)")
	follow := fs.Bool("follow", false, "keep printing messages and state changes as they come")
	limit := fs.Int("limit", 50, "how many of the newest messages to show")
	pos, err := parseMixed(ctx, fs, args)
	if err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	if len(pos) > 0 && pos[0] == "send" {
		if len(pos) < 3 {
			return usageErrorf("usage: canopy msg send CONTACT TEXT...")
		}
		id, err := resolveContact(ctx, c, pos[1])
		if err != nil {
			return af.explain(err)
		}
		m, err := c.SendMessage(ctx, id, strings.Join(pos[2:], " "))
		if err != nil {
			return af.explain(err)
		}
		if *asJSON {
			return printJSON(m)
		}
		fmt.Printf("%s  %s\n", m.ID, m.State)
		return nil
	}
	if len(pos) > 1 {
		return usageErrorf("usage:\n%s", msgUsage)
	}
	contact := ""
	if len(pos) == 1 {
		if contact, err = resolveContact(ctx, c, pos[0]); err != nil {
			return af.explain(err)
		}
	}
	names := map[string]string{}
	if cs, err := c.Contacts(ctx); err == nil {
		for _, k := range cs {
			names[k.ID] = personName(k.Nick, k.Short)
		}
	}
	// With --follow the stream opens before the history is read, so that
	// nothing arriving in between is missed; what the history already
	// showed is not shown again.
	var stream *api.EventStream
	if *follow {
		if stream, err = c.OpenEvents(ctx); err != nil {
			return af.explain(err)
		}
		defer stream.Close()
	}
	ms, err := c.Messages(ctx, contact, *limit)
	if err != nil {
		return af.explain(err)
	}
	if *asJSON && !*follow {
		return printJSON(ms)
	}
	shownState := map[string]string{}
	for _, m := range ms {
		printMessage(m, names, *asJSON)
		shownState[m.ID] = m.State
	}
	if !*follow {
		return nil
	}
	for {
		ev, err := stream.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return af.explain(err)
		}
		if m := ev.Message; m != nil && (contact == "" || m.Contact == contact) && shownState[m.ID] != m.State {
			shownState[m.ID] = m.State
			printMessage(*m, names, *asJSON)
		}
	}
}

func printJSONLine(v any) error { return json.NewEncoder(os.Stdout).Encode(v) }

func printMessage(m api.Message, names map[string]string, asJSON bool) {
	if asJSON {
		_ = printJSONLine(m)
		return
	}
	who := names[m.Contact]
	if who == "" {
		who = m.Contact[:10]
	}
	arrow := "←"
	state := ""
	if m.Dir == "out" {
		arrow, state = "→", "  ["+m.State
		if m.Reason != "" {
			state += ": " + shown(m.Reason)
		}
		state += "]"
	}
	fmt.Printf("%s %s %s  %s%s\n", m.Time.Local().Format(time.DateTime), arrow, who, textsafe.Bound(m.Text, wire.MaxMessageText), state)
}

// printPeopleCounters prints the people section of `canopy status`: what
// the node's person took and sent, what it refused and held back, and on
// a supernode what it did with other leaves' parcels. Refusals are listed
// by reason, those that happened only; "none" says there were none.
func printPeopleCounters(w io.Writer, p *api.PeopleCounters) {
	if p == nil {
		return
	}
	fmt.Fprintf(w, "\npeople: %d letters in, %d out\n", p.LettersIn, p.LettersOut)
	fmt.Fprintf(w, "  refused: %s\n", counts(
		tally{p.RefusedLetters, "bad letters (malformed, unsigned, misaddressed or too old)"},
		tally{p.Duplicates, "duplicates"},
		tally{p.FromBlocked, "from blocked nodes"},
		tally{p.RequestsLimited, "contact requests rate-limited"},
		tally{p.Unsolicited, "unsolicited accepts or receipts"},
		tally{p.PresenceRefused, "bad presence records"},
		tally{p.PresenceReplayed, "presence records older than one held (replayed)"},
		tally{p.PresenceExpired, "presence records past their validity or from the future"},
		tally{p.StrangerRecords, "presence records of strangers"}))
	if p.AnswersHeld > 0 || p.AnswersWaiting > 0 {
		fmt.Fprintf(w, "  held back from contacts you hide from: %d receipts or accepts, %d waiting now\n", p.AnswersHeld, p.AnswersWaiting)
	}
	if s := p.Supernode; s != nil {
		fmt.Fprintf(w, "people (as a supernode): %d parcels relayed, %d stored; mail held: %d parcels, %s\n",
			s.ParcelsRelayed, s.ParcelsStored, s.MailHeld, humanBytes(int64(s.MailBytes)))
		fmt.Fprintf(w, "  refused: %s\n", counts(
			tally{s.RefusedRecipientFull, "recipient's store full"},
			tally{s.RefusedSenderQuota, "sender's quota full"},
			tally{s.RefusedStoreFull, "supernode's store full"},
			tally{s.RefusedRateLimit, "over a sender's rate"},
			tally{s.RefusedNoRoute, "no route (supernode not in the ring)"},
			tally{s.Malformed, "malformed people messages"}))
	}
}

// tally is one counter of a status line and what it counts.
type tally struct {
	n    uint64
	what string
}

// counts lists the non-zero tallies as "N what, M what", or "none".
func counts(ts ...tally) string {
	var out []string
	for _, t := range ts {
		if t.n > 0 {
			out = append(out, fmt.Sprintf("%d %s", t.n, t.what))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// peopleKillHook returns the people.Config.AfterStep hook that
// $CANOPY_TEST_KILL_AT asks for, or nil: "STEP" kills the node with
// SIGKILL the first time it reaches STEP (people-letter-opened,
// people-letter-kept), "STEP#N" the N-th time. For the crash tests, which
// must kill a real recipient at exact points.
func peopleKillHook() func(string) {
	at := os.Getenv(killAtEnv)
	step, nth, ok := strings.Cut(at, "#")
	if !strings.HasPrefix(step, "people-") {
		return nil
	}
	n := 1
	if ok {
		var err error
		if n, err = strconv.Atoi(nth); err != nil || n < 1 {
			return nil
		}
	}
	var mu sync.Mutex
	seen := 0
	return func(s string) {
		if s != step {
			return
		}
		mu.Lock()
		seen++
		hit := seen == n
		mu.Unlock()
		if hit {
			// Process.Kill is SIGKILL on Unix: no deferred code runs.
			if p, err := os.FindProcess(os.Getpid()); err == nil {
				_ = p.Kill()
			}
			select {} // the signal is on its way
		}
	}
}
