package catalog

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/swarmship/swarmship/internal/release"
)

// Expiry says how long each role's metadata stays valid after signing.
// Short timestamp and snapshot lifetimes protect agents from freeze
// attacks; a catalog that nobody re-signs within them stops updating agents
// (they keep what they have). `swarmship catalog resign` renews them.
type Expiry struct {
	Root, Targets, Snapshot, Timestamp time.Duration
}

// DefaultExpiry is used where the caller gives none.
var DefaultExpiry = Expiry{
	Root:      365 * 24 * time.Hour,
	Targets:   365 * 24 * time.Hour,
	Snapshot:  30 * 24 * time.Hour,
	Timestamp: 7 * 24 * time.Hour,
}

// Metadata keys inside a catalog.
const (
	metadataPrefix = "metadata/"
	RootKey        = metadataPrefix + "root.json"
	timestampKey   = metadataPrefix + "timestamp.json"
	// MaxMetadataSize bounds any one metadata file an agent will read.
	MaxMetadataSize = 16 << 20
)

func versionedKey(version int64, role string) string {
	return metadataPrefix + strconv.FormatInt(version, 10) + "." + role + ".json"
}

// IsMetadataKey reports whether key names a TUF metadata file of a catalog:
// metadata/<role>.json or metadata/<version>.<role>.json for a top-level
// role. Anything else under metadata/ (a key file left there, notes) is
// not catalog metadata and is not served.
func IsMetadataKey(key string) bool {
	name, ok := strings.CutPrefix(key, metadataPrefix)
	if !ok {
		return false
	}
	name, ok = strings.CutSuffix(name, ".json")
	if !ok {
		return false
	}
	if v, role, found := strings.Cut(name, "."); found {
		if v == "" || strings.TrimLeft(v, "0123456789") != "" {
			return false
		}
		name = role
	}
	switch name {
	case "root", "targets", "snapshot", "timestamp":
		return true
	}
	return false
}

// ErrNotInitialized means the store holds no catalog yet.
var ErrNotInitialized = errors.New("no catalog here: run `swarmship catalog init` first")

// ErrReleaseExists is returned when publishing name@version with content
// that differs from what the catalog already has.
var ErrReleaseExists = errors.New("already published with different bytes")

// Init creates a new TUF repository in store, signed by keys, and returns
// root.json. It refuses a store that already holds a catalog.
func Init(ctx context.Context, store Store, keys Keys, exp Expiry, now time.Time) ([]byte, error) {
	if _, err := store.Stat(ctx, RootKey); err == nil {
		return nil, fmt.Errorf("%s already holds a catalog (%s exists)", store, RootKey)
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	root := metadata.Root(now.Add(exp.Root))
	root.Signed.ConsistentSnapshot = true
	for _, role := range Roles {
		k, ok := keys[role]
		if !ok {
			return nil, fmt.Errorf("no %s key", role)
		}
		pub, err := metadata.KeyFromPublicKey(k.Public())
		if err != nil {
			return nil, err
		}
		if err := root.Signed.AddKey(pub, role); err != nil {
			return nil, err
		}
	}
	if err := sign(root, keys["root"]); err != nil {
		return nil, err
	}
	rootJSON, err := root.ToBytes(true)
	if err != nil {
		return nil, err
	}
	r := &Repo{store: store, keys: keys, exp: exp, root: root,
		targets:   metadata.Targets(now.Add(exp.Targets)),
		snapshot:  metadata.Snapshot(now.Add(exp.Snapshot)),
		timestamp: metadata.Timestamp(now.Add(exp.Timestamp)),
	}
	// Versions start at 0 so the first commit writes version 1 of each.
	r.targets.Signed.Version = 0
	r.snapshot.Signed.Version = 0
	r.timestamp.Signed.Version = 0
	// Create-only: of two inits racing on one store, one goes on and the
	// other stops here instead of mixing roots.
	if err := createBytes(ctx, store, versionedKey(1, "root"), rootJSON); errors.Is(err, ErrExists) {
		return nil, fmt.Errorf("%s already holds a catalog (or another init is running): %w", store, err)
	} else if err != nil {
		return nil, err
	}
	if err := r.Commit(ctx, now); err != nil {
		return nil, err
	}
	// root.json last: its presence marks a complete catalog.
	if err := putBytes(ctx, store, RootKey, rootJSON); err != nil {
		return nil, err
	}
	return rootJSON, nil
}

// Fingerprint is the SHA-256 of root.json, which operators compare when
// they pin a catalog's root on agents.
func Fingerprint(rootJSON []byte) string {
	sum := sha256.Sum256(rootJSON)
	return hex.EncodeToString(sum[:])
}

// Repo is a writable view of a catalog's TUF metadata, for publishers.
// It is not safe for concurrent use. Several publishers may write one
// catalog at once: Commit is a compare-and-swap (see Commit and Update).
type Repo struct {
	store     Store
	keys      Keys
	exp       Expiry
	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]
	dirty     bool
	// maxTargets is the highest targets version found in the store, taken
	// or not: a commit that lost its race may have left one behind.
	maxTargets int64
	resign     bool // Update re-signs snapshot and timestamp even if nothing changed
	// holdTimestamp makes Commit stop at the commit point, leaving the
	// timestamp (what readers follow) to a later Publish.
	holdTimestamp bool
}

// RenewSignatures asks Update to re-sign snapshot and timestamp even when
// targets do not change (what `catalog resign` does).
func (r *Repo) RenewSignatures() { r.resign = true }

// ErrConflict means another writer committed the catalog first; reload and
// apply the change again (Update does).
var ErrConflict = errors.New("another writer committed the catalog first")

// OpenRepo loads the current metadata from store, checks that it is
// validly signed by its own root and that keys are the catalog's keys.
func OpenRepo(ctx context.Context, store Store, keys Keys, exp Expiry) (*Repo, error) {
	rootJSON, err := ReadAll(ctx, store, RootKey, MaxMetadataSize)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", store, ErrNotInitialized)
	}
	if err != nil {
		return nil, err
	}
	r := &Repo{store: store, keys: keys, exp: exp}
	if r.root, err = metadata.Root().FromBytes(rootJSON); err != nil {
		return nil, fmt.Errorf("parse %s: %w", RootKey, err)
	}
	if err := r.root.VerifyDelegate("root", r.root); err != nil {
		return nil, fmt.Errorf("%s in %s is not signed by its own root keys: %w", RootKey, store, err)
	}
	for role, k := range keys {
		if err := r.checkKey(role, k); err != nil {
			return nil, err
		}
	}
	tsJSON, err := ReadAll(ctx, store, timestampKey, MaxMetadataSize)
	if err != nil {
		return nil, err
	}
	if r.timestamp, err = metadata.Timestamp().FromBytes(tsJSON); err != nil {
		return nil, fmt.Errorf("parse timestamp: %w", err)
	}
	if err := r.root.VerifyDelegate("timestamp", r.timestamp); err != nil {
		return nil, fmt.Errorf("timestamp in %s: %w", store, err)
	}
	// The newest snapshot is the catalog's state: its create-only write is
	// each commit's linearization point, and the timestamp may lag it by a
	// writer that died before updating timestamp.json.
	snapVer := r.timestamp.Signed.Meta["snapshot.json"].Version
	latestSnap, maxTargets, err := latestVersions(ctx, store)
	if err != nil {
		return nil, err
	}
	r.maxTargets = maxTargets
	if latestSnap > snapVer {
		snapVer = latestSnap
	}
	if r.snapshot, _, err = readSigned[metadata.SnapshotType](ctx, r, "snapshot", versionedKey(snapVer, "snapshot")); err != nil {
		return nil, err
	}
	if r.snapshot.Signed.Version != snapVer {
		return nil, fmt.Errorf("%s in %s says it is version %d", versionedKey(snapVer, "snapshot"), store, r.snapshot.Signed.Version)
	}
	tVer := r.snapshot.Signed.Meta["targets.json"].Version
	tJSON, err := ReadAll(ctx, store, versionedKey(tVer, "targets"), MaxMetadataSize)
	if err != nil {
		return nil, err
	}
	if r.targets, err = metadata.Targets().FromBytes(tJSON); err != nil {
		return nil, fmt.Errorf("parse targets: %w", err)
	}
	if err := r.root.VerifyDelegate("targets", r.targets); err != nil {
		return nil, fmt.Errorf("targets in %s: %w", store, err)
	}
	return r, nil
}

// checkKey verifies that k is the key root.json assigns to role.
func (r *Repo) checkKey(role string, k crypto.Signer) error {
	pub, err := metadata.KeyFromPublicKey(k.Public())
	if err != nil {
		return err
	}
	id, err := pub.ID()
	if err != nil {
		return err
	}
	roleDef, ok := r.root.Signed.Roles[role]
	if !ok {
		return fmt.Errorf("catalog root has no %s role", role)
	}
	if !slices.Contains(roleDef.KeyIDs, id) {
		return fmt.Errorf("the %s key (id %.12s…) is not the catalog's %s key (ids %s): wrong keys directory?",
			role, id, role, shortIDs(roleDef.KeyIDs))
	}
	return nil
}

func shortIDs(ids []string) string {
	var out []string
	for _, id := range ids {
		if len(id) > 12 {
			id = id[:12] + "…"
		}
		out = append(out, id)
	}
	return strings.Join(out, ", ")
}

// customOf decodes a target's swarmship state.
func customOf(tf *metadata.TargetFiles) (EntryState, error) {
	var st EntryState
	if tf.Custom == nil {
		return st, nil
	}
	if err := json.Unmarshal(*tf.Custom, &st); err != nil {
		return st, fmt.Errorf("target %s: bad custom metadata: %w", tf.Path, err)
	}
	return st, nil
}

// entry returns the signed target of name@version's manifest and its state.
func (r *Repo) entry(name, version string) (*metadata.TargetFiles, EntryState, error) {
	target, ok := r.targets.Signed.Targets[ManifestKey(name, version)]
	if !ok {
		return nil, EntryState{}, fmt.Errorf("%s@%s is not in the catalog", name, version)
	}
	st, err := customOf(target)
	return target, st, err
}

func setCustom(tf *metadata.TargetFiles, st EntryState) {
	sort.Strings(st.Channels)
	if len(st.Channels) == 0 && !st.Yanked && st.Timing.IsZero() {
		tf.Custom = nil
		return
	}
	b, _ := json.Marshal(st)
	raw := json.RawMessage(b)
	tf.Custom = &raw
}

// Releases lists the catalog's releases from the signed targets.
func (r *Repo) Releases() ([]Release, error) {
	return releasesFromTargets(r.targets.Signed.Targets)
}

// ManifestTarget returns the signed target of name@version's manifest.
func (r *Repo) ManifestTarget(name, version string) (*metadata.TargetFiles, bool) {
	tf, ok := r.targets.Signed.Targets[ManifestKey(name, version)]
	return tf, ok
}

// AddRelease records a release whose manifest and torrent are already in
// the store. Channels given are moved to point at this release. If the
// release is already recorded with the same manifest bytes, AddRelease only
// applies the channels; with different bytes it fails with ErrReleaseExists.
func (r *Repo) AddRelease(manifestJSON, torrent []byte, channels []string) error {
	m, err := ParseManifest(manifestJSON)
	if err != nil {
		return err
	}
	mKey, tKey := ManifestKey(m.Name, m.Version), TorrentKey(m.Name, m.Version)
	newM, err := metadata.TargetFile().FromBytes(mKey, manifestJSON, "sha256")
	if err != nil {
		return err
	}
	newT, err := metadata.TargetFile().FromBytes(tKey, torrent, "sha256")
	if err != nil {
		return err
	}
	if old, ok := r.targets.Signed.Targets[mKey]; ok {
		if !old.Hashes.Equal(newM.Hashes) || old.Length != newM.Length {
			return fmt.Errorf("%s: %w (releases are immutable: publish a new version)", m.Ref(), ErrReleaseExists)
		}
		if oldT, ok := r.targets.Signed.Targets[tKey]; ok && !oldT.Hashes.Equal(newT.Hashes) {
			return fmt.Errorf("%s: %w (torrent differs)", m.Ref(), ErrReleaseExists)
		}
		for _, c := range channels {
			if err := r.Promote(m.Name, m.Version, c); err != nil {
				return err
			}
		}
		return nil
	}
	r.targets.Signed.Targets[tKey] = newT
	r.targets.Signed.Targets[mKey] = newM
	r.dirty = true
	for _, c := range channels {
		if err := r.Promote(m.Name, m.Version, c); err != nil {
			return err
		}
	}
	return nil
}

// Promote points channel of release name at version, moving it off any
// other version of name.
func (r *Repo) Promote(name, version, channel string) error {
	if err := release.ValidateName("channel", channel); err != nil {
		return err
	}
	target, st, err := r.entry(name, version)
	if err != nil {
		return err
	}
	if st.Yanked {
		return fmt.Errorf("%s@%s is yanked and cannot be promoted", name, version)
	}
	prefix := "releases/" + name + "/"
	for key, tf := range r.targets.Signed.Targets {
		if !strings.HasPrefix(key, prefix) || tf == target {
			continue
		}
		other, err := customOf(tf)
		if err != nil {
			return err
		}
		if i := slices.Index(other.Channels, channel); i >= 0 {
			other.Channels = slices.Delete(other.Channels, i, i+1)
			setCustom(tf, other)
			r.dirty = true
		}
	}
	if !slices.Contains(st.Channels, channel) {
		st.Channels = append(st.Channels, channel)
		setCustom(target, st)
		r.dirty = true
	}
	return nil
}

// Yank marks name@version as withdrawn: agents never activate it, and it
// leaves every channel. Its files stay, so nothing already cached breaks.
func (r *Repo) Yank(name, version string) error {
	target, st, err := r.entry(name, version)
	if err != nil {
		return err
	}
	if st.Yanked {
		return nil
	}
	setCustom(target, EntryState{Yanked: true})
	r.dirty = true
	return nil
}

// SetTiming replaces the timing of name@version (see Timing).
func (r *Repo) SetTiming(name, version string, t Timing) error {
	target, st, err := r.entry(name, version)
	if err != nil {
		return err
	}
	if len(t.Activate) > MaxActivateWindows {
		return fmt.Errorf("%d activation windows, at most %d", len(t.Activate), MaxActivateWindows)
	}
	st.Timing = t
	setCustom(target, st)
	r.dirty = true
	return nil
}

// MarkUrgent marks name@version urgent, keeping the rest of its timing.
func (r *Repo) MarkUrgent(name, version string) error {
	target, st, err := r.entry(name, version)
	if err != nil {
		return err
	}
	if !st.Urgent {
		st.Urgent = true
		setCustom(target, st)
		r.dirty = true
	}
	return nil
}

// Dirty reports whether Commit has changes to sign.
func (r *Repo) Dirty() bool { return r.dirty }

// Commit signs and writes new targets, snapshot and timestamp metadata as
// a compare-and-swap against the state OpenRepo loaded. The targets file
// goes to a version no one has used (create-only, skipping versions left
// by commits that lost a race); the create-only write of snapshot version
// N+1 is the commit point: of writers that loaded snapshot N exactly one
// writes N+1, the others get ErrConflict and must reload. Only then is
// timestamp.json, which readers start from, pointed at the newest
// snapshot. A writer killed before the snapshot write leaves an unused
// targets file that nothing names; one killed after it leaves a committed
// catalog whose timestamp the next writer (or a re-run) brings forward.
func (r *Repo) Commit(ctx context.Context, now time.Time) error {
	for _, role := range []string{"targets", "snapshot", "timestamp"} {
		if _, ok := r.keys[role]; !ok {
			return fmt.Errorf("no %s key loaded", role)
		}
	}
	if _, ok := r.store.(CreateOnlyStore); !ok {
		return fmt.Errorf("cannot write the catalog in %s: %w", r.store, ErrNoConditionalWrite)
	}
	t := r.targets
	prevVersion := t.Signed.Version
	version := max(prevVersion, r.maxTargets) + 1
	t.Signed.Expires = now.Add(r.exp.Targets).UTC().Truncate(time.Second)
	for attempt := 0; ; attempt++ {
		t.Signed.Version = version
		if err := sign(t, r.keys["targets"]); err != nil {
			return err
		}
		tJSON, err := t.ToBytes(false)
		if err != nil {
			return err
		}
		err = createBytes(ctx, r.store, versionedKey(version, "targets"), tJSON)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrExists) || attempt >= 100 {
			t.Signed.Version = prevVersion
			return err
		}
		version++
	}
	r.maxTargets = version
	CrashPoint("targets")
	if err := r.commitSnapshot(ctx, now); err != nil {
		t.Signed.Version = prevVersion
		if errors.Is(err, ErrConflict) {
			// No snapshot names our targets file and none ever will
			// (the winner's names its own version): take it away
			// rather than leave it for gc.
			_ = r.store.Delete(context.WithoutCancel(ctx), versionedKey(version, "targets"))
		}
		return err
	}
	return nil
}

// UnreferencedTargets lists the targets metadata files that no snapshot in
// the store names: left by writers killed between writing targets and
// their snapshot, or belonging to a commit in flight right now (callers
// that delete go by age). It reads every snapshot file (a few hundred
// bytes each).
func UnreferencedTargets(ctx context.Context, store Store) ([]ObjectInfo, error) {
	list, err := store.List(ctx, metadataPrefix)
	if err != nil {
		return nil, err
	}
	named := map[int64]bool{}
	var targets []ObjectInfo
	for _, o := range list {
		name := strings.TrimPrefix(o.Key, metadataPrefix)
		if _, ok := strings.CutSuffix(name, ".targets.json"); ok {
			targets = append(targets, o)
			continue
		}
		if _, ok := strings.CutSuffix(name, ".snapshot.json"); !ok {
			continue
		}
		b, err := ReadAll(ctx, store, o.Key, MaxMetadataSize)
		if err != nil {
			return nil, err
		}
		snap, err := metadata.Snapshot().FromBytes(b)
		if err != nil {
			return nil, fmt.Errorf("parse %s in %s: %w", o.Key, store, err)
		}
		if mf, ok := snap.Signed.Meta["targets.json"]; ok {
			named[mf.Version] = true
		}
	}
	var out []ObjectInfo
	for _, o := range targets {
		num, _ := strings.CutSuffix(strings.TrimPrefix(o.Key, metadataPrefix), ".targets.json")
		if v, err := strconv.ParseInt(num, 10, 64); err == nil && !named[v] {
			out = append(out, o)
		}
	}
	return out, nil
}

// Resign renews snapshot and timestamp (new versions, fresh expiry) without
// changing targets. Run it from cron well within the timestamp lifetime.
// Like Commit it fails with ErrConflict if another writer committed first.
func (r *Repo) Resign(ctx context.Context, now time.Time) error {
	if _, ok := r.store.(CreateOnlyStore); !ok {
		return fmt.Errorf("cannot write the catalog in %s: %w", r.store, ErrNoConditionalWrite)
	}
	return r.commitSnapshot(ctx, now)
}

func (r *Repo) commitSnapshot(ctx context.Context, now time.Time) error {
	s := r.snapshot
	prev := s.Signed.Version
	s.Signed.Version++
	s.Signed.Expires = now.Add(r.exp.Snapshot).UTC().Truncate(time.Second)
	s.Signed.Meta = map[string]*metadata.MetaFiles{"targets.json": metadata.MetaFile(r.targets.Signed.Version)}
	if err := sign(s, r.keys["snapshot"]); err != nil {
		s.Signed.Version = prev
		return err
	}
	sJSON, err := s.ToBytes(false)
	if err != nil {
		s.Signed.Version = prev
		return err
	}
	if err := createBytes(ctx, r.store, versionedKey(s.Signed.Version, "snapshot"), sJSON); err != nil {
		s.Signed.Version = prev
		if errors.Is(err, ErrExists) {
			return fmt.Errorf("snapshot version %d: %w", prev+1, ErrConflict)
		}
		return err
	}
	// Committed. The rest only makes it visible to readers.
	r.dirty = false
	CrashPoint("snapshot")
	if r.holdTimestamp {
		return nil
	}
	return r.forwardTimestamp(ctx, now, s.Signed.Version, sJSON)
}

// forwardTimestamp points timestamp.json at the newest snapshot, starting
// with snapVer (whose bytes the caller has). Writers that commit at the
// same moment may overwrite each other's timestamp in either order, so
// each looks for a newer snapshot just before writing (and names that one
// instead), and looks again after writing until the timestamp names the
// newest snapshot: it never stays behind a commit that finished. What is
// left is a window of one write during which a slower writer's older
// timestamp can land after a newer one; an agent that read the newer one
// then refuses the older as a rollback once, keeps what it has, and takes
// the newer at its next refresh.
func (r *Repo) forwardTimestamp(ctx context.Context, now time.Time, snapVer int64, sJSON []byte) error {
	for range 10 {
		latest, _, err := latestVersions(ctx, r.store)
		if err != nil {
			return err
		}
		if latest > snapVer {
			b, err := r.readSnapshot(ctx, latest)
			if err != nil {
				return err
			}
			snapVer, sJSON = latest, b
		}
		cur, err := r.storedTimestamp(ctx)
		if err != nil {
			return err
		}
		if cur != nil && cur.Signed.Meta["snapshot.json"] != nil && cur.Signed.Meta["snapshot.json"].Version >= snapVer {
			if cur.Signed.Version > r.timestamp.Signed.Version {
				r.timestamp = cur
			}
			return nil
		}
		ts := metadata.Timestamp(now.Add(r.exp.Timestamp).UTC().Truncate(time.Second))
		// Timestamp versions follow snapshot versions, so two writers
		// naming one snapshot write one version and never go backwards.
		ts.Signed.Version = snapVer
		if cur != nil && cur.Signed.Version >= snapVer {
			ts.Signed.Version = cur.Signed.Version + 1
		}
		mf := metadata.MetaFile(snapVer)
		sum := sha256.Sum256(sJSON)
		mf.Length = int64(len(sJSON))
		mf.Hashes = metadata.Hashes{"sha256": sum[:]}
		ts.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": mf}
		if err := sign(ts, r.keys["timestamp"]); err != nil {
			return err
		}
		tsJSON, err := ts.ToBytes(false)
		if err != nil {
			return err
		}
		if err := putBytes(ctx, r.store, timestampKey, tsJSON); err != nil {
			return err
		}
		r.timestamp = ts
	}
	return fmt.Errorf("timestamp in %s: other writers keep committing; the next commit brings it forward", r.store)
}

// readSnapshot returns the bytes of snapshot version v after checking its
// signature.
func (r *Repo) readSnapshot(ctx context.Context, v int64) ([]byte, error) {
	_, b, err := readSigned[metadata.SnapshotType](ctx, r, "snapshot", versionedKey(v, "snapshot"))
	return b, err
}

// readSigned reads role's metadata at key and checks that the keys root.json
// assigns to role signed it. It returns the parsed metadata and its bytes.
func readSigned[T metadata.Roles](ctx context.Context, r *Repo, role, key string) (*metadata.Metadata[T], []byte, error) {
	b, err := ReadAll(ctx, r.store, key, MaxMetadataSize)
	if err != nil {
		return nil, nil, err
	}
	m, err := new(metadata.Metadata[T]).FromBytes(b)
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", key, err)
	}
	if err := r.root.VerifyDelegate(role, m); err != nil {
		return nil, nil, fmt.Errorf("%s in %s: %w", key, r.store, err)
	}
	return m, b, nil
}

// TimestampBehind reports whether timestamp.json names an older snapshot
// than the newest committed one (a writer died between the two writes).
func (r *Repo) TimestampBehind(ctx context.Context) (bool, error) {
	cur, err := r.storedTimestamp(ctx)
	if err != nil {
		return false, err
	}
	return cur == nil || cur.Signed.Meta["snapshot.json"] == nil || cur.Signed.Meta["snapshot.json"].Version < r.snapshot.Signed.Version, nil
}

// Publish brings timestamp.json forward to the newest committed snapshot
// when it lags (a writer died after its commit point); otherwise it does
// nothing.
func (r *Repo) Publish(ctx context.Context, now time.Time) error {
	behind, err := r.TimestampBehind(ctx)
	if err != nil || !behind {
		return err
	}
	sJSON, err := r.snapshot.ToBytes(false)
	if err != nil {
		return err
	}
	// Re-read the stored bytes: the timestamp signs their hash, and a
	// re-encoding need not match them byte for byte.
	if b, err := ReadAll(ctx, r.store, versionedKey(r.snapshot.Signed.Version, "snapshot"), MaxMetadataSize); err == nil {
		sJSON = b
	}
	return r.forwardTimestamp(ctx, now, r.snapshot.Signed.Version, sJSON)
}

func (r *Repo) storedTimestamp(ctx context.Context) (*metadata.Metadata[metadata.TimestampType], error) {
	ts, _, err := readSigned[metadata.TimestampType](ctx, r, "timestamp", timestampKey)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return ts, err
}

// latestVersions returns the highest snapshot and targets versions stored
// under metadata/ (0 when there are none, or the store cannot list).
func latestVersions(ctx context.Context, store Store) (snapshot, targets int64, err error) {
	list, err := store.List(ctx, metadataPrefix)
	if errors.Is(err, ErrReadOnly) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	for _, o := range list {
		name := strings.TrimPrefix(o.Key, metadataPrefix)
		num, role, ok := strings.Cut(name, ".")
		if !ok {
			continue
		}
		v, err := strconv.ParseInt(num, 10, 64)
		if err != nil || v <= 0 {
			continue
		}
		switch role {
		case "snapshot.json":
			snapshot = max(snapshot, v)
		case "targets.json":
			targets = max(targets, v)
		}
	}
	return snapshot, targets, nil
}

type signable interface {
	Sign(signature.Signer) (*metadata.Signature, error)
	ClearSignatures()
}

func sign(m signable, key crypto.Signer) error {
	if key == nil {
		return errors.New("missing signing key")
	}
	s, err := signature.LoadSigner(key, crypto.Hash(0))
	if err != nil {
		return err
	}
	m.ClearSignatures()
	_, err = m.Sign(s)
	return err
}

func createBytes(ctx context.Context, s Store, key string, b []byte) error {
	if err := PutIfAbsent(ctx, s, key, bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("write %s to %s: %w", key, s, err)
	}
	return nil
}

func putBytes(ctx context.Context, s Store, key string, b []byte) error {
	if err := s.Put(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("write %s to %s: %w", key, s, err)
	}
	return nil
}

// releasesFromTargets lists releases from a targets map, sorted by name
// and then by version (release.CompareVersions).
func releasesFromTargets(targets map[string]*metadata.TargetFiles) ([]Release, error) {
	var out []Release
	for key, tf := range targets {
		rest, ok := strings.CutPrefix(key, "releases/")
		if !ok {
			continue
		}
		name, file, ok := strings.Cut(rest, "/")
		version, isJSON := strings.CutSuffix(file, ".json")
		if !ok || !isJSON || strings.Contains(version, "/") {
			continue
		}
		if release.ValidateName("name", name) != nil || release.ValidateName("version", version) != nil {
			continue
		}
		st, err := customOf(tf)
		if err != nil {
			return nil, err
		}
		out = append(out, Release{Ref: release.Ref{Name: name, Version: version}, EntryState: st, ManifestLength: tf.Length})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return release.CompareVersions(out[i].Version, out[j].Version) < 0
	})
	return out, nil
}

// CopyMetadata copies a catalog's current signed metadata from src to dst:
// every root version (clients walk the chain from the root they pinned),
// the timestamp and the snapshot and targets it names. It checks nothing;
// readers of dst verify it like any catalog.
func CopyMetadata(ctx context.Context, src, dst Store) error {
	copyKey := func(key string) ([]byte, error) {
		b, err := ReadAll(ctx, src, key, MaxMetadataSize)
		if err != nil {
			return nil, err
		}
		return b, putBytes(ctx, dst, key, b)
	}
	for v := int64(1); ; v++ {
		if _, err := copyKey(versionedKey(v, "root")); errors.Is(err, ErrNotFound) && v > 1 {
			break
		} else if err != nil {
			return err
		}
	}
	if _, err := copyKey(RootKey); err != nil {
		return err
	}
	tsJSON, err := copyKey(timestampKey)
	if err != nil {
		return err
	}
	ts, err := metadata.Timestamp().FromBytes(tsJSON)
	if err != nil {
		return fmt.Errorf("parse timestamp: %w", err)
	}
	snapMeta, ok := ts.Signed.Meta["snapshot.json"]
	if !ok {
		return errors.New("timestamp names no snapshot")
	}
	snapJSON, err := copyKey(versionedKey(snapMeta.Version, "snapshot"))
	if err != nil {
		return err
	}
	snap, err := metadata.Snapshot().FromBytes(snapJSON)
	if err != nil {
		return fmt.Errorf("parse snapshot: %w", err)
	}
	tMeta, ok := snap.Signed.Meta["targets.json"]
	if !ok {
		return errors.New("snapshot names no targets")
	}
	_, err = copyKey(versionedKey(tMeta.Version, "targets"))
	return err
}

// Target returns the signed target at key.
func (r *Repo) Target(key string) (*metadata.TargetFiles, bool) {
	tf, ok := r.targets.Signed.Targets[key]
	return tf, ok
}
