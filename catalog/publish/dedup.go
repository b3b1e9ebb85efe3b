package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/delta"
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
//
// With delta hints (publish --base), a changed file is built in the store
// (catalog.Composer) from the ranges of the base's payload objects that the
// signed hints name plus the local bytes they do not cover; it is checked
// the same way.

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

	// For files only partly in the base: the signed hints, the base's
	// payload prefix and file sizes (from its signed manifest), and each
	// new file's offset in the release (manifest order).
	composer  catalog.Composer
	hints     *delta.Hints
	basePath  string
	baseSizes map[string]int64
	offsets   map[string]int64
}

// transferTally counts the payload bytes a publish moved and reused.
type transferTally struct {
	uploaded, reused int64
	reusedFiles      int // copied whole
	composedFiles    int // built from base ranges and new bytes
}

// newReuser finds the files of m that earlier signed versions of m.Name
// already hold in store, and, when m carries delta hints against base and
// the store can compose, what it needs to build changed files. It returns
// nil, and publish uploads everything, when the store cannot copy
// server-side (streaming a copy through this process would cost more than
// uploading the local file) or nothing can be reused. base, if set, is read first; the other versions follow newest
// first, at most maxReuseManifests in all. Manifests that cannot be read
// are skipped: dedup saves bytes, it must never stop a publish.
func newReuser(ctx context.Context, store catalog.Store, repo *catalog.Repo, m *catalog.Manifest, base string, verify bool) *reuser {
	copier, _ := store.(catalog.Copier)
	composer, _ := store.(catalog.Composer)
	if copier == nil && composer == nil {
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
	for i, v := range versions {
		if (len(r.sources) == len(want) && i > 0) || ctx.Err() != nil {
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
			if _, have := r.sources[id]; want[id] && !have && copier != nil {
				r.sources[id] = prefix + f.Path
			}
		}
		if v == base && m.Delta != nil && composer != nil {
			r.composer, r.hints, r.basePath = composer, m.Delta, prefix
			r.baseSizes = map[string]int64{}
			for _, f := range old.Files {
				r.baseSizes[f.Path] = f.Size
			}
			// Hint offsets count the files concatenated in manifest order,
			// which is the torrent's order: both come from the same files
			// slice (pad files, in media torrents only, are not counted).
			r.offsets = map[string]int64{}
			var off int64
			for _, f := range m.Files {
				r.offsets[f.Path] = off
				off += f.Size
			}
		}
	}
	if len(r.sources) == 0 && r.hints == nil {
		return nil
	}
	return r
}

// plan splits file f (at release offset off) into parts: ranges of base
// objects that the hints name, and the rest as ranges of the local file
// (R nil, Off relative to the file, Src ""). Every part but the last is at
// least minPart long: shorter base ranges are sent as local bytes, and a
// short run of local bytes takes bytes from the next base range, or
// swallows it. It returns nil when nothing would be copied.
func (r *reuser) plan(f catalog.ManifestFile, off, minPart int64) []catalog.Part {
	type seg struct {
		src        string // "" for local bytes
		at, srcOff int64  // at: offset in the new file
		n          int64
	}
	var segs []seg
	add := func(s seg) {
		if n := len(segs); n > 0 && s.src == "" && segs[n-1].src == "" {
			segs[n-1].n += s.n
			return
		}
		segs = append(segs, s)
	}
	at := int64(0)
	for _, h := range r.hints.Overlapping(off, f.Size) {
		lo, hi := max(h.Off, off), min(h.Off+h.Len, off+f.Size)
		baseOff := h.BaseOff + (lo - h.Off)
		if size, ok := r.baseSizes[h.BasePath]; !ok || baseOff+(hi-lo) > size {
			continue // a range outside the signed base file: send the bytes
		}
		if lo-off > at {
			add(seg{at: at, n: lo - off - at})
		}
		if hi-lo >= minPart {
			add(seg{src: r.basePath + h.BasePath, at: lo - off, srcOff: baseOff, n: hi - lo})
		} else {
			add(seg{at: lo - off, n: hi - lo})
		}
		at = hi - off
	}
	if at < f.Size {
		add(seg{at: at, n: f.Size - at})
	}
	// Grow short local runs (but the last) into the next base range.
	for i := 0; i < len(segs)-1; i++ {
		s := &segs[i]
		if s.src != "" || s.n >= minPart {
			continue
		}
		next := &segs[i+1]
		need := minPart - s.n
		if next.n-need >= minPart || (i+1 == len(segs)-1 && next.n > need) {
			s.n += need
			next.at, next.srcOff, next.n = next.at+need, next.srcOff+need, next.n-need
			continue
		}
		// Swallow the next one, and the local run after it, and look again.
		s.n += next.n
		segs = append(segs[:i+1], segs[i+2:]...)
		if i+1 < len(segs) && segs[i+1].src == "" {
			s.n += segs[i+1].n
			segs = append(segs[:i+1], segs[i+2:]...)
		}
		i--
	}
	var parts []catalog.Part
	copied := false
	for _, s := range segs {
		p := catalog.Part{Off: s.at, Len: s.n}
		if s.src != "" {
			p.Src, p.Off = s.src, s.srcOff
			copied = true
		}
		parts = append(parts, p)
	}
	if !copied {
		return nil
	}
	return parts
}

// compose stages f at key from the base's objects and the bytes of the
// local file that the hints do not cover. It returns the bytes sent, or
// ok false (nothing the caller relies on changed) when there is nothing to
// copy or composing fails; the caller then uploads the file.
func (r *reuser) compose(ctx context.Context, f catalog.ManifestFile, local, key string) (sent int64, ok bool) {
	if r == nil || r.hints == nil || f.Size == 0 {
		return 0, false
	}
	off, known := r.offsets[f.Path]
	if !known {
		return 0, false
	}
	parts := r.plan(f, off, r.composer.MinPartSize())
	if parts == nil {
		return 0, false
	}
	fh, err := os.Open(local)
	if err != nil {
		return 0, false
	}
	defer fh.Close()
	for i, p := range parts {
		if p.Src == "" {
			parts[i].R = io.NewSectionReader(fh, p.Off, p.Len)
			parts[i].Off = 0
			sent += p.Len
		}
	}
	if err := r.composer.Compose(ctx, key, parts); err != nil {
		if ctx.Err() == nil {
			slog.Warn("publish: composing from the base failed, uploading instead", "to", key, "err", err)
		}
		return 0, false
	}
	if err := r.check(ctx, f, key); err != nil {
		slog.Warn("publish: composed object does not match the signed file, uploading instead", "to", key, "err", err)
		return 0, false
	}
	return sent, true
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
func uploadOrReuse(ctx context.Context, store catalog.Store, prefix string, files []piecehash.FileEntry, m *catalog.Manifest, progress func(string, int64, int64), reuseSource func() *reuser, tally *transferTally) error {
	if len(files) == 0 {
		return nil
	}
	reuse := reuseSource()
	var upFiles []piecehash.FileEntry
	var upM []catalog.ManifestFile
	for i, f := range files {
		if reuse.stage(ctx, m.Files[i], prefix+m.Files[i].Path) {
			tally.reused += f.Size
			tally.reusedFiles++
			catalog.CrashPoint("payload")
			continue
		}
		if sent, ok := reuse.compose(ctx, m.Files[i], f.Source, prefix+m.Files[i].Path); ok {
			tally.uploaded += sent
			tally.reused += f.Size - sent
			tally.composedFiles++
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
