package cmd

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/audit"
	"github.com/swarmship/swarmship/policy"
)

// `catalog playlist`, not `catalog schedule`: that verb already sets a
// release's activation timing (activate_at, deliver_by; freeze.go).
func newCatalogPlaylistCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "playlist",
		Short: "Sign signage schedules (what each screen plays when) into the catalog",
	}
	c.AddCommand(newPlaylistSetCmd(), newPlaylistShowCmd(), newPlaylistRmCmd())
	return c
}

// readPlaylistFile reads and validates a schedule; a bad one never reaches
// the catalog (agents would refuse it anyway).
func readPlaylistFile(path string) (*policy.Playlist, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, policy.MaxPlaylistBytes+1))
	if err != nil {
		return nil, nil, err
	}
	p, err := policy.ParsePlaylist(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if p.TimeZone != "" {
		if _, err := time.LoadLocation(p.TimeZone); err != nil {
			return nil, nil, fmt.Errorf("%s: timezone: %w", path, err)
		}
	}
	return p, b, nil
}

func newPlaylistSetCmd() *cobra.Command {
	var f catalogFlags
	c := &cobra.Command{
		Use:   "set NAME FILE",
		Short: "Validate a signage schedule (JSON) and sign it into the catalog as NAME, replacing NAME's schedule",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, b, err := readPlaylistFile(args[1])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			store, err := f.openStore(ctx)
			if err != nil {
				return err
			}
			keys, err := f.loadKeys("targets", "snapshot", "timestamp")
			if err != nil {
				return err
			}
			if err := catalog.PublishPlaylist(ctx, store, keys, catalog.UpdateOptions{}, args[0], b); err != nil {
				return err
			}
			if err := f.audit(audit.Event{Action: "playlist.set", Details: map[string]string{"schedule": args[0]}}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signage schedule %s signed (%d entries, screens %v)\n", args[0], len(p.Entries), p.Screens())
			return nil
		},
	}
	f.register(c.Flags(), true)
	return c
}

func newPlaylistRmCmd() *cobra.Command {
	var f catalogFlags
	c := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a signage schedule; agents keep what their screens play and report the schedule missing",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e := audit.Event{Action: "playlist.rm", Details: map[string]string{"schedule": args[0]}}
			if err := mutateAudited(cmd, &f, e, func(r *catalog.Repo) error { return r.RemovePlaylist(args[0]) }); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signage schedule %s removed\n", args[0])
			return nil
		},
	}
	f.register(c.Flags(), true)
	return c
}

func newPlaylistShowCmd() *cobra.Command {
	var (
		f      catalogFlags
		at     string
		tzName string
	)
	c := &cobra.Command{
		Use:   "show [NAME] [--at RFC3339] [--timezone ZONE]",
		Short: "List the signage schedules, or show what each screen of NAME plays at an instant and its next switch",
		Args:  cobra.MaximumNArgs(1),
		RunE: f.runWithClient(func(cmd *cobra.Command, args []string, cl *catalog.Client) error {
			if len(args) == 0 {
				names, err := cl.Playlists()
				if err != nil {
					return err
				}
				if jsonOutput() {
					return printJSON(cmd.OutOrStdout(), names)
				}
				for _, n := range names {
					fmt.Fprintln(cmd.OutOrStdout(), n)
				}
				return nil
			}
			b, err := cl.Playlist(cmd.Context(), args[0], policy.MaxPlaylistBytes)
			if err != nil {
				return err
			}
			p, err := policy.ParsePlaylist(b)
			if err != nil {
				return err
			}
			now := time.Now()
			if at != "" {
				if now, err = time.Parse(time.RFC3339, at); err != nil {
					return fmt.Errorf("--at: %w", err)
				}
			}
			loc, err := time.LoadLocation(cmp.Or(tzName, p.TimeZone, "UTC"))
			if err != nil {
				return err
			}
			type row struct {
				Screen     string      `json:"screen"`
				Now        policy.Slot `json:"now"`
				NextSwitch time.Time   `json:"next_switch,omitzero"`
				Next       policy.Slot `json:"next"`
			}
			rows := []row{}
			for _, s := range p.Screens() {
				r := row{Screen: s, Now: p.At(s, now, loc)}
				r.NextSwitch, r.Next = p.NextSwitch(s, now, loc)
				rows = append(rows, r)
			}
			if jsonOutput() {
				return printJSON(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "SCREEN\tNOW (%s, %s)\tNEXT SWITCH\tTHEN\n", now.In(loc).Format("2006-01-02 15:04"), loc)
			show := func(s policy.Slot) string {
				if s.IsZero() {
					return "(nothing)"
				}
				return s.Content + " " + s.Path
			}
			for _, r := range rows {
				next := "never"
				if !r.NextSwitch.IsZero() {
					next = r.NextSwitch.In(loc).Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Screen, show(r.Now), next, show(r.Next))
			}
			return tw.Flush()
		}),
	}
	c.Flags().StringVar(&at, "at", "", "the instant to evaluate (RFC 3339; default now)")
	c.Flags().StringVar(&tzName, "timezone", "", "the site's IANA time zone (default: the schedule's, else UTC)")
	f.register(c.Flags(), true)
	return c
}

// printSignage shows what each screen plays and the screens at risk.
func printSignage(w io.Writer, st *agent.SignageStatus) {
	if st == nil {
		return
	}
	fmt.Fprintf(w, "\nSIGNAGE schedule %s (%s)\n", st.Schedule, st.TimeZone)
	if st.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", st.Error)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCREEN\tPLAYING\tSINCE\tNEXT SWITCH\tAT RISK")
	for _, s := range st.Screens {
		next, risk := "never", "-"
		if !s.NextSwitch.IsZero() {
			next = s.NextSwitch.Format(time.RFC3339)
		}
		if s.AtRisk != nil {
			risk = fmt.Sprintf("wants %s since %s: %s", s.AtRisk.Wanted, s.AtRisk.Since.Format(time.RFC3339), s.AtRisk.Reason)
		}
		since := "-"
		if !s.Since.IsZero() {
			since = s.Since.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Screen, dash(s.Playing), since, next, risk)
	}
	tw.Flush()
}
