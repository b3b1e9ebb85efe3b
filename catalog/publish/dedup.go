package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/piecehash"
	"github.com/swarmship/swarmship/internal/release"
)

// Catalog dedup: a file of the new release whose SHA-256 and size equal a
// file of a signed earlier version of the same name is staged with a
// server-side copy of that version's payload object (CopyObject on S3, a
// hard link in a directory) instead of an upload.
//
// Why the copy can be trusted: its source is the payload object of a signed
// release whose signed manifest gives the same SHA-256 and size as the local
// file just hashed. The copy's size is checked, and with VerifyReused its
// SHA-256 too (read back from the store: a download instead of an upload).
// A source that was altered in the bucket behind the signatures would give
// a release that agents refuse (they check every piece and every file's
// SHA-256 before activation) and that `catalog verify` reports; it cannot
// make an agent accept wrong bytes.

// maxReuseManifests bounds how many earlier versions' manifests one publish
// reads to find reusable files (one GET each, newest first).
const maxReuseManifests = 32

// fileID is what makes two payload files interchangeable.
type fileID struct {
	sha256 string
	size   int64
}

// reuser stages files by server-side copy from earlier versions.
type reuser struct {
	copier  catalog.Copier
	store   catalog.Store
	sources map[fileID]string // a payload key in the catalog with these bytes
	verify  bool
}

// transferTally counts the payload bytes a publish moved and reused.
type transferTally struct {
	uploaded, reused int64
	reusedFiles      int
}

// newReuser finds the files of m that earlier signed versions of m.Name
// already hold in store. It returns nil, and publish uploads everything,
// when the store cannot copy server-side (streaming a copy through this
// process would cost more than uploading the local file) or nothing
// matches. base, if set, is read first; the other versions follow newest
// first, at most maxReuseManifests in all. Manifests that cannot be read
// are skipped: dedup saves bytes, it must never stop a publish.
func newReuser(ctx context.Context, store catalog.Store, repo *catalog.Repo, m *catalog.Manifest, base string, verify bool) *reuser {
	copier, ok := store.(catalog.Copier)
	if !ok {
		return nil
	}
	want := map[fileID]bool{}
	for _, f := range m.Files {
		if f.Size > 0 { // an empty file costs nothing to upload
			want[fileID{f.SHA256, f.Size}] = true
		}
	}
	rels, err := repo.Releases()
	if err != nil || len(want) == 0 {
		return nil
	}
	var versions []string
	for _, r := range rels {
		if r.Name == m.Name && r.Version != m.Version && r.Version != base {
			versions = append(versions, r.Version)
		}
	}
	slices.SortFunc(versions, func(a, b string) int { return release.CompareVersions(b, a) })
	if base != "" && base != m.Version {
		if _, ok := repo.ManifestTarget(m.Name, base); ok {
			versions = append([]string{base}, versions...)
		}
	}
	if len(versions) > maxReuseManifests {
		versions = versions[:maxReuseManifests]
	}
	r := &reuser{copier: copier, store: store, sources: map[fileID]string{}, verify: verify}
	for _, v := range versions {
		if len(r.sources) == len(want) || ctx.Err() != nil {
			break
		}
		b, err := signedObject(ctx, store, repo, catalog.ManifestKey(m.Name, v), catalog.MaxManifestSize)
		if err != nil {
			slog.Debug("publish: skipping a version for reuse", "release", release.Format(m.Name, v), "err", err)
			continue
		}
		old, err := catalog.ParseManifest(b)
		if err != nil || old.Name != m.Name || old.Version != v {
			continue
		}
		prefix := catalog.DataPrefix(m.Name, v)
		for _, f := range old.Files {
			id := fileID{f.SHA256, f.Size}
			if _, have := r.sources[id]; want[id] && !have {
				r.sources[id] = prefix + f.Path
			}
		}
	}
	if len(r.sources) == 0 {
		return nil
	}
	return r
}

// stage puts f at key by a server-side copy when an earlier version holds
// the same bytes. It reports false, having changed nothing the caller
// relies on, when there is no such version or the copy fails or does not
// check out; the caller then uploads the file (over any bad copy).
func (r *reuser) stage(ctx context.Context, f catalog.ManifestFile, key string) bool {
	if r == nil {
		return false
	}
	src, ok := r.sources[fileID{f.SHA256, f.Size}]
	if !ok {
		return false
	}
	if err := r.copier.Copy(ctx, src, key); err != nil {
		if ctx.Err() == nil {
			slog.Warn("publish: server-side copy failed, uploading instead", "from", src, "to", key, "err", err)
		}
		return false
	}
	if err := r.check(ctx, f, key); err != nil {
		slog.Warn("publish: server-side copy does not match the signed file, uploading instead", "from", src, "to", key, "err", err)
		return false
	}
	return true
}

// check compares the copy at key with f: its size always, its SHA-256
// when r.verify is set.
func (r *reuser) check(ctx context.Context, f catalog.ManifestFile, key string) error {
	st, err := r.store.Stat(ctx, key)
	if err != nil {
		return err
	}
	if st.Size != f.Size {
		return fmt.Errorf("%d bytes, want %d", st.Size, f.Size)
	}
	if !r.verify {
		return nil
	}
	rc, err := r.store.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(rc, f.Size+1)); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return errors.New("SHA-256 differs from the signed one")
	}
	return nil
}

// uploadOrReuse stages each file of files (whose manifest entries are
// m.Files) at prefix + its path, by server-side copy where reuse allows
// and by upload otherwise, and counts the bytes in tally.
func uploadOrReuse(ctx context.Context, store catalog.Store, prefix string, files []piecehash.FileEntry, m *catalog.Manifest, progress func(string, int64, int64), reuse *reuser, tally *transferTally) error {
	var upFiles []piecehash.FileEntry
	var upM []catalog.ManifestFile
	for i, f := range files {
		if reuse.stage(ctx, m.Files[i], prefix+m.Files[i].Path) {
			tally.reused += f.Size
			tally.reusedFiles++
			catalog.CrashPoint("payload")
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		upFiles = append(upFiles, f)
		upM = append(upM, m.Files[i])
	}
	sub := *m
	sub.Files, sub.TotalSize = upM, 0
	for _, f := range upFiles {
		sub.TotalSize += f.Size
	}
	tally.uploaded += sub.TotalSize
	return uploadPayload(ctx, store, prefix, upFiles, &sub, progress)
}
