package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/torrentfile"
	"github.com/swarmship/swarmship/internal/release"
)

// BundleResult lists what a bundle holds.
type BundleResult struct {
	Releases []string `json:"releases"`
	Bytes    int64    `json:"bytes"`
}

// ResolveSpec turns "name", "name@version" or "name:channel" into a
// release of the signed catalog (never a yanked one).
func ResolveSpec(c *catalog.Client, spec string) (catalog.Release, error) {
	if ref, ok := release.Parse(spec); ok {
		return c.Resolve(ref.Name, "", ref.Version)
	}
	if name, channel, ok := strings.Cut(spec, ":"); ok {
		return c.Resolve(name, channel, "")
	}
	return c.Resolve(spec, "", "")
}

// ExportBundle writes an offline bundle into dst: the catalog's signed
// metadata and the manifest, torrent and payload of each release in specs.
// It is a catalog directory in its own right, so an air-gapped agent reads
// it with the same TUF checks as any catalog, from its pinned root. Every
// payload byte is checked against the signed manifest on the way.
func ExportBundle(ctx context.Context, c *catalog.Client, dst catalog.Store, specs []string) (*BundleResult, error) {
	if len(specs) == 0 {
		return nil, fmt.Errorf("no releases given: name, name@version or name:channel")
	}
	var rels []catalog.Release
	for _, spec := range specs {
		r, err := ResolveSpec(c, spec)
		if err != nil {
			return nil, err
		}
		rels = append(rels, r)
	}
	src := c.Store()
	res := &BundleResult{}
	for _, r := range rels {
		m, err := c.Manifest(ctx, r.Name, r.Version)
		if err != nil {
			return nil, err
		}
		tb, err := c.Torrent(ctx, r.Name, r.Version)
		if err != nil {
			return nil, err
		}
		if _, err := torrentfile.Parse(tb, m); err != nil {
			return nil, err
		}
		for _, f := range m.Files {
			key := catalog.DataPrefix(m.Name, m.Version) + f.Path
			if err := copyVerified(ctx, src, dst, key, f); err != nil {
				return nil, err
			}
			res.Bytes += f.Size
		}
		mb, err := c.Target(ctx, catalog.ManifestKey(m.Name, m.Version), catalog.MaxManifestSize)
		if err != nil {
			return nil, err
		}
		// Both names, like the catalog: the bundle is a catalog in its own right.
		if err := catalog.PutTarget(ctx, dst, catalog.ManifestKey(m.Name, m.Version), mb); err != nil {
			return nil, err
		}
		if err := catalog.PutTarget(ctx, dst, catalog.TorrentKey(m.Name, m.Version), tb); err != nil {
			return nil, err
		}
		res.Releases = append(res.Releases, r.Ref.String())
	}
	// Metadata last: a bundle interrupted part way has no timestamp and
	// reads as "no catalog here", never as a catalog missing files.
	if err := catalog.CopyMetadata(ctx, src, dst); err != nil {
		return nil, fmt.Errorf("copy signed metadata: %w", err)
	}
	return res, nil
}

func copyVerified(ctx context.Context, src, dst catalog.Store, key string, f catalog.ManifestFile) error {
	rc, err := src.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := io.Copy(io.MultiWriter(h, pw), io.LimitReader(rc, f.Size))
		pw.CloseWithError(err)
	}()
	err = dst.Put(ctx, key, pr, f.Size)
	pr.CloseWithError(io.ErrClosedPipe)
	<-done
	if err != nil {
		return fmt.Errorf("bundle %s: %w", key, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		dst.Delete(ctx, key)
		return fmt.Errorf("bundle %s: sha256 %s does not match the signed manifest", key, got)
	}
	return nil
}
