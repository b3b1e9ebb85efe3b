package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/torrentfile"
	"github.com/swarmship/swarmship/internal/release"
)

// adoptUnrecorded rebuilds the records of release directories that have
// none: the state database was lost (corrupt, truncated, deleted) or an
// eviction was interrupted by a crash. A release whose every file matches
// the SHA-256 in its cached signed manifest is re-adopted, as active when
// current/ points at it, else as a verified (rollback) copy. One that does
// not verify, or has no usable manifest, is removed with a warning unless
// current/ points at it. So an empty or fresh state database never
// deletes a release that verifies.
//
// The cached manifest and torrent were checked against the signed catalog
// when they were first fetched (the same trust a restart puts in them to
// resume); the torrent must still match the manifest's infohash.
func (a *Agent) adoptUnrecorded(ctx context.Context) {
	recs, err := a.state.All()
	if err != nil {
		// Without the records nothing can be told apart: touch nothing.
		a.log.Error("cannot read the state; leaving unrecorded release directories alone", "file", a.state.path, "err", err)
		return
	}
	known := map[string]bool{}
	for _, r := range recs {
		known[r.Key()] = true
	}
	for _, ref := range a.cache.unrecorded(known) {
		if ctx.Err() != nil {
			return
		}
		a.adoptOne(ctx, ref.Name, ref.Version)
	}
}

func (a *Agent) adoptOne(ctx context.Context, name, version string) {
	m, ih, err := a.cache.metadata(name, version)
	if errors.Is(err, fs.ErrNotExist) {
		// The metadata went with the state: ask the signed catalog once
		// it has been read (adoptPending) before deciding anything.
		a.mu.Lock()
		a.pendingAdopt = append(a.pendingAdopt, release.Ref{Name: name, Version: version})
		a.mu.Unlock()
		a.log.Warn("release without a state record or cached metadata: will check it against the signed catalog", "release", name, "version", version, "dir", a.cache.releaseDir(name, version))
		return
	}
	a.adoptChecked(ctx, name, version, m, ih, err)
}

// adoptPending settles the release directories that had neither a record
// nor cached metadata, once the catalog has been read: a release in the
// signed catalog whose files verify is re-adopted (its manifest and
// torrent cached again); one the catalog does not list, or whose files do
// not verify, is removed unless current/ points at it. On other catalog
// errors it waits for the next refresh.
func (a *Agent) adoptPending(ctx context.Context) {
	a.mu.Lock()
	pending := a.pendingAdopt
	a.pendingAdopt = nil
	a.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	var retry []release.Ref
	for _, ref := range pending {
		m, err := a.catalog.Manifest(ctx, ref.Name, ref.Version)
		var tb []byte
		if err == nil {
			tb, err = a.catalog.Torrent(ctx, ref.Name, ref.Version)
		}
		var ih metainfo.Hash
		if err == nil {
			var tf *torrentfile.Torrent
			if tf, err = torrentfile.Parse(tb, m); err == nil {
				ih = tf.InfoHash
			}
		}
		switch {
		case err == nil:
			if err = a.cache.keepMetadata(m, tb); err != nil {
				retry = append(retry, ref)
				continue
			}
		case errors.Is(err, catalog.ErrNotFound):
			err = fmt.Errorf("not in the signed catalog: %w", err)
			m = nil
		default:
			retry = append(retry, ref)
			continue
		}
		a.adoptChecked(ctx, ref.Name, ref.Version, m, ih, err)
	}
	a.mu.Lock()
	a.pendingAdopt = append(a.pendingAdopt, retry...)
	a.mu.Unlock()
	a.restoreCached(ctx) // seed what was re-adopted
}

// adoptChecked re-adopts or removes one unrecorded release directory given
// its metadata (or why there is none usable).
func (a *Agent) adoptChecked(ctx context.Context, name, version string, m *catalog.Manifest, ih metainfo.Hash, err error) {
	dir := a.cache.releaseDir(name, version)
	active := a.cache.activeVersion(name) == version
	if err == nil {
		if skip := a.unfetchedVariants(m); skip != nil {
			// A watermarked release holds only its site's variants.
			err = verifyFilesSkipping(ctx, dir, m, func(i int) bool { return skip[i] })
		} else {
			err = verifyFiles(ctx, dir, m)
		}
	}
	if ctx.Err() != nil {
		return
	}
	now := time.Now()
	if err == nil {
		rec := &ReleaseState{
			Name: name, Version: version, InfoHash: m.InfoHash, Phase: PhaseVerified,
			Size: m.TotalSize, Completed: m.TotalSize, Queued: now, Verified: now, LastUsed: now,
		}
		if active {
			rec.Phase, rec.Activated = PhaseActive, now
		}
		if sc, ok, err := a.complete.Counters(ih); err == nil && ok {
			rec.Downloaded, rec.Uploaded = sc.Downloaded, sc.Uploaded
		}
		if err := a.saveRecord(rec); err != nil {
			a.log.Error("cannot record a re-adopted release; its files are kept", "release", name, "version", version, "dir", dir, "file", a.state.path, "err", err)
			return
		}
		a.log.Warn("release without a state record re-adopted: every file matches the signed manifest",
			"release", name, "version", version, "dir", dir, "state", string(rec.Phase))
		a.noteRecovery(Recovery{File: dir, Action: "re-adopted as " + string(rec.Phase) + ": every file matches its signed SHA-256", At: now})
		return
	}
	if active {
		// Serving what current/ points at matters more than its state:
		// keep it; if its metadata is usable, record it as downloading so
		// the torrent re-checks its pieces and repairs it.
		act := "kept (current/ points at it) although it does not verify"
		if m != nil {
			rec := &ReleaseState{Name: name, Version: version, InfoHash: m.InfoHash, Phase: PhaseDownloading, Size: m.TotalSize,
				Queued: now, Started: now, LastError: err.Error()}
			if perr := a.saveRecord(rec); perr == nil {
				act += "; recorded as downloading to repair it"
			}
		}
		a.log.Error("active release has no state record and does not verify; "+act, "release", name, "version", version, "dir", dir, "err", err)
		a.noteRecovery(Recovery{File: dir, Action: act, Reason: err.Error(), At: now})
		return
	}
	a.log.Warn("removing files of an unrecorded release that does not verify", "release", name, "version", version, "dir", dir, "err", err)
	if rerr := a.cache.remove(name, version); rerr != nil {
		a.log.Error("remove files", "dir", dir, "err", rerr)
	}
	a.noteRecovery(Recovery{File: dir, Action: "removed: no state record and it does not verify", Reason: err.Error(), At: now})
}

func (a *Agent) noteRecovery(r Recovery) {
	a.mu.Lock()
	a.recoveries = append(a.recoveries, r)
	a.mu.Unlock()
}

// liveCounters is the completion database's view of a release's byte
// counters (see completionDB).
func (a *Agent) liveCounters(ih metainfo.Hash) (savedCounters, bool) {
	v, ok := a.byHash.Load(ih)
	if !ok {
		return savedCounters{}, false
	}
	b, up := v.(*download).bytes()
	return savedCounters{Downloaded: b, Uploaded: up}, true
}
