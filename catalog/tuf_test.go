package catalog_test

// End-to-end tests of the signed catalog through the agent's read path
// (catalog.Client): publish with publish.Publish, then tamper with the store
// the way a compromised bucket, mirror or signer would, and check that the
// client refuses with a clear message and keeps what it had. Every case runs
// against a directory store and an S3 store (versitygw).

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/catalog/storetest"
	"github.com/swarmship/swarmship/catalog/torrentfile"
	"github.com/swarmship/swarmship/internal/release"
)

func TestTUF(t *testing.T) {
	gw := storetest.Gateway(t)
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, s catalog.Store)
	}{
		{"HappyPath", tufHappyPath},
		{"PayloadChanged", tufPayloadChanged},
		{"TorrentChanged", tufTorrentChanged},
		{"ManifestChanged", tufManifestChanged},
		{"ExpiredTimestamp", tufExpiredTimestamp},
		{"Rollback", tufRollback},
		{"ForeignKeys", tufForeignKeys},
		{"WrongKeysDirectory", tufWrongKeysDirectory},
		{"InitExisting", tufInitExisting},
		{"NotInitialized", tufNotInitialized},
	} {
		t.Run(tc.name, func(t *testing.T) { storetest.EachStore(t, gw, tc.run) })
	}
}

// tufCatalog is a freshly initialized catalog with its keys and root.
type tufCatalog struct {
	store   catalog.Store
	keysDir string
	keys    catalog.Keys
	root    []byte
}

func newTUFCatalog(t *testing.T, s catalog.Store) *tufCatalog {
	t.Helper()
	dir, keys, root := storetest.InitCatalog(t, s)
	return &tufCatalog{store: s, keysDir: dir, keys: keys, root: root}
}

// newForeignCatalog is another catalog, with other keys, in a directory.
func newForeignCatalog(t *testing.T) *tufCatalog {
	t.Helper()
	s, err := catalog.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return newTUFCatalog(t, s)
}

// publish publishes files (release path → content) as name@version.
func (c *tufCatalog) publish(t *testing.T, name, version string, files map[string]string, channels ...string) *publish.PublishResult {
	t.Helper()
	dir := storetest.WritePayload(t, files)
	res, err := publish.Publish(t.Context(), c.store, c.keys, publish.PublishOptions{
		Name: name, Version: version, Paths: []string{dir}, Channels: channels, Workers: 2,
	})
	if err != nil {
		t.Fatalf("publish %s@%s: %v", name, version, err)
	}
	return res
}

// client returns a refreshed client with its trusted state in stateDir.
func (c *tufCatalog) client(t *testing.T, stateDir string) *catalog.Client {
	t.Helper()
	return storetest.Client(t, c.store, c.root, stateDir)
}

func (c *tufCatalog) repo(t *testing.T) *catalog.Repo {
	t.Helper()
	r, err := catalog.OpenRepo(t.Context(), c.store, c.keys, catalog.DefaultExpiry)
	if err != nil {
		t.Fatalf("OpenRepo: %v", err)
	}
	return r
}

func tufGet(t *testing.T, s catalog.Store, key string) []byte {
	t.Helper()
	b, err := catalog.ReadAll(t.Context(), s, key, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tufPut(t *testing.T, s catalog.Store, key string, b []byte) {
	t.Helper()
	if err := s.Put(t.Context(), key, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
}

func tufSameContents(t *testing.T, s catalog.Store, before map[string]string) {
	t.Helper()
	if after := storetest.Contents(t, s); !maps.Equal(before, after) {
		t.Errorf("store changed by a refused operation:\nbefore %v\nafter  %v", before, after)
	}
}

func tufReleases(t *testing.T, cl *catalog.Client) []catalog.Release {
	t.Helper()
	rels, err := cl.Releases()
	if err != nil {
		t.Fatalf("Releases: %v", err)
	}
	return rels
}

func tufWantErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded; want an error containing %q", what, want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("%s error = %q; want it to contain %q", what, err, want)
	}
}

func tufResolve(t *testing.T, cl *catalog.Client, name, channel, version, want string) {
	t.Helper()
	r, err := cl.Resolve(name, channel, version)
	if err != nil {
		t.Fatalf("Resolve(%q, channel %q, version %q): %v", name, channel, version, err)
	}
	if r.Version != want {
		t.Fatalf("Resolve(%q, channel %q, version %q) = %s; want %s", name, channel, version, r.Version, want)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func tufHappyPath(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	c := newTUFCatalog(t, s)
	cl := c.client(t, t.TempDir())
	if rels := tufReleases(t, cl); len(rels) != 0 {
		t.Fatalf("new catalog lists %v", rels)
	}

	files := map[string]string{"bin/app": "binary of 1.2", "README": "hello", "etc/conf.d/a.conf": "x=1\n"}
	res := c.publish(t, "app", "1.2", files, "stable")
	if res.AlreadyPublished {
		t.Error("first publish says AlreadyPublished")
	}
	if err := cl.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	rels := tufReleases(t, cl)
	want := []catalog.Release{{
		Ref:        release.Ref{Name: "app", Version: "1.2"},
		EntryState: catalog.EntryState{Channels: []string{"stable"}},
	}}
	if len(rels) != 1 || rels[0].Ref != want[0].Ref || !slices.Equal(rels[0].Channels, want[0].Channels) || rels[0].Yanked || rels[0].ManifestLength <= 0 {
		t.Fatalf("Releases = %+v; want %+v", rels, want)
	}
	m, err := cl.Manifest(ctx, "app", "1.2")
	if err != nil {
		t.Fatalf("Manifest: %v", err)
	}
	if m.InfoHash != res.InfoHash || len(m.Files) != len(files) || m.TotalSize != res.TotalSize {
		t.Fatalf("manifest %+v does not match publish result %+v", m, res)
	}
	for _, f := range m.Files {
		if content, ok := files[f.Path]; !ok || f.SHA256 != sha256Hex(content) || f.Size != int64(len(content)) {
			t.Errorf("manifest file %+v does not match the payload", f)
		}
	}
	tb, err := cl.Torrent(ctx, "app", "1.2")
	if err != nil {
		t.Fatalf("Torrent: %v", err)
	}
	if _, err := torrentfile.Parse(tb, m); err != nil {
		t.Fatalf("signed torrent does not match its manifest: %v", err)
	}
	tufResolve(t, cl, "app", "stable", "", "1.2")
	tufResolve(t, cl, "app", "", "", "1.2")
	tufResolve(t, cl, "app", "", "1.2", "1.2")

	// A newer version without channels: latest moves, stable stays.
	c.publish(t, "app", "1.10", map[string]string{"bin/app": "binary of 1.10", "README": "hello"})
	if err := cl.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	tufResolve(t, cl, "app", "", "", "1.10") // 1.10 sorts after 1.2
	tufResolve(t, cl, "app", "stable", "", "1.2")
	tufResolve(t, cl, "app", "", "1.2", "1.2")

	// Promote moves the channel pointer.
	r := c.repo(t)
	if err := r.Promote("app", "1.10", "stable"); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := cl.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	tufResolve(t, cl, "app", "stable", "", "1.10")
	if e, err := cl.Entry("app", "1.2"); err != nil || len(e.Channels) != 0 {
		t.Fatalf("after promote, 1.2 = %+v, %v; want no channels", e, err)
	}

	// Yank hides 1.10 from every resolution but it stays listed.
	r = c.repo(t)
	if err := r.Yank("app", "1.10"); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := cl.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Resolve("app", "stable", ""); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("Resolve of a channel whose release is yanked = %v; want ErrNotFound", err)
	}
	tufResolve(t, cl, "app", "", "", "1.2")
	_, err = cl.Resolve("app", "", "1.10")
	tufWantErr(t, "Resolve of a pinned yanked release", err, "app@1.10 is yanked")
	rels = tufReleases(t, cl)
	if len(rels) != 2 || rels[1].Version != "1.10" || !rels[1].Yanked || len(rels[1].Channels) != 0 {
		t.Fatalf("Releases after yank = %+v; want 1.10 listed, yanked, without channels", rels)
	}
	// The yanked release stays verifiable: cached copies must not break.
	if _, err := cl.Manifest(ctx, "app", "1.10"); err != nil {
		t.Fatalf("Manifest of a yanked release: %v", err)
	}
	r = c.repo(t)
	tufWantErr(t, "Promote of a yanked release", r.Promote("app", "1.10", "beta"), "is yanked and cannot be promoted")
	if _, err := cl.Resolve("other", "", ""); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("Resolve of an unknown release = %v; want ErrNotFound", err)
	}

	problems, n, err := publish.VerifyCatalog(ctx, cl)
	if err != nil || n != 2 || len(problems) != 0 {
		t.Fatalf("VerifyCatalog = %v, %d, %v; want no problems in 2 releases", problems, n, err)
	}
}

func tufPayloadChanged(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	c := newTUFCatalog(t, s)
	c.publish(t, "app", "1.0", map[string]string{"bin/app": "0123456789", "README": "hello world", "doc/x": "xx"})
	prefix := catalog.DataPrefix("app", "1.0")
	tufPut(t, s, prefix+"bin/app", []byte("9876543210")) // same size, other bytes
	tufPut(t, s, prefix+"README", []byte("short"))
	if err := s.Delete(ctx, prefix+"doc/x"); err != nil {
		t.Fatal(err)
	}

	cl := c.client(t, t.TempDir())
	problems, n, err := publish.VerifyCatalog(ctx, cl)
	if err != nil || n != 1 {
		t.Fatalf("VerifyCatalog = %v, %d, %v", problems, n, err)
	}
	want := map[string]string{
		prefix + "bin/app": "sha256 ",
		prefix + "README":  "size 5, the manifest says 11",
		prefix + "doc/x":   catalog.ErrNotFound.Error(),
	}
	if len(problems) != len(want) {
		t.Fatalf("VerifyCatalog problems = %+v; want one for each of %v", problems, slices.Collect(maps.Keys(want)))
	}
	for _, p := range problems {
		if p.Release != "app@1.0" || !strings.Contains(p.Err, want[p.Key]) || want[p.Key] == "" {
			t.Errorf("problem %+v; want key in %v with error containing the matching text", p, want)
		}
	}
	// Signed metadata is untouched, so the manifest and torrent still verify.
	if _, err := cl.Manifest(ctx, "app", "1.0"); err != nil {
		t.Fatalf("Manifest after a payload change: %v", err)
	}
	if _, err := cl.Torrent(ctx, "app", "1.0"); err != nil {
		t.Fatalf("Torrent after a payload change: %v", err)
	}
}

func tufTorrentChanged(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	c := newTUFCatalog(t, s)
	c.publish(t, "app", "1.0", map[string]string{"bin/app": "one"})
	c.publish(t, "app", "1.1", map[string]string{"bin/app": "two"})
	key := catalog.TorrentKey("app", "1.0")
	good := tufGet(t, s, key)
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x20
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"same length", flipped},
		{"longer", append(bytes.Clone(good), "3:pad"...)},
		{"much longer", append(bytes.Clone(good), make([]byte, 1<<20)...)},
		{"shorter", good[:len(good)-1]},
		{"empty", nil},
		{"other release's torrent", tufGet(t, s, catalog.TorrentKey("app", "1.1"))},
	} {
		tufEachCopy(t, s, key, good, tc.name, tc.b, func(t *testing.T, bad []string) {
			cl := c.client(t, t.TempDir()) // metadata is intact
			_, err := cl.Torrent(ctx, "app", "1.0")
			if len(bad) == 2 {
				tufWantErr(t, "Torrent of a changed torrent", err, bad[0]+" in "+s.String()+" does not match the signed catalog")
			} else if err != nil {
				t.Fatalf("Torrent with one good copy left: %v", err)
			}
			if _, err := cl.Manifest(ctx, "app", "1.0"); err != nil {
				t.Fatalf("Manifest beside a changed torrent: %v", err)
			}
			tufWantProblems(t, cl, bad)
		})
	}
	cl := c.client(t, t.TempDir())
	if _, err := cl.Torrent(ctx, "app", "1.0"); err != nil {
		t.Fatalf("Torrent after restoring it: %v", err)
	}
}

func tufManifestChanged(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	c := newTUFCatalog(t, s)
	c.publish(t, "app", "1.0", map[string]string{"bin/app": "one", "README": "hi"})
	c.publish(t, "app", "1.1", map[string]string{"bin/app": "two", "README": "hi"})
	key := catalog.ManifestKey("app", "1.0")
	good := tufGet(t, s, key)
	m, err := catalog.ParseManifest(good)
	if err != nil {
		t.Fatal(err)
	}
	// A valid manifest of the same length that names other file contents.
	swapped := *m
	swapped.Files = slices.Clone(m.Files)
	swapped.Files[0].SHA256 = sha256Hex("evil")
	sameLen, err := catalog.MarshalManifest(&swapped)
	if err != nil {
		t.Fatal(err)
	}
	if len(sameLen) != len(good) {
		t.Fatalf("test setup: forged manifest is %d bytes, want %d", len(sameLen), len(good))
	}
	labelled := *m
	labelled.Labels = map[string]string{"evil": "yes"}
	longer, err := catalog.MarshalManifest(&labelled)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"same length other hashes", sameLen},
		{"longer", longer},
		{"truncated", good[:len(good)/2]},
		{"other release's manifest", tufGet(t, s, catalog.ManifestKey("app", "1.1"))},
	} {
		tufEachCopy(t, s, key, good, tc.name, tc.b, func(t *testing.T, bad []string) {
			cl := c.client(t, t.TempDir())
			_, err := cl.Manifest(ctx, "app", "1.0")
			if len(bad) == 2 {
				tufWantErr(t, "Manifest of a changed manifest", err, bad[0]+" in "+s.String()+" does not match the signed catalog")
			} else if err != nil {
				t.Fatalf("Manifest with one good copy left: %v", err)
			}
			if _, err := cl.Manifest(ctx, "app", "1.1"); err != nil {
				t.Fatalf("Manifest of the untouched release: %v", err)
			}
			tufWantProblems(t, cl, bad)
		})
	}
}

// tufEachCopy runs fn once with b stored in place of the target copy
// under its hash-prefixed name, once under its plain name, and once under
// both; bad lists the keys changed, hash-prefixed first. good comes back
// after each run.
func tufEachCopy(t *testing.T, s catalog.Store, key string, good []byte, name string, b []byte, fn func(t *testing.T, bad []string)) {
	t.Helper()
	hashed := catalog.HashedTargetKey(key, sha256Hex(string(good)))
	if !bytes.Equal(tufGet(t, s, hashed), good) {
		t.Fatalf("%s does not hold the bytes of %s", hashed, key)
	}
	for _, tc := range []struct {
		which string
		bad   []string
	}{
		{"hashed", []string{hashed}},
		{"plain", []string{key}},
		{"both", []string{hashed, key}},
	} {
		t.Run(name+"/"+tc.which, func(t *testing.T) {
			for _, k := range tc.bad {
				tufPut(t, s, k, b)
				defer tufPut(t, s, k, good)
			}
			fn(t, tc.bad)
		})
	}
}

// tufWantProblems checks that catalog verify reports exactly the keys bad.
func tufWantProblems(t *testing.T, cl *catalog.Client, bad []string) {
	t.Helper()
	problems, _, err := publish.VerifyCatalog(t.Context(), cl)
	var got []string
	for _, p := range problems {
		got = append(got, p.Key)
	}
	if err != nil || !slices.Equal(got, bad) {
		t.Fatalf("VerifyCatalog = %+v, %v; want problems with exactly %v", problems, err, bad)
	}
}

func tufExpiredTimestamp(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	c := newTUFCatalog(t, s)
	c.publish(t, "app", "1.0", map[string]string{"bin/app": "one"}, "stable")
	cl := c.client(t, t.TempDir())
	before := tufReleases(t, cl)

	// Sign a new timestamp that expired yesterday (a frozen or stale
	// catalog looks like this to agents).
	r := c.repo(t)
	if err := r.Resign(ctx, time.Now().Add(-catalog.DefaultExpiry.Timestamp-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	err := cl.Refresh(ctx)
	tufWantErr(t, "Refresh of an expired catalog", err, "metadata expired")
	if !errors.As(err, new(*metadata.ErrExpiredMetadata)) {
		t.Errorf("Refresh error %v does not wrap ErrExpiredMetadata", err)
	}
	// The client keeps serving what it had.
	if after := tufReleases(t, cl); !reflect.DeepEqual(after, before) {
		t.Fatalf("Releases after a failed Refresh = %+v; want %+v", after, before)
	}
	tufResolve(t, cl, "app", "stable", "", "1.0")
	if _, err := cl.Manifest(ctx, "app", "1.0"); err != nil {
		t.Fatalf("Manifest after a failed Refresh: %v", err)
	}
	// A new agent has nothing to fall back on.
	fresh, err := catalog.NewClient(s, c.root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tufWantErr(t, "first Refresh of an expired catalog", fresh.Refresh(ctx), "expired")
	_, err = fresh.Releases()
	tufWantErr(t, "Releases without a good Refresh", err, "Refresh first")

	// Re-signing recovers both.
	if err := r.Resign(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*catalog.Client{cl, fresh} {
		if err := cl.Refresh(ctx); err != nil {
			t.Fatalf("Refresh after resign: %v", err)
		}
		if after := tufReleases(t, cl); !reflect.DeepEqual(after, before) {
			t.Fatalf("Releases after resign = %+v; want %+v", after, before)
		}
	}
}

// tufVersions returns the store's timestamp, snapshot and targets versions.
func tufVersions(t *testing.T, s catalog.Store) (ts, snap, targets int64) {
	t.Helper()
	tsMeta, err := metadata.Timestamp().FromBytes(tufGet(t, s, "metadata/timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	snap = tsMeta.Signed.Meta["snapshot.json"].Version
	snapMeta, err := metadata.Snapshot().FromBytes(tufGet(t, s, fmt.Sprintf("metadata/%d.snapshot.json", snap)))
	if err != nil {
		t.Fatal(err)
	}
	return tsMeta.Signed.Version, snap, snapMeta.Signed.Meta["targets.json"].Version
}

func tufSign(t *testing.T, m interface {
	Sign(signature.Signer) (*metadata.Signature, error)
	ClearSignatures()
}, key ed25519.PrivateKey) {
	t.Helper()
	signer, err := signature.LoadSigner(key, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	m.ClearSignatures()
	if _, err := m.Sign(signer); err != nil {
		t.Fatal(err)
	}
}

// forgeTimestamp writes a timestamp of the given version naming the stored
// snapshot snapVersion, signed by key.
func forgeTimestamp(t *testing.T, s catalog.Store, key ed25519.PrivateKey, version, snapVersion int64) {
	t.Helper()
	snapJSON := tufGet(t, s, fmt.Sprintf("metadata/%d.snapshot.json", snapVersion))
	ts := metadata.Timestamp(time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second))
	ts.Signed.Version = version
	mf := metadata.MetaFile(snapVersion)
	sum := sha256.Sum256(snapJSON)
	mf.Length = int64(len(snapJSON))
	mf.Hashes = metadata.Hashes{"sha256": sum[:]}
	ts.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": mf}
	tufSign(t, ts, key)
	b, err := ts.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	tufPut(t, s, "metadata/timestamp.json", b)
}

func tufRollback(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	c := newTUFCatalog(t, s)
	c.publish(t, "app", "1.0", map[string]string{"bin/app": "one"}, "stable")
	oldTS := tufGet(t, s, "metadata/timestamp.json")
	c.publish(t, "app", "2.0", map[string]string{"bin/app": "two"}, "stable")
	goodTS := tufGet(t, s, "metadata/timestamp.json")
	state := t.TempDir()
	cl := c.client(t, state)
	before := tufReleases(t, cl)
	if len(before) != 2 {
		t.Fatalf("Releases = %+v", before)
	}
	tsVer, snapVer, targetsVer := tufVersions(t, s)
	if snapVer < 2 || targetsVer < 2 {
		t.Fatalf("test setup: snapshot %d, targets %d; want at least 2", snapVer, targetsVer)
	}

	check := func(t *testing.T, want string) {
		t.Helper()
		err := cl.Refresh(ctx)
		tufWantErr(t, "Refresh", err, "rollback refused")
		tufWantErr(t, "Refresh", err, want)
		if !errors.As(err, new(*metadata.ErrBadVersionNumber)) {
			t.Errorf("Refresh error %v does not wrap ErrBadVersionNumber", err)
		}
		if after := tufReleases(t, cl); !reflect.DeepEqual(after, before) {
			t.Fatalf("Releases after a refused rollback = %+v; want %+v", after, before)
		}
		tufResolve(t, cl, "app", "stable", "", "2.0")
	}

	t.Run("old timestamp put back", func(t *testing.T) {
		tufPut(t, s, "metadata/timestamp.json", oldTS)
		defer tufPut(t, s, "metadata/timestamp.json", goodTS)
		check(t, "timestamp version")
		// Also after a restart: the trusted versions live in the state dir.
		restarted, err := catalog.NewClient(s, c.root, state)
		if err != nil {
			t.Fatal(err)
		}
		tufWantErr(t, "Refresh after restart", restarted.Refresh(ctx), "rollback refused")
	})
	t.Run("new timestamp naming an old snapshot", func(t *testing.T) {
		// Someone holding only the timestamp key cannot roll back either.
		forgeTimestamp(t, s, c.keys["timestamp"], tsVer+1, snapVer-1)
		defer tufPut(t, s, "metadata/timestamp.json", goodTS)
		check(t, "snapshot version")
	})
	t.Run("new snapshot naming old targets", func(t *testing.T) {
		snap := metadata.Snapshot(time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second))
		snap.Signed.Version = snapVer + 5
		snap.Signed.Meta = map[string]*metadata.MetaFiles{"targets.json": metadata.MetaFile(targetsVer - 1)}
		tufSign(t, snap, c.keys["snapshot"])
		b, err := snap.ToBytes(false)
		if err != nil {
			t.Fatal(err)
		}
		forgedKey := fmt.Sprintf("metadata/%d.snapshot.json", snapVer+5)
		tufPut(t, s, forgedKey, b)
		defer s.Delete(ctx, forgedKey)
		forgeTimestamp(t, s, c.keys["timestamp"], tsVer+5, snapVer+5)
		defer tufPut(t, s, "metadata/timestamp.json", goodTS)
		check(t, "targets.json version")
	})
}

func tufForeignKeys(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	c := newTUFCatalog(t, s)
	c.publish(t, "app", "1.0", map[string]string{"bin/app": "one"}, "stable")
	other := newForeignCatalog(t)
	other.publish(t, "app", "6.6.6", map[string]string{"bin/app": "evil"}, "stable")
	goodTS := tufGet(t, s, "metadata/timestamp.json")
	state := t.TempDir()
	cl := c.client(t, state)
	before := tufReleases(t, cl)
	tsVer, snapVer, _ := tufVersions(t, s)

	check := func(t *testing.T, cl *catalog.Client, hadState bool) {
		t.Helper()
		err := cl.Refresh(ctx)
		tufWantErr(t, "Refresh", err, "not signed by trusted keys")
		if !errors.As(err, new(*metadata.ErrUnsignedMetadata)) {
			t.Errorf("Refresh error %v does not wrap ErrUnsignedMetadata", err)
		}
		if !hadState {
			return
		}
		if after := tufReleases(t, cl); !reflect.DeepEqual(after, before) {
			t.Fatalf("Releases after a refused refresh = %+v; want %+v", after, before)
		}
	}
	freshClient := func(t *testing.T, root []byte) *catalog.Client {
		cl, err := catalog.NewClient(s, root, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}

	t.Run("timestamp of another catalog", func(t *testing.T) {
		tufPut(t, s, "metadata/timestamp.json", tufGet(t, other.store, "metadata/timestamp.json"))
		defer tufPut(t, s, "metadata/timestamp.json", goodTS)
		check(t, cl, true)
		check(t, freshClient(t, c.root), false)
	})
	t.Run("timestamp signed by another key", func(t *testing.T) {
		forgeTimestamp(t, s, other.keys["timestamp"], tsVer+1, snapVer)
		defer tufPut(t, s, "metadata/timestamp.json", goodTS)
		check(t, cl, true)
	})
	t.Run("timestamp signed by the targets key", func(t *testing.T) {
		forgeTimestamp(t, s, c.keys["targets"], tsVer+1, snapVer)
		defer tufPut(t, s, "metadata/timestamp.json", goodTS)
		check(t, cl, true)
	})
	t.Run("timestamp without signatures", func(t *testing.T) {
		ts, err := metadata.Timestamp().FromBytes(goodTS)
		if err != nil {
			t.Fatal(err)
		}
		ts.Signed.Version = tsVer + 1
		ts.ClearSignatures()
		b, err := ts.ToBytes(false)
		if err != nil {
			t.Fatal(err)
		}
		tufPut(t, s, "metadata/timestamp.json", b)
		defer tufPut(t, s, "metadata/timestamp.json", goodTS)
		check(t, cl, true)
	})
	t.Run("root rotation to another catalog's keys", func(t *testing.T) {
		// A new root must be signed by the keys of the root it replaces.
		foreign, err := metadata.Root().FromBytes(other.root)
		if err != nil {
			t.Fatal(err)
		}
		foreign.Signed.Version = 2
		tufSign(t, foreign, other.keys["root"])
		b, err := foreign.ToBytes(false)
		if err != nil {
			t.Fatal(err)
		}
		tufPut(t, s, "metadata/2.root.json", b)
		defer s.Delete(ctx, "metadata/2.root.json")
		check(t, cl, true)
		check(t, freshClient(t, c.root), false)
	})
	t.Run("agent pinned to another catalog", func(t *testing.T) {
		check(t, freshClient(t, other.root), false)
	})
	if err := cl.Refresh(ctx); err != nil {
		t.Fatalf("Refresh after restoring the catalog: %v", err)
	}
}

func tufWrongKeysDirectory(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	c := newTUFCatalog(t, s)
	c.publish(t, "app", "1.0", map[string]string{"bin/app": "one"})
	other := newForeignCatalog(t)
	before := storetest.Contents(t, s)

	otherKeys, err := catalog.LoadKeys(other.keysDir, catalog.Roles...)
	if err != nil {
		t.Fatal(err)
	}
	mixed := maps.Clone(c.keys)
	mixed["targets"] = other.keys["targets"]
	for _, tc := range []struct {
		name string
		keys catalog.Keys
		want string
	}{
		{"all keys of another catalog", otherKeys, "wrong keys directory"},
		{"another catalog's targets key", mixed, "the targets key"},
		{"only another catalog's timestamp key", catalog.Keys{"timestamp": other.keys["timestamp"]}, "is not the catalog's timestamp key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := catalog.OpenRepo(ctx, s, tc.keys, catalog.DefaultExpiry)
			tufWantErr(t, "OpenRepo", err, tc.want)
			tufWantErr(t, "OpenRepo", err, "wrong keys directory")
			tufSameContents(t, s, before)
		})
	}
	// The catalog still works with its own keys.
	r := c.repo(t)
	if rels, err := r.Releases(); err != nil || len(rels) != 1 {
		t.Fatalf("Releases = %v, %v", rels, err)
	}
}

func tufInitExisting(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	c := newTUFCatalog(t, s)
	c.publish(t, "app", "1.0", map[string]string{"bin/app": "one"})
	before := storetest.Contents(t, s)
	other := newForeignCatalog(t)
	for _, keys := range []catalog.Keys{c.keys, other.keys} {
		_, err := catalog.Init(ctx, s, keys, catalog.DefaultExpiry, time.Now())
		tufWantErr(t, "Init of an existing catalog", err, "already holds a catalog")
		tufSameContents(t, s, before)
	}
	cl := c.client(t, t.TempDir())
	if rels := tufReleases(t, cl); len(rels) != 1 {
		t.Fatalf("Releases after refused Inits = %+v", rels)
	}
}

func tufNotInitialized(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	keys, err := catalog.GenerateKeys(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = catalog.OpenRepo(ctx, s, keys, catalog.DefaultExpiry)
	if !errors.Is(err, catalog.ErrNotInitialized) {
		t.Fatalf("OpenRepo of an empty store = %v; want ErrNotInitialized", err)
	}
	other := newForeignCatalog(t)
	cl, err := catalog.NewClient(s, other.root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tufWantErr(t, "Refresh of an empty store", cl.Refresh(ctx), "metadata/timestamp.json")
	if list, err := s.List(ctx, ""); err != nil || len(list) != 0 {
		t.Fatalf("store after refused operations = %v, %v; want empty", list, err)
	}
}

// TestTUFKeyFiles checks key generation and loading; it needs no store.
func TestTUFKeyFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	keys, err := catalog.GenerateKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("keys directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
	contents := map[string][]byte{}
	for _, role := range catalog.Roles {
		p := filepath.Join(dir, role+".key")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v; want 0600", p, fi.Mode().Perm())
		}
		contents[role], _ = os.ReadFile(p)
		if keys[role] == nil {
			t.Errorf("no %s key returned", role)
		}
	}
	sameFiles := func(t *testing.T) {
		t.Helper()
		for role, want := range contents {
			if got, _ := os.ReadFile(filepath.Join(dir, role+".key")); !bytes.Equal(got, want) {
				t.Errorf("%s key changed", role)
			}
		}
	}

	loaded, err := catalog.LoadKeys(dir, catalog.Roles...)
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range catalog.Roles {
		if !loaded[role].Equal(keys[role]) {
			t.Errorf("loaded %s key differs from the generated one", role)
		}
	}

	t.Run("GenerateKeys refuses to overwrite", func(t *testing.T) {
		_, err := catalog.GenerateKeys(dir)
		if !errors.Is(err, catalog.ErrKeysExist) {
			t.Fatalf("GenerateKeys over existing keys = %v; want ErrKeysExist", err)
		}
		sameFiles(t)
	})
	t.Run("GenerateKeys refuses a partial directory", func(t *testing.T) {
		partial := t.TempDir()
		if err := os.WriteFile(filepath.Join(partial, "snapshot.key"), []byte("keep me"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := catalog.GenerateKeys(partial)
		if !errors.Is(err, catalog.ErrKeysExist) || !strings.Contains(err.Error(), "snapshot.key") {
			t.Fatalf("GenerateKeys = %v; want ErrKeysExist naming snapshot.key", err)
		}
		entries, _ := os.ReadDir(partial)
		if len(entries) != 1 {
			t.Fatalf("GenerateKeys wrote files before refusing: %v", entries)
		}
	})
	for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o660} {
		t.Run(fmt.Sprintf("LoadKeys refuses mode %04o", mode), func(t *testing.T) {
			p := filepath.Join(dir, "targets.key")
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
			defer os.Chmod(p, 0o600)
			_, err := catalog.LoadKeys(dir, "targets", "snapshot", "timestamp")
			tufWantErr(t, "LoadKeys", err, "chmod 600")
			tufWantErr(t, "LoadKeys", err, "targets.key")
			// Roles not asked for are not read.
			if _, err := catalog.LoadKeys(dir, "root"); err != nil {
				t.Fatalf("LoadKeys(root) beside a loose targets key: %v", err)
			}
		})
	}
	t.Run("LoadKeys errors", func(t *testing.T) {
		bad := t.TempDir()
		if err := os.WriteFile(filepath.Join(bad, "root.key"), []byte("not a key"), 0o600); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(bad, "root.key")
		for _, tc := range []struct {
			dir, role, want string
		}{
			{filepath.Join(bad, "missing"), "root", "keys directory"},
			{file, "root", "is not a directory"},
			{bad, "timestamp", "has no timestamp key (timestamp.key): is it the right directory?"},
			{bad, "root", "is not a PEM private key"},
		} {
			_, err := catalog.LoadKeys(tc.dir, tc.role)
			tufWantErr(t, "LoadKeys("+tc.dir+")", err, tc.want)
		}
	})
	sameFiles(t)
}
