package cmd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/swarmship/swarmship/catalog"
)

// catalogFlags are the flags every command that touches a catalog shares.
type catalogFlags struct {
	url      string
	keys     string
	root     string
	stateDir string
	s3       catalog.S3Config
	s3URL    string
}

func (f *catalogFlags) register(fs *pflag.FlagSet, withKeys bool) {
	fs.StringVar(&f.url, "catalog", os.Getenv("SWARMSHIP_CATALOG"), "catalog: a directory, file:///dir, s3://bucket/prefix or http(s)://mirror (env SWARMSHIP_CATALOG)")
	if withKeys {
		fs.StringVar(&f.keys, "keys", os.Getenv("SWARMSHIP_KEYS"), "directory of the catalog's private signing keys (env SWARMSHIP_KEYS)")
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
	cfg := f.s3
	cfg.Endpoint = f.s3URL
	return catalog.OpenStore(ctx, f.url, cfg)
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
