package cmd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/audit"
	"github.com/swarmship/swarmship/policy"
)

func newCatalogPolicyCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "policy",
		Short: "Sign fleet policy documents (rates, windows, quota, P2P mode by site, region or label) into the catalog",
	}
	c.AddCommand(newPolicySetCmd(), newPolicyListCmd(), newPolicyRmCmd())
	return c
}

// readPolicyFile reads and validates a policy document: a bad one never
// reaches the catalog (agents would refuse it anyway).
func readPolicyFile(path string) (*policy.FleetDoc, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, policy.MaxFleetDocSize+1))
	if err != nil {
		return nil, nil, err
	}
	d, err := policy.ParseFleetDoc(path, b)
	if err != nil {
		return nil, nil, err
	}
	return d, b, nil
}

func newPolicySetCmd() *cobra.Command {
	var f catalogFlags
	c := &cobra.Command{
		Use:   "set FILE",
		Short: "Validate a policy document and sign it into the catalog under its name (replacing that name's document)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, b, err := readPolicyFile(args[0])
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
			if err := catalog.PublishPolicy(ctx, store, keys, catalog.UpdateOptions{}, d.Name, b); err != nil {
				return err
			}
			if err := f.audit(audit.Event{Action: "policy.set", Details: map[string]string{"policy": d.Name}}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "policy %s signed (%d bytes)\n", d.Name, len(b))
			return nil
		},
	}
	f.register(c.Flags(), true)
	return c
}

func newPolicyRmCmd() *cobra.Command {
	var f catalogFlags
	c := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a policy document; agents drop it at their next refresh",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e := audit.Event{Action: "policy.rm", Details: map[string]string{"policy": args[0]}}
			if err := mutateAudited(cmd, &f, e, func(r *catalog.Repo) error { return r.RemovePolicy(args[0]) }); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "policy %s removed\n", args[0])
			return nil
		},
	}
	f.register(c.Flags(), true)
	return c
}

func newPolicyListCmd() *cobra.Command {
	var f catalogFlags
	c := &cobra.Command{
		Use:   "list",
		Short: "List the policy documents: what each sets and whom it is assigned to",
		Args:  cobra.NoArgs,
		RunE: f.runWithClient(func(cmd *cobra.Command, args []string, cl *catalog.Client) error {
			names, err := cl.Policies()
			if err != nil {
				return err
			}
			type row struct {
				Name   string             `json:"name"`
				Assign policy.FleetAssign `json:"assign"`
				Sets   []string           `json:"sets"`
				Allow  []string           `json:"allow_local,omitempty"`
				Error  string             `json:"error,omitempty"`
			}
			rows := []row{}
			for _, n := range names {
				b, err := cl.Policy(cmd.Context(), n, policy.MaxFleetDocSize)
				if err != nil {
					return err
				}
				r := row{Name: n}
				if d, err := policy.ParseFleetDoc(catalog.PolicyKey(n), b); err != nil {
					r.Error = err.Error()
				} else {
					r.Assign, r.Sets, r.Allow = d.Assign, d.Keys(), d.AllowLocal
				}
				rows = append(rows, r)
			}
			if jsonOutput() {
				return printJSON(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSITES\tREGIONS\tLABELS\tSETS\tALLOW_LOCAL")
			var bad error
			for _, r := range rows {
				if r.Error != "" {
					fmt.Fprintf(tw, "%s\t(invalid: %s)\n", r.Name, r.Error)
					bad = errors.New("some policy documents are invalid; agents refuse them")
					continue
				}
				fmt.Fprintf(tw, "%s\t%v\t%v\t%v\t%v\t%v\n", r.Name, r.Assign.Sites, r.Assign.Regions, r.Assign.Labels, r.Sets, r.Allow)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			return bad
		}),
	}
	f.register(c.Flags(), true)
	return c
}

// printFleetPolicy shows the fleet policy in force: documents, where each
// value came from, refusals.
func printFleetPolicy(w io.Writer, fs *agent.FleetPolicyStatus) {
	if fs == nil {
		return
	}
	fmt.Fprintf(w, "\nFLEET POLICY %s\n", strings.Join(fs.Documents, ", "))
	keys := make([]string, 0, len(fs.Sources))
	for k := range fs.Sources {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %s from %s\n", k, fs.Sources[k])
	}
	if len(fs.Windows) > 0 {
		fmt.Fprintf(w, "  download windows: %s\n", strings.Join(fs.Windows, ", "))
	}
	for _, r := range fs.Refused {
		kept := "nothing of it applies"
		if r.KeptLast {
			kept = "its last good version stays in force"
		}
		fmt.Fprintf(w, "  REFUSED %s (%s): %s\n", r.Name, kept, r.Error)
	}
	if fs.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", fs.Error)
	}
	if fs.Restart != "" {
		fmt.Fprintf(w, "  %s\n", fs.Restart)
	}
}
