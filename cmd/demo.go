package cmd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/bytesize"
	"github.com/swarmship/swarmship/localswarm"
)

func init() { extraCommands = append(extraCommands, newDemoCmd) }

func newDemoCmd() *cobra.Command {
	var (
		agents  int
		size    string
		keep    bool
		timeout time.Duration
		sample  string
		hold    bool
	)
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole job on loopback: publish, origin, agents, verify, report",
		Long: `demo creates a temporary directory catalog, publishes a sample release (the
files in testdata/sample-release plus a generated binary), starts an origin and
several agents in this process on loopback, shows their progress, and prints
where every agent's bytes came from and how many copies the origin sent.
With --hold the origin, its dashboard and the agents stay up afterwards until
Ctrl-C (SIGINT or SIGTERM).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			binSize, err := bytesize.Parse(size)
			if err == nil && binSize <= 0 {
				err = fmt.Errorf("%q: want a positive size", size)
			}
			if err != nil {
				return fmt.Errorf("--size: %w", err)
			}
			if agents < 1 || agents > 32 {
				return fmt.Errorf("--agents must be between 1 and 32")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			var holdCtx context.Context
			if hold {
				// The signal context of Execute, not the timed one: --timeout
				// bounds the demo's work, not how long it is looked at.
				holdCtx = cmd.Context()
			}
			return runDemo(ctx, cmd.OutOrStdout(), agents, int64(binSize), sample, keep, holdCtx)
		},
	}
	c.Flags().IntVar(&agents, "agents", 4, "number of agents")
	c.Flags().StringVar(&size, "size", "64MiB", "size of the generated binary in the release")
	c.Flags().BoolVar(&keep, "keep", false, "keep the temporary directory")
	c.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long")
	c.Flags().StringVar(&sample, "sample", "testdata/sample-release", "directory of sample files to include (skipped if missing)")
	c.Flags().BoolVar(&hold, "hold", false, "keep the origin, its dashboard and the agents up after the demo until Ctrl-C")
	return c
}

// runDemo runs the demo within ctx. A non-nil hold keeps the swarm up after
// the results until hold is done.
func runDemo(ctx context.Context, out io.Writer, nAgents int, binSize int64, sample string, keep bool, hold context.Context) error {
	dir, err := os.MkdirTemp("", "swarmship-demo-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintf(out, "keeping %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	// Agents log to a file; the terminal gets the progress.
	logFile, err := os.Create(filepath.Join(dir, "demo.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := slog.New(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo}))

	fmt.Fprintf(out, "swarmship demo: a directory catalog, an origin and %d agents on loopback\n\n", nAgents)
	sw, err := localswarm.New(ctx, dir, localswarm.OriginOptions{Seed: false}, log)
	if err != nil {
		return err
	}
	defer sw.Close()

	payload := filepath.Join(dir, "payload", "demo")
	if err := os.MkdirAll(filepath.Join(payload, "bin"), 0o755); err != nil {
		return err
	}
	if err := writeRandomFile(filepath.Join(payload, "bin", "demo-app"), binSize); err != nil {
		return err
	}
	paths := []string{filepath.Join(payload, "bin")}
	if st, err := os.Stat(sample); err == nil && st.IsDir() {
		entries, _ := os.ReadDir(sample)
		for _, e := range entries {
			paths = append(paths, filepath.Join(sample, e.Name()))
		}
	}
	start := time.Now()
	res, err := sw.Publish(ctx, "demo", "1.0", paths, "stable")
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	fmt.Fprintf(out, "published  demo@1.0: %s in %d files, %d pieces, infohash %s (%.2fs)\n", bytesize.Format(res.TotalSize), res.Files, res.Pieces, res.InfoHash, time.Since(start).Seconds())
	fmt.Fprintf(out, "catalog    %s (signed, TUF)\norigin     %s (tracker, web seed)\ndashboard  %s/dashboard\n\n", sw.CatalogDir, sw.OriginURL, sw.OriginURL)

	var running []*localswarm.RunningAgent
	sites := []string{"branch-a", "branch-b"}
	start = time.Now()
	for i := range nAgents {
		name := fmt.Sprintf("agent-%d", i+1)
		cfg := sw.AgentConfig(name, sites[i%len(sites)], "eu", agent.Subscription{Name: "demo", Channel: "stable"})
		ra, err := sw.StartAgent(ctx, name, cfg)
		if err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		running = append(running, ra)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- localswarm.WaitActive(ctx, "demo", "1.0", running...) }()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case err := <-waitErr:
			if err != nil {
				return err
			}
			done = true
		case <-tick.C:
			fmt.Fprintf(out, "%5.1fs ", time.Since(start).Seconds())
			for _, ra := range running {
				fmt.Fprintf(out, " %s %3.0f%%", ra.Name, 100*progressOf(ra.Agent, "demo", res.TotalSize))
			}
			fmt.Fprintln(out)
		}
	}
	elapsed := time.Since(start)
	fmt.Fprintf(out, "\nall %d agents active in %.2fs\n\n", nAgents, elapsed.Seconds())

	mb, err := catalog.ReadAll(ctx, sw.Store, catalog.ManifestKey("demo", "1.0"), catalog.MaxManifestSize)
	if err != nil {
		return err
	}
	m, err := catalog.ParseManifest(mb)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "AGENT\tSITE\tFROM PEERS\tFROM ORIGIN\tUPLOADED\tSHA-256\t")
	allOK := true
	for _, ra := range running {
		var rs agent.ReleaseStatus
		for _, r := range ra.Agent.Status().Releases {
			if r.Name == "demo" && r.Version == "1.0" {
				rs = r
			}
		}
		check := "ok"
		if err := checkTree(filepath.Join(ra.Config.CacheDir, "current", "demo"), m); err != nil {
			check, allOK = "FAIL: "+err.Error(), false
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", ra.Name, ra.Config.Site, bytesize.Format(rs.Downloaded.Peer), bytesize.Format(rs.Downloaded.Origin), bytesize.Format(rs.Uploaded), check)
	}
	tw.Flush()
	eg := sw.Origin.Egress()
	copies := float64(eg.Total()) / float64(res.TotalSize)
	fmt.Fprintf(out, "\norigin egress: %s of payload = %.2f copies of the release (plain HTTP to every agent would be %d copies)\n", bytesize.Format(eg.Total()), copies, nAgents)
	if allOK {
		fmt.Fprintf(out, "every agent's files match the signed SHA-256 manifest\n")
	}
	if hold != nil {
		fmt.Fprintf(out, "\nholding: dashboard %s/dashboard, metrics %s/metrics; Ctrl-C to stop\n", sw.OriginURL, sw.OriginURL)
		<-hold.Done()
		fmt.Fprintf(out, "stopping\n")
	}
	if !allOK {
		return exitError{code: 1, msg: "some agents' files do not match the signed manifest"}
	}
	return nil
}

func progressOf(a *agent.Agent, name string, total int64) float64 {
	for _, r := range a.Status().Releases {
		if r.Name == name && total > 0 {
			return float64(r.Completed) / float64(total)
		}
	}
	return 0
}

// checkTree re-hashes an activated release independently of the agent.
func checkTree(dir string, m *catalog.Manifest) error {
	for _, f := range m.Files {
		fh, err := os.Open(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return err
		}
		if hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
			return fmt.Errorf("%s differs", f.Path)
		}
	}
	return nil
}

// writeRandomFile writes size pseudo-random bytes (fast and incompressible).
func writeRandomFile(p string, size int64) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	r := rand.NewChaCha8([32]byte{'s', 'w', 'a', 'r', 'm'})
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(int64(len(buf)), left)
		r.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	return f.Close()
}
