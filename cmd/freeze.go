package cmd

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/audit"
	"github.com/swarmship/swarmship/policy"
)

func newCatalogFreezeCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "freeze",
		Short: "Blackout periods, signed into the catalog: no release activates in them unless urgent",
	}
	c.AddCommand(newFreezeAddCmd(), newFreezeListCmd(), newFreezeRemoveCmd())
	return c
}

func newFreezeAddCmd() *cobra.Command {
	var f catalogFlags
	var from, to, reason, id string
	c := &cobra.Command{
		Use:   "add --from RFC3339 --to RFC3339 --reason TEXT",
		Short: "Add a freeze",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fz := catalog.Freeze{ID: id, Reason: reason}
			var err error
			if fz.From, err = parseInstant("--from", from); err != nil {
				return err
			}
			if fz.To, err = parseInstant("--to", to); err != nil {
				return err
			}
			if err := catalog.CheckFreeze(fz); err != nil {
				return err
			}
			e := audit.Event{Action: "freeze-add", Details: map[string]string{"from": from, "to": to, "reason": reason}}
			var added catalog.Freeze
			err = mutateAudited(cmd, &f, e, func(r *catalog.Repo) error {
				var err error
				added, err = r.AddFreeze(cmd.Context(), fz)
				return err
			})
			if err != nil {
				return err
			}
			if jsonOutput() {
				return printJSON(cmd.OutOrStdout(), added)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "freeze %s: %s to %s\n", added.ID, added.From.Format(time.RFC3339), added.To.Format(time.RFC3339))
			return nil
		},
	}
	f.register(c.Flags(), true)
	c.Flags().StringVar(&from, "from", "", "start (RFC 3339, e.g. 2026-12-20T00:00:00+01:00)")
	c.Flags().StringVar(&to, "to", "", "end, exclusive (RFC 3339)")
	c.Flags().StringVar(&reason, "reason", "", "why, for the people who will wonder")
	c.Flags().StringVar(&id, "id", "", "name of the freeze (default: f1, f2, …)")
	return c
}

func newFreezeListCmd() *cobra.Command {
	var f catalogFlags
	c := &cobra.Command{
		Use:   "list",
		Short: "List freezes",
		Args:  cobra.NoArgs,
		RunE: f.runWithClient(func(cmd *cobra.Command, args []string, cl *catalog.Client) error {
			fs, err := cl.Freezes()
			if err != nil {
				return err
			}
			if jsonOutput() {
				if fs == nil {
					fs = []catalog.Freeze{}
				}
				return printJSON(cmd.OutOrStdout(), fs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tFROM\tTO\tREASON")
			for _, z := range fs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", z.ID, z.From.Format(time.RFC3339), z.To.Format(time.RFC3339), z.Reason)
			}
			return tw.Flush()
		}),
	}
	f.register(c.Flags(), true)
	return c
}

func newFreezeRemoveCmd() *cobra.Command {
	var f catalogFlags
	c := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a freeze",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e := audit.Event{Action: "freeze-remove", Details: map[string]string{"id": args[0]}}
			if err := mutateAudited(cmd, &f, e, func(r *catalog.Repo) error { return r.RemoveFreeze(cmd.Context(), args[0]) }); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "freeze %s removed\n", args[0])
			return nil
		},
	}
	f.register(c.Flags(), true)
	return c
}

// timingFlags are a release's activation timing on publish and schedule.
type timingFlags struct {
	urgent              bool
	activateAt, deliver string
	activate            []string
}

func (t *timingFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&t.urgent, "urgent", false, "activate even during catalog freezes; download despite metered links and low battery")
	fs.StringVar(&t.activateAt, "activate-at", "", "instant the release goes live on every site (RFC 3339)")
	fs.StringArrayVar(&t.activate, "activate", nil, `weekly window, in each site's time zone, in which sites may switch (repeatable), e.g. "Sun 02:00-04:00"`)
	fs.StringVar(&t.deliver, "deliver-by", "", "instant by which every site should hold the bytes (RFC 3339)")
}

func (t *timingFlags) set() bool {
	return t.urgent || t.activateAt != "" || t.deliver != "" || len(t.activate) > 0
}

// timing validates the flags; nil when none is set.
func (t *timingFlags) timing() (*catalog.Timing, error) {
	if !t.set() {
		return nil, nil
	}
	out := &catalog.Timing{Urgent: t.urgent}
	var err error
	if t.activateAt != "" {
		if out.ActivateAt, err = parseInstant("--activate-at", t.activateAt); err != nil {
			return nil, err
		}
	}
	if t.deliver != "" {
		if out.DeliverBy, err = parseInstant("--deliver-by", t.deliver); err != nil {
			return nil, err
		}
	}
	if len(t.activate) > catalog.MaxActivateWindows {
		return nil, fmt.Errorf("%d --activate windows, at most %d", len(t.activate), catalog.MaxActivateWindows)
	}
	for _, s := range t.activate {
		w, err := policy.ParseWindow(s)
		if err != nil {
			return nil, fmt.Errorf("--activate: %w", err)
		}
		out.Activate = append(out.Activate, w.String())
	}
	return out, nil
}

func parseInstant(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("%s is required", flag)
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: want RFC 3339 (2026-12-24T18:00:00+01:00): %w", flag, err)
	}
	return t.UTC(), nil
}

func newCatalogScheduleCmd() *cobra.Command {
	var f catalogFlags
	var t timingFlags
	var clear bool
	c := &cobra.Command{
		Use:   "schedule NAME VERSION [--activate-at T] [--activate WINDOW] [--deliver-by T] [--urgent] | --clear",
		Short: "Set when a release activates and by when sites should hold it (replaces its timing)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			tm, err := t.timing()
			if err != nil {
				return err
			}
			if tm == nil && !clear {
				return errors.New("nothing to set: give --activate-at, --activate, --deliver-by or --urgent, or --clear")
			}
			if tm == nil {
				tm = &catalog.Timing{}
			}
			e := audit.Event{Action: "schedule", Release: args[0], Version: args[1], Details: map[string]string{
				"urgent": fmt.Sprint(tm.Urgent), "activate_at": t.activateAt, "deliver_by": t.deliver, "activate": fmt.Sprint(tm.Activate)}}
			if err := mutateAudited(cmd, &f, e, func(r *catalog.Repo) error { return r.SetTiming(args[0], args[1], *tm) }); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s@%s timing set\n", args[0], args[1])
			return nil
		},
	}
	f.register(c.Flags(), true)
	t.register(c.Flags())
	c.Flags().BoolVar(&clear, "clear", false, "remove all timing: activate as soon as downloaded")
	return c
}

func timingOrNil(t catalog.Timing) *catalog.Timing {
	if t.IsZero() {
		return nil
	}
	return &t
}

// printTiming writes a release's timing lines for `catalog show`.
func printTiming(w io.Writer, t catalog.Timing) {
	if t.Urgent {
		fmt.Fprintf(w, "urgent    true (activates during freezes)\n")
	}
	if !t.ActivateAt.IsZero() {
		fmt.Fprintf(w, "activate  at %s\n", t.ActivateAt.Format(time.RFC3339))
	}
	if len(t.Activate) > 0 {
		fmt.Fprintf(w, "activate  in %s\n", strings.Join(t.Activate, " or "))
	}
	if !t.DeliverBy.IsZero() {
		fmt.Fprintf(w, "deliver   by %s\n", t.DeliverBy.Format(time.RFC3339))
	}
}
