package cmd

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmship/swarmship/internal/audit"
	"github.com/swarmship/swarmship/internal/token"
)

func init() { extraCommands = append(extraCommands, newTokenCmd) }

func newTokenCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "token",
		Short: "Create the token signing key and issue access tokens for agents",
	}
	var keys string
	keygen := &cobra.Command{
		Use:   "keygen --keys DIR",
		Short: "Create token.key (0600) and token.pub; give token.pub to the origin (token_public_key)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if keys == "" {
				return fmt.Errorf("--keys is required")
			}
			if err := token.GenerateKey(keys); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s/%s (secret) and %s/%s (for the origin)\n", keys, token.PrivateKeyFile, keys, token.PublicKeyFile)
			return auditTo(filepath.Join(keys, "audit.jsonl"), audit.Event{Action: "token.keygen"})
		},
	}
	keygen.Flags().StringVar(&keys, "keys", "", "keys directory")
	var (
		claims token.Claims
		ttl    time.Duration
	)
	issue := &cobra.Command{
		Use:   "issue --keys DIR --tenant T [--site S] [--region R] --ttl DUR",
		Short: "Sign a token for an agent (put it in agent.yaml as token or token_file)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if keys == "" {
				return fmt.Errorf("--keys is required")
			}
			if ttl <= 0 {
				return fmt.Errorf("--ttl must be positive")
			}
			key, err := token.LoadPrivateKey(keys)
			if err != nil {
				return err
			}
			now := time.Now()
			claims.IssuedAt, claims.Expires = now, now.Add(ttl)
			tok, err := token.Issue(key, claims)
			if err != nil {
				return err
			}
			if err := auditTo(filepath.Join(keys, "audit.jsonl"), audit.Event{Action: "token.issue", Tenant: claims.Tenant, Site: claims.Site,
				Details: map[string]string{"region": claims.Region, "expires": claims.Expires.UTC().Format(time.RFC3339)}}); err != nil {
				return err
			}
			if jsonOutput() {
				return printJSON(cmd.OutOrStdout(), map[string]any{"token": tok, "claims": claims})
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	issue.Flags().StringVar(&keys, "keys", "", "keys directory holding token.key")
	issue.Flags().StringVar(&claims.Tenant, "tenant", "", "tenant")
	issue.Flags().StringVar(&claims.Site, "site", "", "site (empty: any site of the tenant)")
	issue.Flags().StringVar(&claims.Region, "region", "", "region (empty: any region)")
	issue.Flags().DurationVar(&ttl, "ttl", 30*24*time.Hour, "lifetime")
	c.AddCommand(keygen, issue)
	return c
}
