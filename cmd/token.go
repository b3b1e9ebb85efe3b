package cmd

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmship/swarmship/internal/audit"
	"github.com/swarmship/swarmship/internal/token"
	"github.com/swarmship/swarmship/seeder"
)

func init() { extraCommands = append(extraCommands, newTokenCmd) }

func newTokenCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "token",
		Short: "Create the token signing key, issue tokens for agents and operators, revoke them",
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
		Use:   "issue --keys DIR [--role agent|operator] [--tenant T] [--site S] [--region R] [--agent ID] --ttl DUR",
		Short: "Sign a token: for an agent (agent.yaml token or token_file) or an operator (dashboard, APIs, /metrics)",
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
			claims.ID = token.NewID()
			tok, err := token.Issue(key, claims)
			if err != nil {
				return err
			}
			if err := auditTo(filepath.Join(keys, "audit.jsonl"), audit.Event{Action: "token.issue", Tenant: claims.Tenant, Site: claims.Site,
				Details: map[string]string{"id": claims.ID, "role": claims.Role, "region": claims.Region, "agent": claims.Agent, "expires": claims.Expires.UTC().Format(time.RFC3339)}}); err != nil {
				return err
			}
			if jsonOutput() {
				return printJSON(cmd.OutOrStdout(), map[string]any{"token": tok, "claims": claims, "id": claims.ID})
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			// The id goes to stderr so that `$(swarmship token issue ...)` is the token alone.
			fmt.Fprintf(cmd.ErrOrStderr(), "token id %s (revoke with `swarmship token revoke --list FILE %s`)\n", claims.ID, claims.ID)
			return nil
		},
	}
	issue.Flags().StringVar(&keys, "keys", "", "keys directory holding token.key")
	issue.Flags().StringVar(&claims.Role, "role", token.RoleAgent, "agent (announce, catalog, reports) or operator (dashboard, rollout and agent APIs, /metrics; no --tenant: the whole fleet)")
	issue.Flags().StringVar(&claims.Agent, "agent", "", "bind the token to one agent id (its reports must carry it)")
	issue.Flags().StringVar(&claims.Tenant, "tenant", "", "tenant")
	issue.Flags().StringVar(&claims.Site, "site", "", "site (empty: any site of the tenant)")
	issue.Flags().StringVar(&claims.Region, "region", "", "region (empty: any region)")
	issue.Flags().DurationVar(&ttl, "ttl", 30*24*time.Hour, "lifetime")
	var list, note string
	revoke := &cobra.Command{
		Use:   "revoke --list FILE ID|TOKEN...",
		Short: "Add tokens (their id, or the token itself) to the revocation list the origin reads (revocation_list)",
		Long: "Appends each token's id to FILE. The origin re-reads the file within seconds of a change\n" +
			"(and on SIGHUP) and then refuses the token on every endpoint. Tokens without an id are\n" +
			"listed by fingerprint; pass the token itself and the fingerprint is computed here.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if list == "" {
				return fmt.Errorf("--list is required")
			}
			for _, a := range args {
				id := a
				if strings.HasPrefix(a, "ss1.") {
					id = tokenID(a)
				}
				if err := token.Revoke(list, id, note); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "revoked %s in %s\n", id, list)
				if err := auditTo(filepath.Join(filepath.Dir(list), "audit.jsonl"), audit.Event{Action: "token.revoke", Details: map[string]string{"id": id, "note": note}}); err != nil {
					return err
				}
			}
			return nil
		},
	}
	revoke.Flags().StringVar(&list, "list", "", "revocation list file (the origin's revocation_list)")
	revoke.Flags().StringVar(&note, "note", "", "comment kept next to the entry")
	c.AddCommand(keygen, issue, revoke)
	return c
}

// tokenID is a token's id if its claims carry one, else its fingerprint.
// The claims are read without checking the signature: revoking a token
// needs no key, and a forged one is refused anyway.
func tokenID(tok string) string {
	if parts := strings.Split(tok, "."); len(parts) == 3 {
		if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			var c token.Claims
			if json.Unmarshal(b, &c) == nil && c.ID != "" {
				return c.ID
			}
		}
	}
	return token.Fingerprint(tok)
}

// reloadRevocationsOnHUP re-reads the origin's revocation list, and its
// HTTPS and peer TLS certificates, on SIGHUP until ctx ends. The handler
// is in place when it returns.
func reloadRevocationsOnHUP(ctx context.Context, o *seeder.Origin) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				err := o.ReloadRevocations()
				if err != nil {
					slog.Warn("revocation list not reloaded; the previous one stays in force", "err", err)
				}
				if cerr := o.ReloadCertificates(); cerr != nil {
					slog.Warn("certificates not reloaded; the previous ones stay in force", "err", cerr)
					err = cerr
				}
				if err == nil {
					slog.Info("SIGHUP: revocation list and certificates reread")
				}
			}
		}
	}()
}
