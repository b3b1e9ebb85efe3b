// Package cmd holds swarmship's cobra commands: flags, config loading,
// wiring and output. The work itself lives in catalog/, seeder/, agent/.
package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Version is set at build time with -ldflags "-X ...cmd.Version=...".
var Version = "dev"

type globalFlags struct {
	logLevel  string
	logFormat string
	output    string
}

var global globalFlags

// Execute runs the command line and returns the process exit code.
func Execute() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
}

// Run runs swarmship with args and returns the exit code; tests call it
// in-process.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	global = globalFlags{}
	runArgs = args
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(stderr, "swarmship:", ee.msg)
			}
			return ee.code
		}
		fmt.Fprintln(stderr, "swarmship:", err)
		return 1
	}
	return 0
}

// exitError carries a specific exit code (sync uses 2 for "not done yet").
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "swarmship",
		Short: "Ship software and media to many sites over BitTorrent, from a signed catalog",
		Long: `swarmship publishes releases into a signed catalog (an S3 bucket or a directory),
runs an origin (tracker, seeder, web seed) and agents at each site that fetch
releases from nearby peers first, verify every byte and activate atomically.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return setupLogging(cmd.ErrOrStderr())
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&global.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.StringVar(&global.logFormat, "log-format", "auto", "log format: auto (text on a terminal, else JSON), text, json")
	pf.StringVarP(&global.output, "output", "o", "table", "output format: table or json")
	root.AddCommand(newCatalogCmd(), newPublishCmd())
	for _, add := range extraCommands {
		root.AddCommand(add())
	}
	return root
}

// extraCommands lets role commands register themselves from their own files.
var extraCommands []func() *cobra.Command

func setupLogging(w io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(global.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if global.output != "table" && global.output != "json" {
		return fmt.Errorf("--output %q: want table or json", global.output)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch global.logFormat {
	case "json":
		h = slog.NewJSONHandler(w, opts)
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "auto":
		if isTerminal(w) {
			h = slog.NewTextHandler(w, opts)
		} else {
			h = slog.NewJSONHandler(w, opts)
		}
	default:
		return fmt.Errorf("--log-format %q: want auto, text or json", global.logFormat)
	}
	slog.SetDefault(slog.New(h))
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func jsonOutput() bool { return global.output == "json" }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
