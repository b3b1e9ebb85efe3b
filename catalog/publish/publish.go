// Package publish turns files into a signed release in a catalog: it collects
// and checks the files, hashes them (internal/piecehash), uploads the payload,
// torrent and manifest and signs the catalog (Publish); it also verifies a
// catalog against its stores (VerifyCatalog) and exports bundles for
// air-gapped sites (ExportBundle).
package publish

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/piecehash"
	"github.com/swarmship/swarmship/internal/release"
)

// PublishOptions says what to publish and how.
type PublishOptions struct {
	Name, Version string
	Paths         []string // files and directories that make up the release
	Channels      []string // channels to point at the new release
	PieceLength   int64    // 0 chooses one for throughput
	Expires       time.Duration
	Labels        map[string]string
	Regions       []string // allowed regions; empty means anywhere
	Tenant        string
	// WebSeedURL is the base HTTP URL where the catalog's keys can be read
	// with Range requests (e.g. the origin serving a directory catalog). If
	// empty, a store that has public object URLs (S3) supplies it.
	WebSeedURL string
	Announce   []string // tracker URLs written into the torrent
	Workers    int      // hashing goroutines; 0 means one per CPU
	Expiry     catalog.Expiry
	// Progress, if set, is called with the stage ("hash", "upload") and
	// bytes done out of total, possibly from several goroutines.
	Progress func(stage string, done, total int64)
	Now      func() time.Time
}

// PublishResult is what publish reports, also as JSON for scripts.
type PublishResult struct {
	Name             string   `json:"name"`
	Version          string   `json:"version"`
	InfoHash         string   `json:"infohash"`
	TotalSize        int64    `json:"total_size"`
	Files            int      `json:"files"`
	PieceLength      int64    `json:"piece_length"`
	Pieces           int      `json:"pieces"`
	TorrentKey       string   `json:"torrent"`
	ManifestKey      string   `json:"manifest"`
	WebSeed          string   `json:"web_seed,omitempty"`
	Channels         []string `json:"channels,omitempty"`
	AlreadyPublished bool     `json:"already_published"`
}

// Publish hashes the release, uploads payload, torrent and manifest, and
// then signs the catalog. Nothing becomes visible to agents until the final
// timestamp write, and running Publish again after a failure completes it.
// A release that is already signed with other bytes is refused.
func Publish(ctx context.Context, store catalog.Store, keys catalog.Keys, opts PublishOptions) (*PublishResult, error) {
	if err := release.ValidateName("name", opts.Name); err != nil {
		return nil, err
	}
	if err := release.ValidateName("version", opts.Version); err != nil {
		return nil, err
	}
	for _, c := range opts.Channels {
		if err := release.ValidateName("channel", c); err != nil {
			return nil, err
		}
	}
	for _, r := range opts.Regions {
		if err := release.ValidateName("region", r); err != nil {
			return nil, err
		}
	}
	for k, v := range opts.Labels {
		if err := validateLabel(k, v); err != nil {
			return nil, err
		}
	}
	if opts.PieceLength != 0 {
		if _, err := piecehash.ParsePieceLength(fmt.Sprint(opts.PieceLength)); err != nil {
			return nil, err
		}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Expiry == (catalog.Expiry{}) {
		opts.Expiry = catalog.DefaultExpiry
	}
	// Check for the signing keys now: without them the final Commit would
	// fail after the payload had been uploaded.
	for _, role := range []string{"targets", "snapshot", "timestamp"} {
		if keys[role] == nil {
			return nil, fmt.Errorf("no %s key loaded: publishing needs the targets, snapshot and timestamp keys", role)
		}
	}
	files, err := CollectFiles(opts.Paths)
	if err != nil {
		return nil, err
	}
	// Open the repo before hashing: wrong keys or an unreachable catalog
	// should fail in a second, not after hashing gigabytes.
	repo, err := catalog.OpenRepo(ctx, store, keys, opts.Expiry)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	pieceLength := opts.PieceLength
	if pieceLength == 0 {
		pieceLength = piecehash.ChoosePieceLength(total)
	}
	var hashProgress func(int64)
	if opts.Progress != nil {
		hashProgress = func(done int64) { opts.Progress("hash", done, total) }
	}
	hr, err := piecehash.Hash(ctx, files, piecehash.Options{PieceLength: pieceLength, Workers: opts.Workers, Progress: hashProgress})
	if err != nil {
		return nil, err
	}
	info := piecehash.BuildInfo(opts.Version, files, hr)
	infoBytes, err := bencode.Marshal(&info)
	if err != nil {
		return nil, fmt.Errorf("encode torrent info: %w", err)
	}
	mi := metainfo.MetaInfo{InfoBytes: infoBytes, CreatedBy: "swarmship", CreationDate: opts.Now().Unix()}
	webSeed := webSeedURL(store, opts.WebSeedURL, opts.Name)
	if webSeed != "" {
		mi.UrlList = []string{webSeed}
	}
	if len(opts.Announce) > 0 {
		mi.Announce = opts.Announce[0]
		mi.AnnounceList = [][]string{opts.Announce}
	}
	infoHash := mi.HashInfoBytes()
	torrentBytes, err := bencode.Marshal(&mi)
	if err != nil {
		return nil, fmt.Errorf("encode torrent: %w", err)
	}

	created := opts.Now().UTC().Truncate(time.Second)
	m := &catalog.Manifest{
		Format:      1,
		Name:        opts.Name,
		Version:     opts.Version,
		TotalSize:   total,
		InfoHash:    infoHash.HexString(),
		PieceLength: pieceLength,
		Created:     created,
		Labels:      opts.Labels,
		Tenant:      opts.Tenant,
		Regions:     opts.Regions,
	}
	if opts.Expires > 0 {
		m.Expires = created.Add(opts.Expires)
	}
	for i, f := range files {
		m.Files = append(m.Files, catalog.ManifestFile{
			Path: path.Join(f.Path...), Size: f.Size, SHA256: hex.EncodeToString(hr.SHA256[i][:]),
		})
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("internal error: built an invalid manifest: %w", err)
	}
	res := &PublishResult{
		Name: opts.Name, Version: opts.Version, InfoHash: m.InfoHash, TotalSize: total,
		Files: len(files), PieceLength: pieceLength, Pieces: len(hr.Pieces) / 20,
		TorrentKey: catalog.TorrentKey(opts.Name, opts.Version), ManifestKey: catalog.ManifestKey(opts.Name, opts.Version),
		WebSeed: webSeed, Channels: opts.Channels,
	}

	// Already signed? Then only the same bytes may be "published" again.
	if _, signed := repo.ManifestTarget(opts.Name, opts.Version); signed {
		old, err := signedManifest(ctx, store, opts.Name, opts.Version)
		if err != nil {
			return nil, err
		}
		if !old.SameContent(m) {
			return nil, fmt.Errorf("%s@%s: %w (releases are immutable: publish a new version)", opts.Name, opts.Version, catalog.ErrReleaseExists)
		}
		res.AlreadyPublished = true
		// Finish a publish whose payload was damaged or partly lost.
		if err := uploadPayload(ctx, store, files, m, true, opts.Progress); err != nil {
			return nil, err
		}
		for _, c := range opts.Channels {
			if err := repo.Promote(opts.Name, opts.Version, c); err != nil {
				return nil, err
			}
		}
		if repo.Dirty() {
			if err := repo.Commit(ctx, opts.Now()); err != nil {
				return nil, err
			}
		}
		return res, nil
	}

	if err := uploadPayload(ctx, store, files, m, false, opts.Progress); err != nil {
		return nil, err
	}
	// Targets go under their hash-prefixed names too (consistent snapshots).
	if err := catalog.PutTarget(ctx, store, res.TorrentKey, torrentBytes); err != nil {
		return nil, fmt.Errorf("upload torrent: %w", err)
	}
	manifestJSON, err := catalog.MarshalManifest(m)
	if err != nil {
		return nil, err
	}
	if err := catalog.PutTarget(ctx, store, res.ManifestKey, manifestJSON); err != nil {
		return nil, fmt.Errorf("upload manifest: %w", err)
	}
	if err := repo.AddRelease(manifestJSON, torrentBytes, opts.Channels); err != nil {
		return nil, err
	}
	if err := repo.Commit(ctx, opts.Now()); err != nil {
		return nil, fmt.Errorf("sign catalog: %w", err)
	}
	return res, nil
}

// signedManifest reads the manifest already in the store; the caller has
// established that the catalog signs it.
func signedManifest(ctx context.Context, store catalog.Store, name, version string) (*catalog.Manifest, error) {
	b, err := catalog.ReadAll(ctx, store, catalog.ManifestKey(name, version), catalog.MaxManifestSize)
	if err != nil {
		return nil, err
	}
	return catalog.ParseManifest(b)
}

// uploadPayload copies every file to data/<name>/<version>/. With
// onlyMissing, objects already present with the right size are kept.
func uploadPayload(ctx context.Context, store catalog.Store, files []piecehash.FileEntry, m *catalog.Manifest, onlyMissing bool, progress func(string, int64, int64)) error {
	prefix := catalog.DataPrefix(m.Name, m.Version)
	var done int64
	for i, f := range files {
		key := prefix + m.Files[i].Path
		if onlyMissing {
			if st, err := store.Stat(ctx, key); err == nil && st.Size == f.Size {
				done += f.Size
				continue
			}
		}
		fh, err := os.Open(f.Source)
		if err != nil {
			return fmt.Errorf("open %s: %w", f.Source, err)
		}
		var r = &countingReader{r: fh}
		if progress != nil {
			base := done
			r.onRead = func(n int64) { progress("upload", base+n, m.TotalSize) }
		}
		err = store.Put(ctx, key, r, f.Size)
		fh.Close()
		if err != nil {
			return fmt.Errorf("upload %s: %w", f.Source, err)
		}
		done += f.Size
	}
	return nil
}

type countingReader struct {
	r      interface{ Read([]byte) (int, error) }
	n      int64
	onRead func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.onRead != nil && n > 0 {
		c.onRead(c.n)
	}
	return n, err
}

// webSeedURL returns the BEP 19 url-list entry for release name. Torrents
// are named after their version, so clients fetch <url><version>/<path>,
// which is data/<name>/<version>/<path> in the catalog.
func webSeedURL(store catalog.Store, base, name string) string {
	if base != "" {
		return strings.TrimSuffix(base, "/") + "/" + catalog.WebSeedBase(name)
	}
	if u, ok := store.(catalog.URLer); ok {
		// ObjectURL takes a key; ask for a file under the prefix and cut it.
		const probe = "x"
		if full := u.ObjectURL(catalog.WebSeedBase(name) + probe); full != "" {
			return strings.TrimSuffix(full, probe)
		}
	}
	return ""
}

func validateLabel(k, v string) error {
	if err := release.ValidateName("label key", k); err != nil {
		return err
	}
	if len(v) > 256 {
		return fmt.Errorf("label %s: value longer than 256 bytes", k)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("label %s: value contains a control character", k)
		}
	}
	return nil
}

// ParseLabels parses k=v pairs.
func ParseLabels(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fmt.Errorf("label %q: want key=value", p)
		}
		if err := validateLabel(k, v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}
