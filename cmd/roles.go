package cmd

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/bytesize"
	"github.com/swarmship/swarmship/seeder"
)

func init() {
	extraCommands = append(extraCommands, newOriginCmd, newAgentCmd, newSyncCmd, newStatusCmd)
}

func newOriginCmd() *cobra.Command {
	var (
		f          catalogFlags
		configPath string
		listen     string
		tlsFlags   seeder.TLSConfig
	)
	c := &cobra.Command{
		Use:   "origin --catalog URL [--config origin.yaml]",
		Short: "Run the tracker, the seeder of current releases and the web seed of a directory catalog",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			// Flags win over origin.yaml.
			flags := func(c *seeder.Config) {
				if listen != "" {
					c.Listen = listen
				}
				if tlsFlags.Cert != "" || tlsFlags.Key != "" {
					c.TLS.Cert, c.TLS.Key = tlsFlags.Cert, tlsFlags.Key
				}
				if tlsFlags.ClientCA != "" {
					c.TLS.ClientCA = tlsFlags.ClientCA
				}
			}
			of, err := originConfig(configPath, flags)
			if err != nil {
				return err
			}
			if f.url == "" {
				f.url = of.Catalog
			}
			if f.root == "" {
				f.root = of.Root
			}
			// The tracker's live heap is tiny and churns fast: at 10k
			// announces/s the default GC target collected 12-13 times a
			// second and set the p99. A larger target keeps the heap small
			// in absolute terms. GOGC in the environment still wins.
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(400)
			}
			store, err := f.openStore(ctx)
			if err != nil {
				return err
			}
			root, err := f.pinnedRoot()
			if err != nil {
				return err
			}
			stateDir := of.CacheDir
			if stateDir == "" {
				if stateDir, err = os.MkdirTemp("", "swarmship-origin-"); err != nil {
					return err
				}
				defer os.RemoveAll(stateDir)
			}
			client, err := catalog.NewClient(store, root, filepath.Join(stateDir, "tuf"))
			if err != nil {
				return err
			}
			o, err := seeder.New(*of, store, client, slog.Default())
			if err != nil {
				return err
			}
			defer o.Close()
			reloadRevocationsOnHUP(ctx, o)
			ln, err := net.Listen("tcp", of.Listen)
			if err != nil {
				return fmt.Errorf("origin listen: %w", err)
			}
			scheme := "http"
			if tc := o.ServerTLS(); tc != nil {
				ln, scheme = tls.NewListener(ln, tc), "https"
			}
			srv := &http.Server{Handler: o.Handler(), ReadHeaderTimeout: 10 * time.Second}
			go srv.Serve(ln)
			slog.Info("origin listening", "addr", ln.Addr().String(), "scheme", scheme, "catalog", store.String(), "peer_port", o.PeerPort())
			err = o.Run(ctx)
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(shutdown)
			return err
		},
	}
	f.register(c.Flags(), false)
	c.Flags().StringVar(&configPath, "config", "", "origin.yaml")
	c.Flags().StringVar(&listen, "listen", "", "HTTP listen address (default :7070)")
	c.Flags().StringVar(&tlsFlags.Cert, "tls-cert", "", "serve HTTPS with this certificate (PEM; with --tls-key)")
	c.Flags().StringVar(&tlsFlags.Key, "tls-key", "", "private key of --tls-cert (PEM, mode 0600)")
	c.Flags().StringVar(&tlsFlags.ClientCA, "tls-client-ca", "", "verify client certificates against this CA (PEM)")
	return c
}

// originConfig reads origin.yaml, if given, with the flags applied over it.
func originConfig(path string, flags func(*seeder.Config)) (*seeder.Config, error) {
	if path != "" {
		return seeder.LoadConfig(path, flags)
	}
	var c seeder.Config
	flags(&c)
	if err := c.Finish(); err != nil {
		return nil, fmt.Errorf("origin: %w", err)
	}
	return &c, nil
}

func newAgentCmd() *cobra.Command {
	var configPath string
	c := &cobra.Command{
		Use:   "agent --config agent.yaml",
		Short: "Run the agent daemon: follow the catalog, download, verify, activate, seed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAgent(cmd.Context(), configPath)
		},
	}
	c.Flags().StringVar(&configPath, "config", "/etc/swarmship/agent.yaml", "agent.yaml")
	return c
}

func newSyncCmd() *cobra.Command {
	var (
		configPath string
		seedFor    time.Duration
		timeout    time.Duration
	)
	c := &cobra.Command{
		Use:   "sync --config agent.yaml [--seed-for DUR]",
		Short: "One agent pass for cron: exit 0 when every subscription is verified and active",
		Long: `sync refreshes the catalog, downloads, verifies and activates every subscribed
release, optionally seeds for a while, and exits: 0 when all subscriptions are
active, 2 with a one-line reason when not (timeout, catalog unavailable, ...).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := agent.LoadConfig(configPath)
			if err != nil {
				return err
			}
			cfg.Status.Addr = "off" // the daemon may own the status port
			return syncPass(cmd.Context(), cfg, timeout, "sync", func(a *agent.Agent) error {
				if seedFor > 0 {
					sctx, scancel := context.WithTimeout(cmd.Context(), seedFor)
					a.Seed(sctx)
					scancel()
				}
				if jsonOutput() {
					return printJSON(cmd.OutOrStdout(), a.Status())
				}
				printActive(cmd.OutOrStdout(), a)
				return nil
			})
		},
	}
	c.Flags().StringVar(&configPath, "config", "/etc/swarmship/agent.yaml", "agent.yaml")
	c.Flags().DurationVar(&seedFor, "seed-for", 0, "keep seeding this long after the pass")
	c.Flags().DurationVar(&timeout, "timeout", time.Hour, "give up after this long")
	return c
}

// syncPass runs one agent pass over cfg within timeout, then calls then
// with the agent still open. A failed pass exits 2 with a one-line reason
// prefixed by what.
func syncPass(ctx context.Context, cfg *agent.Config, timeout time.Duration, what string, then func(*agent.Agent) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	a, err := agent.New(ctx, cfg, agent.Options{Version: version()})
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.Sync(ctx); err != nil {
		return exitError{code: 2, msg: what + ": " + oneLine(err.Error())}
	}
	return then(a)
}

// printActive prints the release each subscription has active.
func printActive(w io.Writer, a *agent.Agent) {
	for _, s := range a.Status().Subscriptions {
		fmt.Fprintf(w, "%s: %s active\n", s.Subscription, s.Active)
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func newStatusCmd() *cobra.Command {
	var addr, configPath string
	c := &cobra.Command{
		Use:   "status [--addr 127.0.0.1:7071 | --config agent.yaml]",
		Short: "Show a running agent's releases, progress, sources and errors",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if configPath != "" && !cmd.Flags().Changed("addr") {
				cfg, err := agent.LoadConfig(configPath)
				if err != nil {
					return err
				}
				addr = cfg.Status.Addr
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/status", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("agent status API at %s: %w (is the agent running?)", addr, err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("agent status API at %s: %s", addr, resp.Status)
			}
			var st agent.Status
			if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
				return fmt.Errorf("agent status API at %s: %w", addr, err)
			}
			if jsonOutput() {
				return printJSON(cmd.OutOrStdout(), st)
			}
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:7071", "agent status API address")
	c.Flags().StringVar(&configPath, "config", "", "read the address from agent.yaml")
	return c
}

func printStatus(w interface{ Write([]byte) (int, error) }, st agent.Status) {
	fmt.Fprintf(w, "site %s  region %s  tenant %s  peer port %d\n", dash(st.Site), dash(st.Region), dash(st.Tenant), st.PeerPort)
	fmt.Fprintf(w, "catalog %s  last refresh %s", st.Catalog.URL, st.Catalog.LastRefresh.Format(time.RFC3339))
	if st.Catalog.Error != "" {
		fmt.Fprintf(w, "  error: %s", st.Catalog.Error)
	}
	fmt.Fprintln(w)
	if st.Catalog.Watch != "" {
		fmt.Fprintf(w, "catalog watch: %s\n", st.Catalog.Watch)
	}
	printSelfUpdate(w, st.SelfUpdate)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSUBSCRIPTION\tTARGET\tACTIVE\tREADY\tWAITING FOR")
	for _, s := range st.Subscriptions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", s.Subscription, dash(s.Target), dash(s.Active), s.Ready, s.Reason)
	}
	fmt.Fprintln(tw, "\nRELEASE\tSTATE\tPROGRESS\tFROM PEERS\tFROM ORIGIN\tREUSED\tUPLOADED\tPEERS\tLAST ERROR")
	for _, r := range st.Releases {
		pct := 0.0
		if r.Size > 0 {
			pct = 100 * float64(r.Completed) / float64(r.Size)
		}
		// REUSED: bytes taken from releases already held (delta releases).
		fmt.Fprintf(tw, "%s@%s\t%s\t%.0f%%\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Name, r.Version, r.Phase, pct,
			bytesize.Format(r.Downloaded.Peer), bytesize.Format(r.Downloaded.Origin), bytesize.Format(r.Reused), bytesize.Format(r.Uploaded), r.Peers, r.LastError)
	}
	if len(st.Sources) > 0 {
		fmt.Fprintln(tw, "\nSOURCE\tKIND\tTIER\tHEALTHY\tWHY")
		for _, s := range st.Sources {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%v\t%s\n", s.Name, s.Kind, s.Tier, s.Healthy, s.Why)
		}
	}
	tw.Flush()
	printFleetPolicy(w, st.Policy.Fleet)
	printSignage(w, st.Signage)
	// Damaged state found at start (corrupt databases, re-adopted releases).
	for i, r := range st.Recovered {
		if i == 0 {
			fmt.Fprintln(w, "\nRECOVERED AT START")
		}
		fmt.Fprintf(w, "%s: %s", r.File, r.Action)
		if r.MovedTo != "" {
			fmt.Fprintf(w, " (moved to %s)", r.MovedTo)
		}
		if r.Reason != "" {
			fmt.Fprintf(w, ": %s", r.Reason)
		}
		fmt.Fprintln(w)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
