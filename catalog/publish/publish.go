// Package publish turns files into a signed release in a catalog: it collects
// and checks the files, hashes them (internal/piecehash), uploads the payload,
// torrent and manifest and signs the catalog (Publish); it also verifies a
// catalog against its stores (VerifyCatalog) and exports bundles for
// air-gapped sites (ExportBundle).
package publish

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/theupdateframework/go-tuf/v2/metadata"

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
	// NoReuse uploads every file even where an earlier signed version of
	// the same name holds the same bytes (see dedup.go).
	NoReuse bool
	// VerifyReused reads back each server-side copy and checks its SHA-256
	// (a download per reused file) instead of only its size.
	VerifyReused bool
	// Base is the version delta hints are computed against (hints.go):
	// "" means the version the first channel in Channels that points
	// anywhere points at, BaseNone means no hints. BaseDir, if set, is a
	// local directory holding the base's files, read instead of the catalog.
	Base, BaseDir string
	// Timing, if set, is the release's activation timing (urgent,
	// activate_at, windows, deliver_by), signed in the same commit that
	// points the channels at it, so no agent sees the channel without it.
	Timing *catalog.Timing
	// Media publishes an HLS or DASH release: playlists are parsed and
	// checked, and every segment starts on a piece boundary, with BEP 47
	// pad files in the torrent (media.go). Delta hints are off for it.
	Media bool
	// VariantB, with Codes, publishes A/B watermark variants (variants.go):
	// Paths is one directory holding variant A of every segment, VariantB a
	// directory with variant B of the same segments under the same names.
	VariantB string
	// Codes names the signed site code table that picks the variants.
	Codes string
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
	// CommitRetries counts how often the signed commit lost a race with
	// another writer and was applied again to the newer catalog.
	CommitRetries int `json:"commit_retries"`
	// UploadedBytes is the payload this run sent to the store; ReusedBytes
	// (in ReusedFiles files) is what it staged by server-side copy from
	// earlier versions instead.
	UploadedBytes int64 `json:"uploaded_bytes"`
	ReusedBytes   int64 `json:"reused_bytes"`
	ReusedFiles   int   `json:"reused_files"`
	// ComposedFiles were built in the store from ranges of the delta base
	// plus the bytes the hints do not cover (counted in UploadedBytes).
	ComposedFiles int `json:"composed_files"`
	// Delta says what the signed delta hints cover (nil with --base none).
	Delta *DeltaResult `json:"delta,omitempty"`
	// Media describes the layout of a media release (--media).
	Media *MediaResult `json:"media,omitempty"`
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
	var watermark *catalog.Watermark
	if opts.VariantB != "" || opts.Codes != "" {
		if files, watermark, err = variantFiles(opts, files); err != nil {
			return nil, err
		}
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
	// hashed is what goes into the torrent: files, with pad files
	// before media segments.
	hashed := files
	var mplan *mediaPlan
	if opts.Media {
		if opts.Base != "" && opts.Base != BaseNone || opts.BaseDir != "" {
			return nil, errors.New("--media releases carry no delta hints: pad files shift the torrent's bytes (drop --base/--base-dir)")
		}
		opts.Base = BaseNone
		if mplan, pieceLength, err = planMedia(files, pieceLength); err != nil {
			return nil, err
		}
		hashed = mplan.aligned
	}
	if pieceLength == 0 {
		pieceLength = piecehash.ChoosePieceLength(total)
	}
	hints, deltaRes, err := prepareHints(ctx, store, repo, opts, files, pieceLength)
	if err != nil {
		return nil, err
	}
	var hashProgress func(int64)
	if opts.Progress != nil {
		hashProgress = func(done int64) { opts.Progress("hash", min(done, total), total) }
	}
	hr, err := piecehash.Hash(ctx, hashed, piecehash.Options{PieceLength: pieceLength, Workers: opts.Workers, Progress: hashProgress, Observe: hints.observe()})
	if err != nil {
		return nil, err
	}
	if mplan != nil {
		// Back to the payload files' SHA-256s, in their order.
		var sums [][32]byte
		for i, f := range hashed {
			if !f.Pad {
				sums = append(sums, hr.SHA256[i])
			}
		}
		hr.SHA256 = sums
	}
	info := piecehash.BuildInfo(opts.Version, hashed, hr)
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
		Watermark:   watermark,
	}
	if opts.Expires > 0 {
		m.Expires = created.Add(opts.Expires)
	}
	for i, f := range files {
		m.Files = append(m.Files, catalog.ManifestFile{
			Path: path.Join(f.Path...), Size: f.Size, SHA256: hex.EncodeToString(hr.SHA256[i][:]),
		})
	}
	if hints != nil {
		if m.Delta, deltaRes, err = hints.finish(ctx, files, hr); err != nil {
			return nil, err
		}
	}
	if mplan != nil {
		mplan.section(m)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("internal error: built an invalid manifest: %w", err)
	}
	res := &PublishResult{
		Name: opts.Name, Version: opts.Version, InfoHash: m.InfoHash, TotalSize: total,
		Files: len(files), PieceLength: pieceLength, Pieces: len(hr.Pieces) / 20,
		TorrentKey: catalog.TorrentKey(opts.Name, opts.Version), ManifestKey: catalog.ManifestKey(opts.Name, opts.Version),
		WebSeed: webSeed, Channels: opts.Channels, Delta: deltaRes,
	}
	if mplan != nil {
		res.Media = &mplan.result
	}

	manifestJSON, err := catalog.MarshalManifest(m)
	if err != nil {
		return nil, err
	}
	// Reuse sources are looked up only when a file has to be staged: a
	// re-run that finds everything in place reads no other manifest.
	var reuseOnce sync.Once
	var sources *reuser
	reuse := func() *reuser {
		reuseOnce.Do(func() {
			if opts.NoReuse {
				return
			}
			var base string
			if m.Delta != nil {
				base = m.Delta.Base
			}
			sources = newReuser(ctx, store, repo, m, base, opts.VerifyReused)
		})
		return sources
	}
	var tally transferTally
	defer func() {
		res.UploadedBytes, res.ReusedBytes, res.ReusedFiles, res.ComposedFiles = tally.uploaded, tally.reused, tally.reusedFiles, tally.composedFiles
	}()

	// Already signed? Then only the same bytes may be "published" again,
	// and doing so completes whatever a killed publish left undone.
	if _, signed := repo.ManifestTarget(opts.Name, opts.Version); signed {
		if err := checkSameRelease(ctx, store, repo, m); err != nil {
			return nil, err
		}
		res.AlreadyPublished = true
		if res.CommitRetries, err = commitRelease(ctx, store, keys, opts, m, manifestJSON, torrentBytes); err != nil {
			return nil, err
		}
		if err := completeRelease(ctx, store, repo, files, m, opts.Progress, reuse, &tally); err != nil {
			return nil, err
		}
		return res, showRelease(ctx, store, keys, opts)
	}

	// Stage everything under a key of our own: racing publishes of this
	// name@version never write over each other, and only the one whose
	// signed commit wins moves its bytes into place.
	stage := catalog.StagingKey(opts.Name, opts.Version, stagingID(opts.Now()))
	// Our staged copy goes when we lose or fail before committing. Kept
	// when the commit may have happened (an error after the commit point):
	// a re-run then finds the signed manifest and torrent there. `catalog
	// gc` removes what killed or failed runs leave.
	keepStage := false
	defer func() {
		if !keepStage {
			deletePrefix(context.WithoutCancel(ctx), store, stage)
		}
	}()
	if err := uploadOrReuse(ctx, store, stage+"data/", files, m, opts.Progress, reuse, &tally); err != nil {
		return nil, err
	}
	catalog.CrashPoint("torrent")
	if err := store.Put(ctx, stage+stagedTorrent, bytes.NewReader(torrentBytes), int64(len(torrentBytes))); err != nil {
		return nil, fmt.Errorf("upload torrent: %w", err)
	}
	catalog.CrashPoint("manifest")
	if err := store.Put(ctx, stage+stagedManifest, bytes.NewReader(manifestJSON), int64(len(manifestJSON))); err != nil {
		return nil, fmt.Errorf("upload manifest: %w", err)
	}
	catalog.CrashPoint("commit")
	won := false
	res.CommitRetries, err = catalog.Update(ctx, store, keys, catalog.UpdateOptions{Expiry: opts.Expiry, Now: opts.Now, HoldTimestamp: true}, func(r *catalog.Repo) error {
		won = false
		if _, signed := r.ManifestTarget(opts.Name, opts.Version); signed {
			// Someone committed this version while we uploaded.
			if err := checkSameRelease(ctx, store, r, m); err != nil {
				return err
			}
			for _, c := range opts.Channels {
				if err := r.Promote(opts.Name, opts.Version, c); err != nil {
					return err
				}
			}
			return applyTiming(r, opts)
		}
		won = true
		if err := r.AddRelease(manifestJSON, torrentBytes, opts.Channels); err != nil {
			return err
		}
		return applyTiming(r, opts)
	})
	if err != nil {
		keepStage = won && !errors.Is(err, catalog.ErrConflict)
		return nil, fmt.Errorf("sign catalog: %w", err)
	}
	if !won {
		// An identical publish won the race; its bytes are the signed ones.
		res.AlreadyPublished = true
		if repo, err = catalog.OpenRepo(ctx, store, keys, opts.Expiry); err != nil {
			return nil, err
		}
		if err := completeRelease(ctx, store, repo, files, m, opts.Progress, reuse, &tally); err != nil {
			return nil, err
		}
		return res, showRelease(ctx, store, keys, opts)
	}
	keepStage = true
	catalog.CrashPoint("place")
	if err := placeStaged(ctx, store, stage, m, torrentBytes, manifestJSON); err != nil {
		return nil, fmt.Errorf("%s@%s is signed, but moving it into place failed (run the same publish again to finish): %w", opts.Name, opts.Version, err)
	}
	deletePrefix(ctx, store, stage)
	return res, showRelease(ctx, store, keys, opts)
}

// showRelease points timestamp.json at the newest commit, which makes the
// release visible to agents now that its bytes are in place.
func showRelease(ctx context.Context, store catalog.Store, keys catalog.Keys, opts PublishOptions) error {
	if _, err := catalog.Update(ctx, store, keys, catalog.UpdateOptions{Expiry: opts.Expiry, Now: opts.Now}, func(*catalog.Repo) error { return nil }); err != nil {
		return fmt.Errorf("%s@%s is signed and in place, but publishing the timestamp failed (run the same publish again to finish): %w", opts.Name, opts.Version, err)
	}
	return nil
}

// Names of the torrent and manifest inside a staging prefix.
const (
	stagedTorrent  = "release.torrent"
	stagedManifest = "release.json"
)

func stagingID(now time.Time) string {
	var b [6]byte
	rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// commitRelease applies the channels of an already signed release.
func commitRelease(ctx context.Context, store catalog.Store, keys catalog.Keys, opts PublishOptions, m *catalog.Manifest, manifestJSON, torrentBytes []byte) (int, error) {
	return catalog.Update(ctx, store, keys, catalog.UpdateOptions{Expiry: opts.Expiry, Now: opts.Now, HoldTimestamp: true}, func(r *catalog.Repo) error {
		if _, signed := r.ManifestTarget(m.Name, m.Version); !signed {
			return r.AddRelease(manifestJSON, torrentBytes, opts.Channels) // cannot happen: releases are never removed
		}
		for _, c := range opts.Channels {
			if err := r.Promote(m.Name, m.Version, c); err != nil {
				return err
			}
		}
		return applyTiming(r, opts)
	})
}

// applyTiming signs opts.Timing into the release's entry, if given.
func applyTiming(r *catalog.Repo, opts PublishOptions) error {
	if opts.Timing == nil {
		return nil
	}
	return r.SetTiming(opts.Name, opts.Version, *opts.Timing)
}

// checkSameRelease fails with ErrReleaseExists unless the release signed
// in repo has the content of m.
func checkSameRelease(ctx context.Context, store catalog.Store, repo *catalog.Repo, m *catalog.Manifest) error {
	b, err := signedObject(ctx, store, repo, catalog.ManifestKey(m.Name, m.Version), catalog.MaxManifestSize)
	if err != nil {
		return err
	}
	old, err := catalog.ParseManifest(b)
	if err != nil {
		return err
	}
	if !old.SameContent(m) {
		return fmt.Errorf("%s@%s: %w (releases are immutable: publish a new version)", m.Name, m.Version, catalog.ErrReleaseExists)
	}
	return nil
}

// signedObject returns the bytes of the signed target key: from its place,
// or, while the publish that won is still moving it there (or was killed
// doing so), from that publish's staging copy.
func signedObject(ctx context.Context, store catalog.Store, repo *catalog.Repo, key string, limit int64) ([]byte, error) {
	tf, ok := repo.Target(key)
	if !ok {
		return nil, fmt.Errorf("%s is not signed", key)
	}
	matches := func(b []byte) bool {
		return int64(len(b)) == tf.Length && tf.VerifyLengthHashes(b) == nil
	}
	// Twice: the publish that won may move its copy into place and delete
	// the staged one between our two looks.
	for range 2 {
		b, err := catalog.ReadAll(ctx, store, key, limit)
		if err == nil && matches(b) {
			return b, nil
		}
		if err != nil && !errors.Is(err, catalog.ErrNotFound) {
			return nil, err
		}
		name, version, staged, ok := stagedNameOf(key)
		if !ok {
			break
		}
		list, err := store.List(ctx, catalog.StagingPrefix+name+"/"+version+"/")
		if err != nil && !errors.Is(err, catalog.ErrReadOnly) {
			return nil, err
		}
		for _, o := range list {
			if !strings.HasSuffix(o.Key, "/"+staged) || o.Size != tf.Length {
				continue
			}
			if b, err := catalog.ReadAll(ctx, store, o.Key, limit); err == nil && matches(b) {
				return b, nil
			}
		}
	}
	return nil, fmt.Errorf("%s is signed but neither it nor a staged copy in %s matches the signature; re-run the publish that made it", key, store)
}

// stagedNameOf maps a manifest or torrent key to its release and the name
// of its copy inside a staging prefix.
func stagedNameOf(key string) (name, version, staged string, ok bool) {
	if rest, ok := strings.CutPrefix(key, "releases/"); ok {
		if n, v, ok := strings.Cut(strings.TrimSuffix(rest, ".json"), "/"); ok {
			return n, v, stagedManifest, true
		}
	}
	if rest, ok := strings.CutPrefix(key, "torrents/"); ok {
		if n, v, ok := strings.Cut(strings.TrimSuffix(rest, ".torrent"), "/"); ok {
			return n, v, stagedTorrent, true
		}
	}
	return "", "", "", false
}

// placeStaged copies a winning publish's staged objects to the places the
// signed catalog names: payload first, then torrent and manifest.
//
// Torrent and manifest go under both their names (catalog.PutTarget): the
// hash-prefixed one that agents and TUF clients read, then the plain one.
// They are small, so they are written from memory rather than copied.
func placeStaged(ctx context.Context, store catalog.Store, stage string, m *catalog.Manifest, torrentBytes, manifestJSON []byte) error {
	prefix := catalog.DataPrefix(m.Name, m.Version)
	for _, f := range m.Files {
		if err := catalog.CopyObject(ctx, store, stage+"data/"+f.Path, prefix+f.Path); err != nil {
			return err
		}
	}
	if err := ensurePads(ctx, store, m); err != nil {
		return err
	}
	if err := catalog.PutTarget(ctx, store, catalog.TorrentKey(m.Name, m.Version), torrentBytes); err != nil {
		return err
	}
	return catalog.PutTarget(ctx, store, catalog.ManifestKey(m.Name, m.Version), manifestJSON)
}

// completeRelease makes the stored objects of a signed release match the
// signature: payload files that are missing or the wrong size come from
// the local files (whose SHA-256s equal the signed ones), torrent and
// manifest from a staged copy when missing or different.
func completeRelease(ctx context.Context, store catalog.Store, repo *catalog.Repo, files []piecehash.FileEntry, m *catalog.Manifest, progress func(string, int64, int64), reuse func() *reuser, tally *transferTally) error {
	prefix := catalog.DataPrefix(m.Name, m.Version)
	var missing []piecehash.FileEntry
	var missingM []catalog.ManifestFile
	for i, f := range files {
		if st, err := store.Stat(ctx, prefix+m.Files[i].Path); err == nil && st.Size == f.Size {
			continue
		}
		missing = append(missing, f)
		missingM = append(missingM, m.Files[i])
	}
	if len(missing) > 0 {
		sub := *m
		sub.Files = missingM
		sub.Media = nil // a partial file list has no layout
		if err := uploadOrReuse(ctx, store, prefix, missing, &sub, progress, reuse, tally); err != nil {
			return err
		}
	}
	if err := ensurePads(ctx, store, m); err != nil {
		return err
	}
	for _, key := range []string{catalog.TorrentKey(m.Name, m.Version), catalog.ManifestKey(m.Name, m.Version)} {
		tf, _ := repo.Target(key)
		intact := tf != nil
		for _, k := range catalogTargetKeys(tf) {
			if b, err := catalog.ReadAll(ctx, store, k, catalog.MaxManifestSize+catalog.MaxTorrentSize); err != nil || tf.VerifyLengthHashes(b) != nil {
				intact = false
			}
		}
		if intact {
			continue
		}
		b, err := signedObject(ctx, store, repo, key, catalog.MaxManifestSize+catalog.MaxTorrentSize)
		if err != nil {
			return err
		}
		// Both names: the plain one and the hash-prefixed (consistent
		// snapshot) one that agents and TUF clients read.
		if err := catalog.PutTarget(ctx, store, key, b); err != nil {
			return err
		}
	}
	return nil
}

// catalogTargetKeys is catalog.TargetKeys, empty for a missing target.
func catalogTargetKeys(tf *metadata.TargetFiles) []string {
	if tf == nil {
		return nil
	}
	return catalog.TargetKeys(tf)
}

// deletePrefix removes every object under prefix, best effort.
func deletePrefix(ctx context.Context, store catalog.Store, prefix string) {
	list, err := store.List(ctx, prefix)
	if err != nil {
		return
	}
	for _, o := range list {
		_ = store.Delete(ctx, o.Key)
	}
}

// uploadPayload copies every file of m to prefix + its path.
func uploadPayload(ctx context.Context, store catalog.Store, prefix string, files []piecehash.FileEntry, m *catalog.Manifest, progress func(string, int64, int64)) error {
	var done int64
	for i, f := range files {
		key := prefix + m.Files[i].Path
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
		catalog.CrashPoint("payload")
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
