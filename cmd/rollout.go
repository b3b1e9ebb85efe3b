package cmd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/audit"
	"github.com/swarmship/swarmship/policy"
	"github.com/swarmship/swarmship/seeder/wavegate"
)

func init() { extraCommands = append(extraCommands, newRolloutCmd) }

func newRolloutCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "rollout",
		Short: "Roll a version out in waves with a health gate (signed rollout plans)",
		Long: `A rollout plan is signed into the catalog next to the release. Each agent finds
its wave from its ID (a hash of agent ID and plan ID, or its labels and site) and
activates the version only once its wave is open in the signed plan; it may
download earlier. "rollout watch" (run where the signing keys are) opens the
next wave after the soak while reported failures stay under --max-failures, and
halts the rollout otherwise. Without a running watch no further wave opens.`,
	}
	c.AddCommand(newRolloutStartCmd(), newRolloutStatusCmd(), newRolloutWatchCmd(),
		newRolloutStateCmd("pause", "Stop opening waves and activating (agents keep what they have)"),
		newRolloutStateCmd("resume", "Resume a paused or halted rollout (--retry: agents whose health check failed try again)"),
		newRolloutStateCmd("abort", "End the rollout: no agent activates the version any more"))
	return c
}

// parsePercent reads "2%" or "0.02" as a ratio.
func parsePercent(s string) (float64, error) {
	v, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: want a percentage like 2%%", s)
	}
	if pct {
		f /= 100
	}
	if !(f >= 0 && f <= 1) {
		return 0, fmt.Errorf("%q: must be between 0%% and 100%%", s)
	}
	return f, nil
}

func newRolloutStartCmd() *cobra.Command {
	var (
		f           catalogFlags
		channel     string
		waves       string
		soak        time.Duration
		maxFailures string
	)
	c := &cobra.Command{
		Use:   "start NAME VERSION --channel C --waves 5%,25%,100% --soak 30m --max-failures 2%",
		Short: "Sign a rollout plan and move the channel to VERSION in one catalog change",
		Long: `--waves is a comma-separated list: N% (cumulative share of the fleet, increasing,
ending at 100%), label:NAME (agents with that label in agent.yaml) and site:A+B
(agents of those sites). Label and site waves come first: label:canary,10%,100%.
The first wave opens at once. A new start replaces any plan of NAME.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version := args[0], args[1]
			if channel == "" {
				return errors.New("--channel is required")
			}
			ws, err := policy.ParseWaves(waves)
			if err != nil {
				return fmt.Errorf("--waves: %w", err)
			}
			if soak <= 0 {
				return errors.New("--soak must be positive")
			}
			mf, err := parsePercent(maxFailures)
			if err != nil {
				return fmt.Errorf("--max-failures: %w", err)
			}
			var rnd [8]byte
			rand.Read(rnd[:])
			now := time.Now().UTC()
			plan := &catalog.RolloutPlan{ID: hex.EncodeToString(rnd[:]), Name: name, Version: version, Channel: channel,
				Waves: policy.WaveStrings(ws), Soak: catalog.Duration(soak), MaxFailures: mf, Started: now,
				State: catalog.RolloutRunning, Opened: 1, Since: now, Changed: now}
			e := audit.Event{Action: "rollout.start", Release: name, Version: version, Channel: channel,
				Details: map[string]string{"plan": plan.ID, "waves": waves}}
			// Plan first, then the channel, in one commit: no agent sees the
			// channel move without the plan that holds it back.
			err = mutateAudited(cmd, &f, e, func(r *catalog.Repo) error {
				if err := r.SetRolloutPlan(cmd.Context(), plan); err != nil {
					return err
				}
				return r.Promote(name, version, channel)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rollout %s of %s@%s on %s: %d waves (%s), soak %s, max failures %g%%; wave 1 open\n",
				plan.ID, name, version, channel, len(ws), waves, soak, mf*100)
			return nil
		},
	}
	f.register(c.Flags(), true)
	c.Flags().StringVar(&channel, "channel", "", "channel to move to VERSION")
	c.Flags().StringVar(&waves, "waves", "10%,50%,100%", "waves, e.g. 5%,25%,100% or label:canary,site:lab+hq,10%,100%")
	c.Flags().DurationVar(&soak, "soak", 30*time.Minute, "how long each wave runs before the next opens")
	c.Flags().StringVar(&maxFailures, "max-failures", "2%", "halt when more than this share of the agents that tried failed")
	return c
}

func newRolloutStateCmd(verb, short string) *cobra.Command {
	var (
		f      catalogFlags
		reason string
		retry  bool
	)
	c := &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			store, err := f.openStore(ctx)
			if err != nil {
				return err
			}
			keys, err := f.loadKeys("targets", "snapshot", "timestamp")
			if err != nil {
				return err
			}
			p, err := catalog.ChangeRolloutPlan(ctx, store, keys, catalog.UpdateOptions{}, args[0], func(p *catalog.RolloutPlan) error {
				return applyRolloutVerb(p, verb, reason, retry, time.Now().UTC())
			})
			if err != nil {
				return err
			}
			if err := f.audit(audit.Event{Action: "rollout." + verb, Release: p.Name, Version: p.Version,
				Details: map[string]string{"plan": p.ID, "reason": reason}}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rollout %s of %s@%s: %s (waves open: %d of %d)\n", p.ID, p.Name, p.Version, p.State, p.Opened, len(p.Waves))
			return nil
		},
	}
	f.register(c.Flags(), true)
	c.Flags().StringVar(&reason, "reason", "", "why (shown to agents and on status)")
	if verb == "resume" {
		c.Flags().BoolVar(&retry, "retry", false, "let agents whose health check failed this version try it again")
	}
	return c
}

// applyRolloutVerb is the state change of pause, resume and abort.
func applyRolloutVerb(p *catalog.RolloutPlan, verb, reason string, retry bool, now time.Time) error {
	switch verb {
	case "pause":
		if p.State != catalog.RolloutRunning {
			return fmt.Errorf("rollout is %s, not running", p.State)
		}
		p.State, p.Reason = catalog.RolloutPaused, reason
	case "resume":
		if p.State != catalog.RolloutPaused && p.State != catalog.RolloutHalted {
			if !retry || p.State == catalog.RolloutAborted {
				return fmt.Errorf("rollout is %s: only a paused or halted one resumes", p.State)
			}
		}
		if p.State == catalog.RolloutPaused || p.State == catalog.RolloutHalted {
			// The current wave soaks again from now: failures that halted
			// it are judged afresh once the fix is out.
			p.State, p.Since = catalog.RolloutRunning, now
		}
		p.Reason = reason
		if retry {
			p.Retry++
		}
	case "abort":
		if p.State == catalog.RolloutAborted {
			return errors.New("rollout already aborted")
		}
		p.State, p.Reason = catalog.RolloutAborted, reason
	default:
		return fmt.Errorf("unknown verb %q", verb)
	}
	return nil
}

func newRolloutStatusCmd() *cobra.Command {
	var (
		f      catalogFlags
		origin string
		token  string
	)
	c := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a rollout's signed plan: waves, which are open, why halted",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			store, err := f.openStore(ctx)
			if err != nil {
				return err
			}
			root, err := f.pinnedRoot()
			if err != nil {
				return err
			}
			dir, err := os.MkdirTemp("", "swarmship-rollout-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			cl, err := catalog.NewClient(store, root, dir)
			if err != nil {
				return err
			}
			if err := cl.Refresh(ctx); err != nil {
				return err
			}
			p, err := cl.RolloutPlan(ctx, args[0])
			if err != nil {
				return err
			}
			if p == nil {
				return fmt.Errorf("no rollout plan for %s", args[0])
			}
			var rows []wavegate.WaveRow
			if origin != "" {
				if token == "" {
					token = os.Getenv("SWARMSHIP_OPERATOR_TOKEN")
				}
				if rows, err = wavegate.FleetByWave(ctx, &http.Client{Timeout: 30 * time.Second}, origin, token, p); err != nil {
					return err
				}
			}
			if jsonOutput() {
				return printJSON(cmd.OutOrStdout(), struct {
					Plan  *catalog.RolloutPlan `json:"plan"`
					Waves []wavegate.WaveRow   `json:"waves,omitempty"`
				}{p, rows})
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "rollout %s: %s@%s on %s, %s", p.ID, p.Name, p.Version, p.Channel, p.State)
			if p.Reason != "" {
				fmt.Fprintf(w, " (%s)", p.Reason)
			}
			fmt.Fprintf(w, "\nsoak %s, max failures %g%%, started %s, changed %s\n", time.Duration(p.Soak), p.MaxFailures*100,
				p.Started.Format(time.RFC3339), p.Changed.Format(time.RFC3339))
			for i, wv := range p.Waves {
				st := "waiting"
				if i < p.Opened {
					st = "open"
				}
				if i == p.Opened-1 && p.State == catalog.RolloutRunning {
					st = "soaking since " + p.Since.Format(time.RFC3339)
				}
				fmt.Fprintf(w, "  wave %d  %-20s %s\n", i+1, wv, st)
				if i < len(rows) {
					r := rows[i]
					names := r.Agents
					if len(names) > 10 {
						names = append(names[:10:10], fmt.Sprintf("and %d more", len(r.Agents)-10))
					}
					fmt.Fprintf(w, "          %d agents, %d active, %d failed: %s\n", len(r.Agents), r.Active, r.Failed, strings.Join(names, " "))
				}
			}
			return nil
		},
	}
	f.register(c.Flags(), false)
	c.Flags().StringVar(&origin, "origin", "", "also show which reporting agents are in which wave (origin URL)")
	c.Flags().StringVar(&token, "token", "", "operator token for the origin (env SWARMSHIP_OPERATOR_TOKEN)")
	return c
}

func newRolloutWatchCmd() *cobra.Command {
	var (
		f        catalogFlags
		origin   string
		token    string
		interval time.Duration
	)
	c := &cobra.Command{
		Use:   "watch NAME --origin URL",
		Short: "Run the wave gate: open waves after the soak, halt on failures (signs the catalog)",
		Long: `watch reads the agents' reports from the origin's rollout view (an operator token
in --token or SWARMSHIP_OPERATOR_TOKEN when the origin has tokens) and signs the
plan's changes. It stops when the rollout is halted or done; run it again after
"rollout resume".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if origin == "" {
				return errors.New("--origin is required")
			}
			store, err := f.openStore(ctx)
			if err != nil {
				return err
			}
			keys, err := f.loadKeys("targets", "snapshot", "timestamp")
			if err != nil {
				return err
			}
			if token == "" {
				token = os.Getenv("SWARMSHIP_OPERATOR_TOKEN")
			}
			g := &wavegate.Gate{Store: store, Keys: keys, Log: slog.Default(),
				Counts: wavegate.OriginCounts(&http.Client{Timeout: 30 * time.Second}, origin, token)}
			err = g.Run(ctx, args[0], interval)
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	f.register(c.Flags(), true)
	c.Flags().StringVar(&origin, "origin", "", "origin URL whose /api/v1/rollout holds the agents' reports")
	c.Flags().StringVar(&token, "token", "", "operator token for the origin (env SWARMSHIP_OPERATOR_TOKEN)")
	c.Flags().DurationVar(&interval, "interval", 15*time.Second, "how often the gate looks")
	return c
}
