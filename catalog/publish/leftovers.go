package publish

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/swarmship/swarmship/catalog"
)

// Leftover is an object in a catalog that no signed target needs: the
// staging upload of a publish that lost, failed or was killed, or a
// payload, torrent or manifest of a release that was never signed.
type Leftover struct {
	Key     string    `json:"key"`
	Kind    string    `json:"kind"` // staging, payload, torrent, manifest, metadata
	Size    int64     `json:"size"`
	ModTime time.Time `json:"modified"`
}

// leftoverAreas are the key prefixes that hold release objects.
var leftoverAreas = []struct{ prefix, kind string }{
	{catalog.StagingPrefix, "staging"},
	{"data/", "payload"},
	{"torrents/", "torrent"},
	{"releases/", "manifest"},
}

// FindLeftovers lists the objects under staging/, data/, torrents/ and
// releases/ that the newest committed catalog does not reference, and
// targets metadata files that no snapshot names. It
// lists first and reads the signed metadata second, so an object written
// by a publish that commits while this runs is seen as referenced. A
// staging upload stays referenced while the release it holds is signed
// but not yet copied into place (its publish is finishing, or a re-run
// will). Objects of a signed release whose manifest cannot be read are
// never reported.
func FindLeftovers(ctx context.Context, store catalog.Store) ([]Leftover, error) {
	var all []Leftover
	for _, a := range leftoverAreas {
		list, err := store.List(ctx, a.prefix)
		if err != nil {
			return nil, err
		}
		for _, o := range list {
			all = append(all, Leftover{Key: o.Key, Kind: a.kind, Size: o.Size, ModTime: o.ModTime})
		}
	}
	// No keys: nothing is signed here, only read and checked against the
	// catalog's own root (gc trusts the store it may delete from anyway).
	repo, err := catalog.OpenRepo(ctx, store, nil, catalog.DefaultExpiry)
	if err != nil {
		return nil, err
	}
	rels, err := repo.Releases()
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	keepPrefix := map[string]bool{} // data/<name>/<version>/ of unreadable manifests
	keepStage := map[string]bool{}  // staging prefixes still needed
	for _, r := range rels {
		mKey, tKey := catalog.ManifestKey(r.Name, r.Version), catalog.TorrentKey(r.Name, r.Version)
		for _, key := range []string{mKey, tKey} {
			keep[key] = true
			if tf, ok := repo.Target(key); ok {
				// The hash-prefixed name a consistent-snapshot client reads.
				if h, ok := tf.Hashes["sha256"]; ok {
					keep[path.Dir(key)+"/"+hex.EncodeToString(h)+"."+path.Base(key)] = true
				}
			}
		}
		mb, placed, stage := signedManifestBytes(ctx, store, repo, mKey, r.Name, r.Version)
		if stage != "" && !placed {
			keepStage[stage] = true
		}
		m, err := catalog.ParseManifest(mb)
		if mb == nil || err != nil {
			keepPrefix[catalog.DataPrefix(r.Name, r.Version)] = true
			continue
		}
		for _, f := range m.Files {
			keep[catalog.DataPrefix(r.Name, r.Version)+f.Path] = true
		}
		// Pad objects of a media release on S3 (media.go ensurePads).
		for _, n := range m.PadSizes() {
			keep[catalog.PadKey(r.Name, r.Version, n)] = true
		}
	}
	// Targets files no snapshot names: a commit in flight may own one
	// (gc's age limit protects it), a killed one left it.
	unused, err := catalog.UnreferencedTargets(ctx, store)
	if err != nil {
		return nil, err
	}
	var out []Leftover
	for _, o := range unused {
		out = append(out, Leftover{Key: o.Key, Kind: "metadata", Size: o.Size, ModTime: o.ModTime})
	}
	for _, l := range all {
		if keep[l.Key] || keepStage[stagePrefixOf(l.Key)] {
			continue
		}
		if l.Kind == "payload" && keepPrefix[dataPrefixOf(l.Key)] {
			continue
		}
		out = append(out, l)
	}
	return out, nil
}

// signedManifestBytes returns the signed manifest of name@version, whether
// it is in place, and the staging prefix it was found in if not.
func signedManifestBytes(ctx context.Context, store catalog.Store, repo *catalog.Repo, key, name, version string) (b []byte, placed bool, stage string) {
	tf, _ := repo.Target(key)
	b, err := catalog.ReadAll(ctx, store, key, catalog.MaxManifestSize)
	if err == nil && tf.VerifyLengthHashes(b) == nil {
		return b, true, ""
	}
	list, err := store.List(ctx, catalog.StagingPrefix+name+"/"+version+"/")
	if err != nil {
		return nil, false, ""
	}
	for _, o := range list {
		if !strings.HasSuffix(o.Key, "/"+stagedManifest) || o.Size != tf.Length {
			continue
		}
		if b, err := catalog.ReadAll(ctx, store, o.Key, catalog.MaxManifestSize); err == nil && tf.VerifyLengthHashes(b) == nil {
			return b, false, strings.TrimSuffix(o.Key, stagedManifest)
		}
	}
	return nil, false, ""
}

// stagePrefixOf returns staging/<name>/<version>/<id>/ of a staging key.
func stagePrefixOf(key string) string {
	parts := strings.SplitN(key, "/", 5)
	if len(parts) < 5 || parts[0]+"/" != catalog.StagingPrefix {
		return ""
	}
	return strings.Join(parts[:4], "/") + "/"
}

// dataPrefixOf returns data/<name>/<version>/ of a payload key.
func dataPrefixOf(key string) string {
	parts := strings.SplitN(key, "/", 4)
	if len(parts) < 4 {
		return ""
	}
	return strings.Join(parts[:3], "/") + "/"
}

// CollectGarbage deletes the leftovers FindLeftovers reports that are older
// than olderThan. A staging upload goes only as a whole and only when its
// newest object is that old, so a publish still uploading keeps it. It
// returns what it deleted (or, with dryRun, would delete).
func CollectGarbage(ctx context.Context, store catalog.Store, olderThan time.Duration, now time.Time, dryRun bool) ([]Leftover, error) {
	if olderThan < 0 {
		return nil, errors.New("older-than must not be negative")
	}
	left, err := FindLeftovers(ctx, store)
	if err != nil {
		return nil, err
	}
	cutoff := now.Add(-olderThan)
	newestStage := map[string]time.Time{}
	for _, l := range left {
		if p := stagePrefixOf(l.Key); p != "" && l.ModTime.After(newestStage[p]) {
			newestStage[p] = l.ModTime
		}
	}
	var done []Leftover
	for _, l := range left {
		t := l.ModTime
		if p := stagePrefixOf(l.Key); p != "" {
			t = newestStage[p]
		}
		if t.IsZero() || t.After(cutoff) {
			continue // young, or a store that cannot say how old
		}
		if !dryRun {
			if err := store.Delete(ctx, l.Key); err != nil {
				return done, fmt.Errorf("gc: %w", err)
			}
		}
		done = append(done, l)
	}
	return done, nil
}
