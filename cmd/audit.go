package cmd

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmship/swarmship/internal/audit"
	"github.com/swarmship/swarmship/internal/release"
)

func init() { extraCommands = append(extraCommands, newAuditCmd) }

func newAuditCmd() *cobra.Command {
	var (
		file  string
		f     audit.Filter
		since time.Duration
	)
	c := &cobra.Command{
		Use:   "audit --file audit.jsonl [--action A] [--release N] [--since DUR]",
		Short: "Read and filter an audit log (publisher: keys/audit.jsonl; agent: cache_dir/state/audit.jsonl)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return fmt.Errorf("--file is required")
			}
			if since > 0 {
				f.Since = time.Now().Add(-since)
			}
			events, err := audit.Read(file, f)
			if err != nil {
				return err
			}
			if jsonOutput() {
				return printJSON(cmd.OutOrStdout(), events)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tACTION\tACTOR\tRELEASE\tCHANNEL\tSITE\tDETAILS")
			for _, e := range events {
				rel := e.Release
				if e.Version != "" {
					rel = release.Format(e.Release, e.Version)
				}
				var details []string
				for k, v := range e.Details {
					details = append(details, k+"="+v)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339), e.Action, e.Actor+"@"+e.Host, dash(rel), dash(e.Channel), dash(e.Site), strings.Join(details, " "))
			}
			return tw.Flush()
		},
	}
	c.Flags().StringVar(&file, "file", "", "audit log file")
	c.Flags().StringVar(&f.Action, "action", "", "only this action (publish, promote, yank, keys, token, activate)")
	c.Flags().StringVar(&f.Release, "release", "", "only this release name")
	c.Flags().DurationVar(&since, "since", 0, "only events newer than this, e.g. 24h")
	return c
}
