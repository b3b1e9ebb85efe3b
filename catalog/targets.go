package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Target files (manifests and torrents) are stored twice:
//
//   - under their hash-prefixed name, dir/<sha256>.<base>, as the TUF
//     specification's consistent snapshots require (root.json says
//     consistent_snapshot: true). Conforming TUF clients (go-tuf's and
//     tuf-js's defaults) and our own agents read this name. Its bytes never
//     change, so a reader racing a publish can never get a mix of versions.
//   - under their plain name, dir/<base>, the target path itself: agents of
//     earlier releases, `catalog show`, bundles read by people and the
//     interop tests' foreign clients read it.

// HashedTargetKey is the consistent-snapshot name of the target stored at
// key whose SHA-256 is sha256Hex: the hex digest, a dot and the base name,
// in key's directory (TUF specification, "consistent snapshots").
func HashedTargetKey(key, sha256Hex string) string {
	dir, base := path.Split(key)
	return dir + sha256Hex + "." + base
}

// TargetKeys returns the store keys that hold the signed target tf: the
// hash-prefixed name first (the one clients read), then the plain name. A
// target without a SHA-256 has only its plain name. Anything that sorts
// the store's objects into signed and unsigned ones uses it.
func TargetKeys(tf *metadata.TargetFiles) []string {
	if h, ok := tf.Hashes["sha256"]; ok && len(h) == sha256.Size {
		return []string{HashedTargetKey(tf.Path, hex.EncodeToString(h)), tf.Path}
	}
	return []string{tf.Path}
}

// PutTarget stores the bytes of the target at key under both of its names.
// The hash-prefixed copy goes first: a crash between the two leaves the
// plain name missing, which `catalog resign` repairs, and never a plain
// name whose content-addressed copy is absent for new clients.
func PutTarget(ctx context.Context, s Store, key string, b []byte) error {
	if err := PutHashedTarget(ctx, s, key, b); err != nil {
		return err
	}
	return putBytes(ctx, s, key, b)
}

// PutHashedTarget stores b under the hash-prefixed name of the target at
// key only. That name is content-addressed, so a publish may write it
// before its commit: racing publishes never write over each other's, and
// a loser's copy is an unsigned leftover for `catalog gc`.
func PutHashedTarget(ctx context.Context, s Store, key string, b []byte) error {
	sum := sha256.Sum256(b)
	return putBytes(ctx, s, HashedTargetKey(key, hex.EncodeToString(sum[:])), b)
}

// RepairTargetCopies writes the copies of signed targets (see TargetKeys)
// that are missing from the store or have the wrong size, from a copy that
// matches the signed length and hash, and returns the keys it wrote. It
// upgrades catalogs published before targets were stored under
// hash-prefixed names, and finishes a publish killed between the two
// writes. It lists each target directory once and reads only targets with
// something to repair, so running it on every resign costs little. A copy
// damaged at the right size is `catalog verify`'s to report. A target with
// no good copy at all is reported in the error; nothing signed changes.
func (r *Repo) RepairTargetCopies(ctx context.Context) ([]string, error) {
	sizes := map[string]int64{}
	listed := map[string]bool{}
	var written []string
	var bad []error
	for p, tf := range r.targets.Signed.Targets {
		dir, _ := path.Split(p)
		if !listed[dir] {
			objs, err := r.store.List(ctx, dir)
			if err != nil {
				return written, fmt.Errorf("list %s in %s: %w", dir, r.store, err)
			}
			for _, o := range objs {
				sizes[o.Key] = o.Size
			}
			listed[dir] = true
		}
		keys := TargetKeys(tf)
		var missing []string
		for _, k := range keys {
			if size, ok := sizes[k]; !ok || size != tf.Length {
				missing = append(missing, k)
			}
		}
		if len(missing) == 0 {
			continue
		}
		var good []byte
		var errs []error
		for _, k := range keys {
			b, err := readTargetCopy(ctx, r.store, tf, k)
			if err == nil {
				good = b
				break
			}
			errs = append(errs, err)
		}
		if good == nil {
			bad = append(bad, fmt.Errorf("target %s has no good copy to repair from: %w", p, errors.Join(errs...)))
			continue
		}
		for _, k := range missing {
			if err := putBytes(ctx, r.store, k, good); err != nil {
				return written, err
			}
			written = append(written, k)
		}
	}
	sort.Strings(written)
	return written, errors.Join(bad...)
}

// readTargetCopy reads the copy of tf at key, at most one byte past the
// signed length (a longer object then fails the check like any other
// change), and verifies it against the signed length and hashes.
func readTargetCopy(ctx context.Context, s Store, tf *metadata.TargetFiles, key string) ([]byte, error) {
	rc, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(rc, tf.Length+1))
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", key, s, err)
	}
	if err := tf.VerifyLengthHashes(b); err != nil {
		return nil, fmt.Errorf("%s in %s does not match the signed catalog (changed or corrupted): %w", key, s, err)
	}
	return b, nil
}
