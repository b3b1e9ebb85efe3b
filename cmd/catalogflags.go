package cmd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/audit"
)

// catalogFlags are the flags every command that touches a catalog shares.
type catalogFlags struct {
	url      string
	keys     string
	root     string
	stateDir string
	s3       catalog.S3Config
	s3URL    string
	auditLog string
}

func (f *catalogFlags) register(fs *pflag.FlagSet, withKeys bool) {
	fs.StringVar(&f.url, "catalog", os.Getenv("SWARMSHIP_CATALOG"), "catalog: a directory, file:///dir, s3://bucket/prefix or http(s)://mirror (env SWARMSHIP_CATALOG)")
	if withKeys {
		fs.StringVar(&f.keys, "keys", os.Getenv("SWARMSHIP_KEYS"), "directory of the catalog's private signing keys (env SWARMSHIP_KEYS)")
		fs.StringVar(&f.auditLog, "audit-log", os.Getenv("SWARMSHIP_AUDIT_LOG"), "append-only audit log of catalog changes (default: audit.jsonl in --keys)")
	}
	fs.StringVar(&f.root, "root", "", "pinned root.json to trust (default: root.json in --keys)")
	fs.StringVar(&f.stateDir, "state", "", "where verified catalog metadata is cached (default: the user cache directory)")
	fs.StringVar(&f.s3URL, "s3-endpoint", "", "S3 endpoint URL, e.g. https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:7070 (env AWS_ENDPOINT_URL)")
	fs.StringVar(&f.s3.Region, "s3-region", "", "S3 region (env AWS_REGION)")
	fs.StringVar(&f.s3.AccessKey, "s3-access-key", "", "S3 access key (env AWS_ACCESS_KEY_ID)")
	fs.StringVar(&f.s3.SecretKey, "s3-secret-key", "", "S3 secret key (env AWS_SECRET_ACCESS_KEY)")
}

func (f *catalogFlags) openStore(ctx context.Context) (catalog.Store, error) {
	if f.url == "" {
		return nil, errors.New("no catalog given: use --catalog DIR or s3://bucket/prefix (or set SWARMSHIP_CATALOG)")
	}
	return catalog.OpenStore(ctx, f.url, f.s3Config())
}

// s3Config is the S3 configuration the flags give, endpoint included.
func (f *catalogFlags) s3Config() catalog.S3Config {
	cfg := f.s3
	cfg.Endpoint = f.s3URL
	return cfg
}

func (f *catalogFlags) loadKeys(roles ...string) (catalog.Keys, error) {
	if f.keys == "" {
		return nil, errors.New("no keys directory given: use --keys DIR (or set SWARMSHIP_KEYS)")
	}
	return catalog.LoadKeys(f.keys, roles...)
}

// pinnedRoot reads the root.json that reads are anchored to.
func (f *catalogFlags) pinnedRoot() ([]byte, error) {
	p := f.root
	if p == "" && f.keys != "" {
		p = filepath.Join(f.keys, "root.json")
	}
	if p == "" {
		return nil, errors.New("no pinned root: use --root FILE (the root.json printed by `catalog init`)")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("pinned root: %w", err)
	}
	return b, nil
}

// client returns a TUF client of the catalog, refreshed.
func (f *catalogFlags) client(ctx context.Context) (*catalog.Client, error) {
	store, err := f.openStore(ctx)
	if err != nil {
		return nil, err
	}
	root, err := f.pinnedRoot()
	if err != nil {
		return nil, err
	}
	dir := f.stateDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		sum := sha256.Sum256([]byte(f.url + "\x00" + catalog.Fingerprint(root)))
		dir = filepath.Join(base, "swarmship", "catalogs", hex.EncodeToString(sum[:8]))
	}
	c, err := catalog.NewClient(store, root, dir)
	if err != nil {
		return nil, err
	}
	if err := c.Refresh(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// runWithClient makes a command's RunE that opens the catalog's refreshed
// TUF client before running run.
func (f *catalogFlags) runWithClient(run func(cmd *cobra.Command, args []string, cl *catalog.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		cl, err := f.client(cmd.Context())
		if err != nil {
			return err
		}
		return run(cmd, args, cl)
	}
}

// audit records a catalog change in the publisher's audit log (default
// audit.jsonl in the keys directory).
func (f *catalogFlags) audit(e audit.Event) error {
	path := f.auditLog
	if path == "" && f.keys != "" {
		path = filepath.Join(f.keys, "audit.jsonl")
	}
	return auditTo(path, e)
}

// auditTo appends e to the log at path ("" = none). A change that cannot be
// audited is reported as an error, though it has happened.
func auditTo(path string, e audit.Event) error {
	if path == "" {
		return nil
	}
	l, err := audit.Open(path, 0, 0)
	if err == nil {
		err = l.Append(e)
	}
	if err != nil {
		return fmt.Errorf("%s done, but the audit log failed: %w", e.Action, err)
	}
	return nil
}
