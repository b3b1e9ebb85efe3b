package catalog_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/catalog/storetest"
)

// TestConsistentSnapshotTargets checks the catalog layout against TUF's
// consistent snapshots (root.json says consistent_snapshot: true): every
// signed target is stored under <dir>/<sha256>.<name> and under its plain
// name; go-tuf's own updater with its default settings downloads every
// target; our client reads the hash-prefixed copy; and a catalog from
// before this layout (no hash-prefixed copies) still serves agents, is
// flagged by verify and is repaired by RepairTargetCopies (`catalog
// resign`), after which a default go-tuf client reads it too.
func TestConsistentSnapshotTargets(t *testing.T) {
	gw := storetest.Gateway(t)
	t.Run("Layout", func(t *testing.T) { storetest.EachStore(t, gw, consistentLayout) })
	t.Run("Upgrade", func(t *testing.T) { storetest.EachStore(t, gw, consistentUpgrade) })
}

func consistentLayout(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	c := newTUFCatalog(t, s)
	c.publish(t, "app", "1.0", map[string]string{"bin/app": "one"}, "stable")
	c.publish(t, "app", "1.1", map[string]string{"bin/app": "two"})
	c.publish(t, "web", "2024.1", map[string]string{"index.html": "<p>hi</p>"}, "stable")

	up, fetched := goTUFUpdater(t, c)
	tfs := up.GetTopLevelTargets()
	if len(tfs) != 6 {
		t.Fatalf("catalog signs %d targets, want 6 (manifest and torrent of 3 releases)", len(tfs))
	}
	for p, tf := range tfs {
		keys := catalog.TargetKeys(tf)
		if len(keys) != 2 || keys[1] != p || !strings.HasPrefix(keys[0], p[:strings.LastIndex(p, "/")+1]) {
			t.Fatalf("TargetKeys(%s) = %v", p, keys)
		}
		plain := tufGet(t, s, p)
		if got := tufGet(t, s, keys[0]); !bytes.Equal(got, plain) {
			t.Errorf("%s and %s hold different bytes", keys[0], p)
		}
		// go-tuf's DownloadTarget with PrefixTargetsWithHash on (its default).
		_, b, err := up.DownloadTarget(tf, "", "")
		if err != nil {
			t.Fatalf("go-tuf DownloadTarget(%s): %v", p, err)
		}
		if !bytes.Equal(b, plain) {
			t.Errorf("go-tuf downloaded other bytes for %s", p)
		}
		if !slices.Contains(fetched(), keys[0]) || slices.Contains(fetched(), p) {
			t.Errorf("go-tuf fetched %v for %s; want %s, not the plain name", fetched(), p, keys[0])
		}
	}

	// Our client reads the hash-prefixed copies: it works with every plain
	// name gone.
	for p := range tfs {
		if err := s.Delete(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	cl := c.client(t, t.TempDir())
	for _, r := range tufReleases(t, cl) {
		if _, err := cl.Manifest(ctx, r.Name, r.Version); err != nil {
			t.Errorf("Manifest(%s) without the plain name: %v", r.Ref, err)
		}
		if _, err := cl.Torrent(ctx, r.Name, r.Version); err != nil {
			t.Errorf("Torrent(%s) without the plain name: %v", r.Ref, err)
		}
	}
}

func consistentUpgrade(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	c := newTUFCatalog(t, s)
	c.publish(t, "app", "1.0", map[string]string{"bin/app": "one"}, "stable")
	c.publish(t, "app", "1.1", map[string]string{"bin/app": "two"})
	cl := c.client(t, t.TempDir())
	// Make it a catalog published before hash-prefixed copies existed.
	var hashed []string
	for _, r := range tufReleases(t, cl) {
		for _, key := range []string{catalog.ManifestKey(r.Name, r.Version), catalog.TorrentKey(r.Name, r.Version)} {
			copies, err := cl.TargetCopies(key)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, copies[0]); err != nil {
				t.Fatal(err)
			}
			hashed = append(hashed, copies[0])
		}
	}
	slices.Sort(hashed)

	// Agents still read it (the plain name is checked against the same
	// signed hash); a default TUF client does not; verify says what to do.
	for _, v := range []string{"1.0", "1.1"} {
		if _, err := cl.Manifest(ctx, "app", v); err != nil {
			t.Fatalf("Manifest of an old catalog: %v", err)
		}
		if _, err := cl.Torrent(ctx, "app", v); err != nil {
			t.Fatalf("Torrent of an old catalog: %v", err)
		}
	}
	up, _ := goTUFUpdater(t, c)
	tf := up.GetTopLevelTargets()[catalog.ManifestKey("app", "1.0")]
	var httpErr *metadata.ErrDownloadHTTP
	if _, _, err := up.DownloadTarget(tf, "", ""); !errors.As(err, &httpErr) || httpErr.StatusCode != 404 {
		t.Fatalf("go-tuf on an old catalog: %v; want a 404", err)
	}
	problems, _, err := publish.VerifyCatalog(ctx, cl)
	var keys []string
	for _, p := range problems {
		keys = append(keys, p.Key)
		if !strings.Contains(p.Err, "catalog resign") {
			t.Errorf("problem %q does not say how to repair it", p.Err)
		}
	}
	slices.Sort(keys)
	if err != nil || !slices.Equal(keys, hashed) {
		t.Fatalf("VerifyCatalog = %+v, %v; want the missing %v", problems, err, hashed)
	}

	// A target with no good copy left is reported and not "repaired".
	broken := catalog.TorrentKey("app", "1.1")
	good := tufGet(t, s, broken)
	tufPut(t, s, broken, append(bytes.Clone(good), 'x'))
	repo := c.repo(t)
	written, err := repo.RepairTargetCopies(ctx)
	if err == nil || !strings.Contains(err.Error(), broken) {
		t.Fatalf("repair with no good copy of %s: %v", broken, err)
	}
	if want := slices.DeleteFunc(slices.Clone(hashed), func(k string) bool {
		return strings.HasPrefix(k, "torrents/app/") && strings.HasSuffix(k, ".1.1.torrent")
	}); !slices.Equal(written, want) {
		t.Fatalf("repair wrote %v, want %v", written, want)
	}
	// With the plain copy back, repair completes; a second run writes nothing.
	tufPut(t, s, broken, good)
	if written, err = repo.RepairTargetCopies(ctx); err != nil || len(written) != 1 {
		t.Fatalf("repair = %v, %v; want the one torrent copy", written, err)
	}
	if written, err = repo.RepairTargetCopies(ctx); err != nil || len(written) != 0 {
		t.Fatalf("second repair = %v, %v; want nothing to do", written, err)
	}
	if problems, _, err := publish.VerifyCatalog(ctx, cl); err != nil || len(problems) != 0 {
		t.Fatalf("VerifyCatalog after the repair = %+v, %v", problems, err)
	}
	up, _ = goTUFUpdater(t, c)
	for p, tf := range up.GetTopLevelTargets() {
		if _, _, err := up.DownloadTarget(tf, "", ""); err != nil {
			t.Errorf("go-tuf DownloadTarget(%s) after the repair: %v", p, err)
		}
	}
}

// goTUFUpdater returns go-tuf's updater, refreshed, with its default
// settings (PrefixTargetsWithHash on) reading c's store, and a function
// listing the keys it fetched since the last call.
func goTUFUpdater(t *testing.T, c *tufCatalog) (*updater.Updater, func() []string) {
	t.Helper()
	f := &recordingFetcher{t: t, store: c.store}
	cfg, err := config.New(testStoreURL+"metadata", c.root)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.PrefixTargetsWithHash {
		t.Fatal("go-tuf's default config no longer prefixes targets with their hash")
	}
	cfg.LocalMetadataDir = t.TempDir()
	cfg.LocalTargetsDir = t.TempDir()
	cfg.RemoteTargetsURL = testStoreURL
	cfg.Fetcher = f
	up, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	up.UnsafeSetRefTime(time.Now())
	if err := up.Refresh(); err != nil {
		t.Fatalf("go-tuf Refresh: %v", err)
	}
	if !up.GetTrustedMetadataSet().Root.Signed.ConsistentSnapshot {
		t.Fatal("the catalog root does not say consistent_snapshot: true")
	}
	return up, func() []string {
		f.mu.Lock()
		defer f.mu.Unlock()
		keys := f.keys
		f.keys = nil
		return keys
	}
}

const testStoreURL = "test-store:/"

// recordingFetcher serves go-tuf's downloads from a store and records the
// keys asked for.
type recordingFetcher struct {
	t     *testing.T
	store catalog.Store
	mu    sync.Mutex
	keys  []string
}

func (f *recordingFetcher) DownloadFile(url string, maxLength int64, _ time.Duration) ([]byte, error) {
	key, ok := strings.CutPrefix(url, testStoreURL)
	if !ok {
		return nil, fmt.Errorf("unexpected URL %q", url)
	}
	f.mu.Lock()
	f.keys = append(f.keys, key)
	f.mu.Unlock()
	b, err := catalog.ReadAll(f.t.Context(), f.store, key, maxLength)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, &metadata.ErrDownloadHTTP{StatusCode: 404, URL: url}
	}
	return b, err
}
