package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/RoaringBitmap/roaring"
	"github.com/anacrolix/torrent"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/sitecode"
)

// A/B watermarked media (catalog.Watermark): the torrent holds both
// variants of every segment; this agent fetches, per segment, the one its
// site's codeword picks (the other variant's files get priority none, so
// their pieces are never requested), verifies what it fetched against the
// signed SHA-256s, and hard-links each chosen variant to the segment's
// normal path before activation. The offloader divides the origin's
// pieces only among members whose site wants them (shardplan.go), so each
// variant's swarm costs the origin about one copy.

// siteVariants is what a watermarked release means for this agent.
type siteVariants struct {
	m     *catalog.Manifest
	table *sitecode.Table
	codes map[string]sitecode.Code
	site  string
	// skip[i] is true for manifest files this site never fetches.
	skip []bool
	// want are the pieces this site needs; size is their bytes.
	want *roaring.Bitmap
	size int64

	mu     sync.Mutex
	bySite map[string]*roaring.Bitmap // pieces each site needs, by site name
}

// codesPath is where the signed code table of a watermarked release is
// kept next to its manifest, so a restart without the catalog resumes.
func (c releaseCache) codesPath(name, version string) string {
	return filepath.Join(c.dir, "state", "releases", name, version+".codes.json")
}

// loadVariants reads the release's signed code table (from the catalog,
// else the copy kept from an earlier run) and picks this site's variants.
func (a *Agent) loadVariants(ctx context.Context, m *catalog.Manifest) (*siteVariants, error) {
	if m.Watermark == nil {
		return nil, nil
	}
	if a.cfg.Site == "" {
		return nil, errors.New("watermarked release: this agent has no site, so no codeword picks its variants (set site)")
	}
	keep := a.cache.codesPath(m.Name, m.Version)
	var table *sitecode.Table
	var b []byte
	var err error
	if a.catalog != nil {
		table, b, err = a.catalog.CodeTable(ctx, m.Watermark.Codes)
	}
	if a.catalog == nil || err != nil {
		kept, kerr := os.ReadFile(keep)
		if kerr != nil {
			if err == nil {
				err = kerr
			}
			return nil, fmt.Errorf("watermarked release: %w", err)
		}
		if table, err = sitecode.Parse(kept); err != nil {
			return nil, fmt.Errorf("watermarked release: kept %s: %w", keep, err)
		}
		b = kept
	} else if err := writeFileAtomic(keep, b); err != nil {
		return nil, err
	}
	return newSiteVariants(m, table, a.cfg.Site)
}

// unfetchedVariants marks the files of a held watermarked release that
// this site did not fetch (nil for other releases); without the kept
// code table, every variant file counts as not held.
func (a *Agent) unfetchedVariants(m *catalog.Manifest) []bool {
	if m.Watermark == nil {
		return nil
	}
	if b, err := os.ReadFile(a.cache.codesPath(m.Name, m.Version)); err == nil {
		if t, err := sitecode.Parse(b); err == nil {
			if v, err := newSiteVariants(m, t, a.cfg.Site); err == nil {
				return v.skip
			}
		}
	}
	skip := make([]bool, len(m.Files))
	for i, f := range m.Files {
		skip[i] = strings.HasPrefix(f.Path, catalog.VariantPrefix)
	}
	return skip
}

func newSiteVariants(m *catalog.Manifest, table *sitecode.Table, site string) (*siteVariants, error) {
	codes, err := table.Codes()
	if err != nil {
		return nil, err
	}
	if _, ok := codes[site]; !ok {
		return nil, fmt.Errorf("watermarked release: site %s has no codeword in code table %s (catalog codes add %s --site %s)", site, m.Watermark.Codes, m.Watermark.Codes, site)
	}
	v := &siteVariants{m: m, table: table, codes: codes, site: site, bySite: map[string]*roaring.Bitmap{}}
	v.skip = v.skipFor(codes[site])
	v.want = v.pieces(v.skip)
	it := v.want.Iterator()
	for it.HasNext() {
		p := int64(it.Next())
		v.size += min(m.PieceLength, m.TotalSize-p*m.PieceLength)
	}
	return v, nil
}

// skipFor marks the files a site with codeword c does not fetch: at
// position i, the variant other than bit i mod length.
func (v *siteVariants) skipFor(c sitecode.Code) []bool {
	aIdx, bIdx, _ := v.m.VariantFiles()
	skip := make([]bool, len(v.m.Files))
	for i := range v.m.Watermark.Segments {
		if c.Bit(i%v.table.Length) == 1 {
			skip[aIdx[i]] = true
		} else {
			skip[bIdx[i]] = true
		}
	}
	return skip
}

// pieces are the pieces that hold bytes of files not skipped.
func (v *siteVariants) pieces(skip []bool) *roaring.Bitmap {
	out := roaring.New()
	pl := v.m.PieceLength
	var off int64
	for i, f := range v.m.Files {
		if !skip[i] && f.Size > 0 {
			out.AddRange(uint64(off/pl), uint64((off+f.Size-1)/pl)+1)
		}
		off += f.Size
	}
	return out
}

// siteWants reports whether agents of the site named by key (siteKey:
// site and region) need piece p. A site without a codeword fetches
// nothing of a watermarked release; an empty key is our own site.
func (v *siteVariants) siteWants(key string, p int) bool {
	site, _, _ := strings.Cut(key, "\x00")
	if site == "" || site == v.site {
		return v.want.Contains(uint32(p))
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	w, ok := v.bySite[site]
	if !ok {
		c, known := v.codes[site]
		if !known {
			w = roaring.New()
		} else {
			w = v.pieces(v.skipFor(c))
		}
		v.bySite[site] = w
	}
	return w.Contains(uint32(p))
}

// prioritize makes the torrent fetch only this site's files.
func (v *siteVariants) prioritize(t *torrent.Torrent) {
	for i, f := range t.Files() {
		if i < len(v.skip) && v.skip[i] {
			f.SetPriority(torrent.PiecePriorityNone)
		} else {
			f.SetPriority(torrent.PiecePriorityNormal)
		}
	}
}

// done reports whether every piece this site needs is complete.
func (v *siteVariants) done(t *torrent.Torrent) bool {
	have := roaring.New()
	var i uint64
	for _, run := range t.PieceStateRuns() {
		if run.Complete {
			have.AddRange(i, i+uint64(run.Length))
		}
		i += uint64(run.Length)
	}
	return roaring.AndNot(v.want, have).IsEmpty()
}

// peerDone reports whether a peer of the site key holds every piece its
// site needs (it fetches nothing more).
func (v *siteVariants) peerDone(key string, pieces *roaring.Bitmap) bool {
	site, _, _ := strings.Cut(key, "\x00")
	var want *roaring.Bitmap
	if site == "" || site == v.site {
		want = v.want
	} else {
		v.siteWants(key, 0) // fills bySite
		v.mu.Lock()
		want = v.bySite[site]
		v.mu.Unlock()
	}
	return roaring.AndNot(want, pieces).IsEmpty()
}

// assemble places each chosen variant at its segment's normal path in the
// release directory dir: a hard link to the verified variant file (a copy
// where links fail), written under a temporary name and renamed, so a
// kill leaves either nothing or the whole file. Idempotent.
func (v *siteVariants) assemble(dir string) error {
	aIdx, bIdx, _ := v.m.VariantFiles()
	for i, s := range v.m.Watermark.Segments {
		src := aIdx[i]
		if v.skip[src] {
			src = bIdx[i]
		}
		from := filepath.Join(dir, filepath.FromSlash(v.m.Files[src].Path))
		to := filepath.Join(dir, filepath.FromSlash(s.Path))
		fi, err := os.Stat(from)
		if err != nil {
			return fmt.Errorf("assemble %s: %w", s.Path, err)
		}
		if ti, err := os.Stat(to); err == nil && os.SameFile(fi, ti) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return fmt.Errorf("assemble %s: %w", s.Path, err)
		}
		tmp := to + ".assemble"
		os.Remove(tmp)
		if err := os.Link(from, tmp); err != nil {
			if err := copyFile(from, tmp); err != nil {
				return fmt.Errorf("assemble %s: %w", s.Path, err)
			}
		}
		if err := os.Rename(tmp, to); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("assemble %s: %w", s.Path, err)
		}
	}
	syncDir(dir)
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
