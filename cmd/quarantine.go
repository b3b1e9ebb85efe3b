package cmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmship/swarmship/seeder"
	"github.com/swarmship/swarmship/seeder/rollout"
)

func init() { extraCommands = append(extraCommands, newQuarantineCmd) }

// quarantineFlags are the origin and operator token every verb needs.
type quarantineFlags struct {
	origin, token, tenant string
}

func (f *quarantineFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.origin, "origin", "", "origin URL (required)")
	c.Flags().StringVar(&f.token, "token", "", "operator token for the origin (env SWARMSHIP_OPERATOR_TOKEN)")
	c.Flags().StringVar(&f.tenant, "tenant", "", "tenant of the entry (fleet operators; a tenant's operator always acts on its own)")
}

// call sends one request to the origin's API and returns the body of a
// 2xx answer.
func (f *quarantineFlags) call(cmd *cobra.Command, method, path string, query url.Values, body any) ([]byte, error) {
	if f.origin == "" {
		return nil, errors.New("--origin is required")
	}
	tok := f.token
	if tok == "" {
		tok = os.Getenv("SWARMSHIP_OPERATOR_TOKEN")
	}
	u, err := url.Parse(strings.TrimSuffix(f.origin, "/") + path)
	if err != nil {
		return nil, fmt.Errorf("--origin: %w", err)
	}
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(cmd.Context(), method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("origin answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

func newQuarantineCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "quarantine",
		Short: "Quarantine peers: the tracker stops handing them out and agents drop them",
		Long: `Entries name a peer the way the origin can recognise it:
  peer:<40 hex digits>     a peer ID (as the dashboard's peers panel lists it)
  agent:<agent id>         a reporting agent, across its restarts
  tls:<64 hex digits>      an agent's peer certificate (SHA-256 of its DER)
  addr:<ip> | addr:<ip:port>  an address (fleet operators only; every peer
                           behind a NAT address shares it)
The origin refuses the peer's announces, leaves it out of every answer and
swarm view, and tells agents in the answer to their reports, so they close
its connections and refuse new ones. "quarantine peers" lists the peers the
agents' ledgers flag (freeloaders, misbehaving peers).`,
	}
	c.AddCommand(newQuarantineAddCmd(), newQuarantineRmCmd(), newQuarantineListCmd(), newQuarantinePeersCmd())
	return c
}

func newQuarantineAddCmd() *cobra.Command {
	var f quarantineFlags
	var reason string
	c := &cobra.Command{
		Use:   "add ENTRY --origin URL [--reason TEXT]",
		Short: "Quarantine a peer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := f.call(cmd, http.MethodPost, seeder.QuarantinePath, nil,
				map[string]string{"entry": args[0], "tenant": f.tenant, "reason": reason})
			if err != nil {
				return err
			}
			if jsonOutput() {
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "quarantined %s\n", args[0])
			return nil
		},
	}
	f.register(c)
	c.Flags().StringVar(&reason, "reason", "", "why (kept with the entry, shown in the list)")
	return c
}

func newQuarantineRmCmd() *cobra.Command {
	var f quarantineFlags
	c := &cobra.Command{
		Use:   "rm ENTRY --origin URL",
		Short: "Lift a quarantine",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := f.call(cmd, http.MethodDelete, seeder.QuarantinePath, url.Values{"entry": {args[0]}, "tenant": {f.tenant}}, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "lifted %s\n", args[0])
			return nil
		},
	}
	f.register(c)
	return c
}

func newQuarantineListCmd() *cobra.Command {
	var f quarantineFlags
	c := &cobra.Command{
		Use:   "list --origin URL",
		Short: "List the quarantined peers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := f.call(cmd, http.MethodGet, seeder.QuarantinePath, nil, nil)
			if err != nil {
				return err
			}
			var list []seeder.QuarantineEntry
			if err := json.Unmarshal(b, &list); err != nil {
				return fmt.Errorf("origin's quarantine list: %w", err)
			}
			if jsonOutput() {
				return printJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ENTRY\tTENANT\tAPPLIED TO\tADDED\tREASON")
			for _, e := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Entry, dash(e.Tenant), dash(e.Applied), e.Added.Format(time.RFC3339), e.Reason)
			}
			return tw.Flush()
		},
	}
	f.register(c)
	return c
}

func newQuarantinePeersCmd() *cobra.Command {
	var f quarantineFlags
	var all bool
	c := &cobra.Command{
		Use:   "peers --origin URL [--all]",
		Short: "List the peers the agents' ledgers flag (freeloaders, misbehaving)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := f.call(cmd, http.MethodGet, "/api/v1/peers", nil, nil)
			if err != nil {
				return err
			}
			var co rollout.Contribution
			if err := json.Unmarshal(b, &co); err != nil {
				return fmt.Errorf("origin's peer view: %w", err)
			}
			if jsonOutput() {
				return printJSON(cmd.OutOrStdout(), co)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PEER\tADDR\tAGENT\tRECEIVED\tSENT\tBAD\tSTALLED\tSTARVED\tFLAGS")
			for _, p := range co.Peers {
				if !all && !p.Freeloader && !p.Misbehaving {
					continue
				}
				fmt.Fprintf(tw, "peer:%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", p.PeerID, p.Addr, dash(p.Name), p.Received, p.Sent, p.BadPieces, p.Stalled, p.Starved, dash(p.Why))
			}
			return tw.Flush()
		},
	}
	f.register(c)
	c.Flags().BoolVar(&all, "all", false, "list every peer, not only flagged ones")
	return c
}
