package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/internal/selfupdate"
)

func init() {
	extraCommands = append(extraCommands, newVersionCmd, newSelfUpdateCmd)
}

// runArgs are the arguments of this run, for the binary that replaces it.
var runArgs []string

// version is Version, or the module version of a `go install` build.
func version() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return Version
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print swarmship's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), version())
			return err
		},
	}
}

// runAgent runs the agent daemon. When it stops for a self-update, the
// new binary is tried; if healthy it is installed and takes over (exec,
// or exit for the service manager), else it is rolled back and this
// binary runs the agent again.
func runAgent(ctx context.Context, configPath string) error {
	cfg, err := agent.LoadConfig(configPath)
	if err != nil {
		return err
	}
	own := version()
	bin := ""
	if cfg.SelfUpdate.Enabled() && !selfupdate.OnTrial() {
		if bin, err = installedBinary(cfg.SelfUpdate); err != nil {
			return err
		}
		recoverSelfUpdate(cfg, bin, own)
	}
	hup, stopHUP := agentHUP(ctx)
	defer stopHUP()
	for {
		a, err := agent.New(ctx, cfg, agent.Options{Version: own})
		if err != nil {
			return err
		}
		hup.Store(a)
		runErr := a.Run(ctx)
		hup.Store(nil)
		slog.Info("agent stopping; flushing state")
		closeErr := a.Close()
		var up *agent.SelfUpdate
		if !errors.As(runErr, &up) || closeErr != nil {
			return errors.Join(runErr, closeErr)
		}
		installed, err := selfupdate.Apply(ctx, selfupdate.Plan{
			StatePath: agent.SelfUpdateStatePath(cfg.CacheDir),
			Binary:    bin, Source: up.File, Version: up.Version, Own: own,
			Marker:        filepath.Join(cfg.CacheDir, "state", "selfupdate-health.json"),
			Args:          runArgs,
			HealthTimeout: cfg.SelfUpdate.HealthTimeout, StopGrace: 30 * time.Second,
		})
		if ctx.Err() != nil {
			return nil
		}
		if !installed {
			if err != nil {
				return fmt.Errorf("self-update: %w", err)
			}
			slog.Error("self-update rolled back; running on", "version", own, "tried", up.Version)
			continue
		}
		if err != nil {
			slog.Warn("self-update", "err", err)
		}
		slog.Info("self-update installed", "binary", bin, "from", own, "to", up.Version, "restart", cfg.SelfUpdate.Restart)
		if cfg.SelfUpdate.Restart == agent.RestartExit {
			return exitError{code: cfg.SelfUpdate.ExitCode, msg: "self-update to " + up.Version + " installed; exiting for the service manager to start it"}
		}
		err = syscall.Exec(bin, append([]string{bin}, runArgs...), os.Environ())
		return fmt.Errorf("self-update: exec %s: %w", bin, err)
	}
}

// installedBinary is self_update.binary or the running executable.
func installedBinary(c agent.SelfUpdateConfig) (string, error) {
	if c.Binary != "" {
		return c.Binary, nil
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return "", fmt.Errorf("self_update: cannot find the running binary (set self_update.binary): %w", err)
	}
	return exe, nil
}

// recoverSelfUpdate settles what a crash left of an update, at start.
func recoverSelfUpdate(cfg *agent.Config, bin, own string) {
	selfupdate.Cleanup(bin)
	path := agent.SelfUpdateStatePath(cfg.CacheDir)
	st, err := selfupdate.Load(path)
	if err != nil {
		slog.Warn("self-update state", "err", err)
		return
	}
	if st.Recover(own, time.Now()) {
		if err := selfupdate.Save(path, st); err != nil {
			slog.Warn("self-update state", "err", err)
		}
		if st.Last != nil {
			slog.Info("self-update settled after a restart", "version", st.Last.Version, "result", st.Last.Result, "reason", st.Last.Reason)
		}
	}
}

func newSelfUpdateCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "selfupdate",
		Short: "Inspect or reset the agent's updates of its own binary",
	}
	var configPath string
	clearCmd := &cobra.Command{
		Use:   "clear --config agent.yaml [VERSION...]",
		Short: "Let the agent try versions it rolled back again (all when none named)",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := agent.LoadConfig(configPath)
			if err != nil {
				return err
			}
			path := agent.SelfUpdateStatePath(cfg.CacheDir)
			st, err := selfupdate.Load(path)
			if err != nil {
				return err
			}
			if len(args) == 0 {
				st.Bad = nil
			}
			for _, v := range args {
				delete(st.Bad, v)
			}
			if err := selfupdate.Save(path, st); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "cleared; restart the agent to retry")
			return nil
		},
	}
	clearCmd.Flags().StringVar(&configPath, "config", "/etc/swarmship/agent.yaml", "agent.yaml")
	c.AddCommand(clearCmd)
	return c
}

// printSelfUpdate prints the agent's version and its latest self-update.
func printSelfUpdate(w io.Writer, su *agent.SelfUpdateStatus) {
	if su == nil {
		return
	}
	fmt.Fprintf(w, "agent version %s", dash(su.Version))
	if su.OnTrial {
		fmt.Fprint(w, " (on trial)")
	}
	if l := su.Last; l != nil {
		fmt.Fprintf(w, "  self-update %s %s at %s", l.Version, l.Result, l.At.Format(time.RFC3339))
		if l.Reason != "" {
			fmt.Fprintf(w, ": %s", l.Reason)
		}
	}
	fmt.Fprintln(w)
}
