package seeder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/torrentfile"
)

// Problem is one thing wrong with a release in a catalog.
type Problem struct {
	Release string `json:"release"`
	Key     string `json:"key,omitempty"`
	Err     string `json:"error"`
}

// VerifyCatalog checks every release the signed catalog lists: manifest and
// torrent against the signed metadata, the torrent against the manifest, and
// every payload object's size and SHA-256. The client must be refreshed.
func VerifyCatalog(ctx context.Context, c *catalog.Client) ([]Problem, int, error) {
	rels, err := c.Releases()
	if err != nil {
		return nil, 0, err
	}
	var problems []Problem
	for _, r := range rels {
		problems = append(problems, VerifyRelease(ctx, c, r.Name, r.Version)...)
		if ctx.Err() != nil {
			return problems, len(rels), ctx.Err()
		}
	}
	return problems, len(rels), nil
}

// VerifyRelease checks one release; see VerifyCatalog.
func VerifyRelease(ctx context.Context, c *catalog.Client, name, version string) []Problem {
	ref := name + "@" + version
	m, err := c.Manifest(ctx, name, version)
	if err != nil {
		return []Problem{{Release: ref, Key: catalog.ManifestKey(name, version), Err: err.Error()}}
	}
	var problems []Problem
	tb, err := c.Torrent(ctx, name, version)
	if err == nil {
		_, err = torrentfile.Parse(tb, m)
	}
	if err != nil {
		problems = append(problems, Problem{Release: ref, Key: catalog.TorrentKey(name, version), Err: err.Error()})
	}
	prefix := catalog.DataPrefix(name, version)
	for _, f := range m.Files {
		key := prefix + f.Path
		if err := verifyObject(ctx, c.Store(), key, f); err != nil {
			problems = append(problems, Problem{Release: ref, Key: key, Err: err.Error()})
		}
	}
	return problems
}

func verifyObject(ctx context.Context, s catalog.Store, key string, f catalog.ManifestFile) error {
	st, err := s.Stat(ctx, key)
	if err != nil {
		return err
	}
	if st.Size != f.Size {
		return fmt.Errorf("size %d, the manifest says %d", st.Size, f.Size)
	}
	rc, err := s.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(rc, f.Size+1))
	if err != nil {
		return err
	}
	if n != f.Size {
		return errors.New("object changed size while being read")
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return fmt.Errorf("sha256 %s, the manifest says %s", got, f.SHA256)
	}
	return nil
}
