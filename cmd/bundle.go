package cmd

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/internal/bytesize"
	"github.com/swarmship/swarmship/policy"
)

func init() { extraCommands = append(extraCommands, newBundleCmd) }

func newBundleCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "bundle",
		Short: "Carry signed releases on removable media into air-gapped sites",
	}
	var (
		f        catalogFlags
		out      string
		releases []string
	)
	export := &cobra.Command{
		Use:   "export --catalog URL --release NAME[@VERSION|:CHANNEL]... --out DIR",
		Short: "Write the signed catalog metadata and the chosen releases into DIR",
		Long: `export writes an offline bundle: the catalog's signed TUF metadata and the
manifest, torrent and payload of each release, checked against the signed
manifest as they are copied. The bundle is a catalog directory; agents read it
with 'swarmship bundle import' and verify it from their pinned root like any
download. Re-sign the catalog first (catalog resign) if the media travel for
longer than the timestamp lifetime.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			cl, err := f.client(cmd.Context())
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			if entries, _ := os.ReadDir(out); len(entries) > 0 {
				return fmt.Errorf("bundle directory %s is not empty", out)
			}
			dst, err := catalog.NewDirStore(out)
			if err != nil {
				return err
			}
			res, err := publish.ExportBundle(cmd.Context(), cl, dst, releases)
			if err != nil {
				return err
			}
			if jsonOutput() {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "bundle %s: %d releases, %s of payload\n", out, len(res.Releases), bytesize.Format(res.Bytes))
			return nil
		},
	}
	f.register(export.Flags(), true)
	export.Flags().StringVar(&out, "out", "", "empty directory to write the bundle into")
	export.Flags().StringArrayVar(&releases, "release", nil, "release to include: name, name@version or name:channel (repeatable)")

	var (
		configPath string
		timeout    time.Duration
	)
	imp := &cobra.Command{
		Use:   "import DIR --config agent.yaml",
		Short: "Verify and activate releases from a bundle, offline (no origin, no peers)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := agent.LoadConfig(configPath)
			if err != nil {
				return err
			}
			dir, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			cfg.Catalog.URL, cfg.Catalog.URLs = dir, nil
			cfg.Mode = policy.ModeOffline
			cfg.Tracker, cfg.Trackers = "", nil
			cfg.Offload.Sources = nil
			cfg.Status.Addr = "off"
			cfg.Offload.StartupGrace = time.Millisecond
			if err := cfg.Finish(); err != nil {
				return err
			}
			return syncPass(cmd.Context(), cfg, timeout, "bundle import", func(a *agent.Agent) error {
				printActive(cmd.OutOrStdout(), a)
				return nil
			})
		},
	}
	imp.Flags().StringVar(&configPath, "config", "/etc/swarmship/agent.yaml", "agent.yaml (its pinned root verifies the bundle)")
	imp.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "give up after this long")
	c.AddCommand(export, imp)
	return c
}
