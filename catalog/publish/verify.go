package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/torrentfile"
	"github.com/swarmship/swarmship/internal/release"
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

// VerifyRelease checks one release; see VerifyCatalog. Manifest and
// torrent are checked under both names they are stored at (hash-prefixed
// for TUF clients and agents, plain for older agents and people).
func VerifyRelease(ctx context.Context, c *catalog.Client, name, version string) []Problem {
	ref := release.Format(name, version)
	mKey, tKey := catalog.ManifestKey(name, version), catalog.TorrentKey(name, version)
	mProblems := verifyTargetCopies(ctx, c, ref, mKey, catalog.MaxManifestSize)
	tProblems := verifyTargetCopies(ctx, c, ref, tKey, catalog.MaxTorrentSize)
	problems := append(mProblems, tProblems...)
	m, err := c.Manifest(ctx, name, version)
	if err != nil {
		if len(mProblems) == 0 {
			problems = append(problems, Problem{Release: ref, Key: mKey, Err: err.Error()})
		}
		return problems
	}
	// Copy problems are reported above; a torrent read fine must also be
	// the one the manifest describes.
	if tb, err := c.Torrent(ctx, name, version); err == nil {
		if _, err := torrentfile.Parse(tb, m); err != nil {
			problems = append(problems, Problem{Release: ref, Key: tKey, Err: err.Error()})
		}
	} else if len(tProblems) == 0 {
		problems = append(problems, Problem{Release: ref, Key: tKey, Err: err.Error()})
	}
	prefix := catalog.DataPrefix(name, version)
	for _, f := range m.Files {
		key := prefix + f.Path
		if err := verifyObject(ctx, c.Store(), key, f); err != nil {
			problems = append(problems, Problem{Release: ref, Key: key, Err: err.Error()})
		}
	}
	if wantsPadObjects(c.Store()) {
		for _, n := range m.PadSizes() {
			key := catalog.PadKey(name, version, n)
			if st, err := c.Store().Stat(ctx, key); err != nil || st.Size != n {
				problems = append(problems, Problem{Release: ref, Key: key, Err: fmt.Sprintf("pad object of %d zero bytes missing or the wrong size (re-run the publish)", n)})
			}
		}
	}
	return problems
}

// verifyTargetCopies checks each stored copy of the signed target key.
func verifyTargetCopies(ctx context.Context, c *catalog.Client, ref, key string, limit int64) []Problem {
	copies, err := c.TargetCopies(key)
	if err != nil {
		return []Problem{{Release: ref, Key: key, Err: err.Error()}}
	}
	var problems []Problem
	for _, k := range copies {
		if _, err := c.TargetCopy(ctx, key, k, limit); err != nil {
			msg := err.Error()
			if errors.Is(err, catalog.ErrNotFound) {
				// Catalogs published before targets had hash-prefixed copies.
				msg += " (`swarmship catalog resign` restores missing copies)"
			}
			problems = append(problems, Problem{Release: ref, Key: k, Err: msg})
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
