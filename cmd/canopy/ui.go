package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/canopy-p2p/canopy/webui"
)

// browserOpener is the program that opens a URL in the user's browser on
// a Linux or BSD desktop; it honours $BROWSER and the desktop's choice.
const browserOpener = "xdg-open"

// openTimeout bounds how long `canopy ui` waits for the opener, which
// hands the URL to a browser and returns.
const openTimeout = 15 * time.Second

func runUI(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ui", flag.ContinueOnError)
	af := addAPIFlags(fs)
	noOpen := fs.Bool("no-open", false, "print the link only; do not start a browser")
	asJSON := fs.Bool("json", false, "print the link as JSON ({\"url\", \"expires\"}) and start no browser")
	if err := parseFlags(ctx, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("ui takes no arguments, got %q", fs.Arg(0))
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	code, err := c.UICode(ctx)
	if err != nil {
		return af.explain(err)
	}
	if *asJSON {
		return printJSON(code)
	}
	fmt.Printf("%s\n", code.URL)
	fmt.Fprintf(os.Stderr, "canopy ui: the link logs a browser in once, within %v (until %s); after that run canopy ui again, or log in at %s with the token in %s.\n",
		webui.DefaultCodeTTL, code.Expires.Local().Format(time.TimeOnly), loginURL(code.URL), af.source)
	if *noOpen {
		return nil
	}
	if err := openBrowser(ctx, code.URL); err != nil {
		// Not a failure: the link is printed, and a machine without a
		// desktop (a server reached over SSH) has no browser to start.
		fmt.Fprintf(os.Stderr, "canopy ui: no browser started (%v): open the link above yourself.\n", err)
	}
	return nil
}

// loginURL is the login page of the UI a code URL points at.
func loginURL(codeURL string) string {
	for i := range len(codeURL) {
		if codeURL[i] == '?' {
			return codeURL[:i]
		}
	}
	return codeURL
}

// openBrowser hands url to xdg-open when there is one and a display to show
// a browser on.
func openBrowser(ctx context.Context, url string) error {
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return errors.New("no graphical display: $DISPLAY and $WAYLAND_DISPLAY are unset")
	}
	path, err := exec.LookPath(browserOpener)
	if err != nil {
		return fmt.Errorf("%s not found", browserOpener)
	}
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, url)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", browserOpener, err)
	}
	return nil
}
