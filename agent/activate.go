package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/audit"
	"github.com/swarmship/swarmship/internal/tracing"
)

// verifyFiles checks every file of a downloaded release against the
// SHA-256 in the signed manifest: piece hashes are SHA-1, and this is the
// end-to-end check before anything is activated.
//
// It also makes the files durable: the torrent storage syncs nothing per
// piece, so until here a crash could lose bytes of pieces already recorded
// complete. Each file that matches is fsynced (and its directory) before
// the caller records the release as verified; after a crash before that
// point, the next check fails and the release is downloaded again.
func verifyFiles(ctx context.Context, dir string, m *catalog.Manifest) error {
	return verifyFilesSkipping(ctx, dir, m, nil)
}

// verifyFilesSkipping is verifyFiles for the files for which done is
// false; those for which it is true were verified and synced already
// (while downloading, verifystream.go). Their directories are still synced.
func verifyFilesSkipping(ctx context.Context, dir string, m *catalog.Manifest, done func(i int) bool) error {
	dirs := map[string]bool{dir: true, filepath.Dir(dir): true}
	for i, f := range m.Files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if done != nil && done(i) {
			for d := filepath.Dir(p); len(d) > len(dir) && !dirs[d]; d = filepath.Dir(d) {
				dirs[d] = true
			}
			continue
		}
		fh, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("verify %s: %w", f.Path, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, io.LimitReader(contextReader{ctx, fh}, f.Size+1))
		got := hex.EncodeToString(h.Sum(nil))
		if err == nil && n == f.Size && got == f.SHA256 {
			err = fh.Sync()
		}
		fh.Close()
		if err != nil {
			return fmt.Errorf("verify %s: %w", f.Path, err)
		}
		if n != f.Size {
			return fmt.Errorf("verify %s: %d bytes, the signed manifest says %d", f.Path, n, f.Size)
		}
		if got != f.SHA256 {
			return fmt.Errorf("verify %s: sha256 %s does not match the signed %s", f.Path, got, f.SHA256)
		}
		for d := filepath.Dir(p); len(d) > len(dir) && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	for d := range dirs {
		syncDir(d)
	}
	return nil
}

type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// activate switches current/<name> to the release with one rename of a
// symlink, so readers see the old or the new release and never a mix, then
// runs the post-activate hook.
func (a *Agent) activate(ctx context.Context, d *download, rec *ReleaseState) error {
	name, version := rec.Name, rec.Version
	previous := a.cache.activeVersion(name)
	if previous == version {
		if rec.Phase != PhaseActive {
			// The link moved but the record was not saved (a full disk
			// fails the state write): finish the switch now.
			a.setPhase(rec, PhaseActive, "")
			if err := a.saveRecord(rec); err != nil {
				return fmt.Errorf("activate %s@%s: %w", name, version, err)
			}
			a.demoteOthers(name, version, time.Now())
		}
		return nil
	}
	if err := a.gateActivation(ctx, rec); err != nil {
		return err
	}
	ctx, span := tracing.Start(ctx, "activate", tracing.Release(name, version, rec.InfoHash)...)
	defer span.End()
	rec.HealthFailed = false
	if d != nil && d.variants != nil {
		// The site's copy at the release's normal paths (watermark.go).
		if err := d.variants.assemble(a.cache.releaseDir(name, version)); err != nil {
			return fmt.Errorf("activate %s@%s: %w", name, version, err)
		}
	}
	if err := a.cache.switchCurrent(name, version); err != nil {
		return fmt.Errorf("activate %s@%s: %w", name, version, err)
	}
	now := time.Now()
	a.setPhase(rec, PhaseActive, "")
	rec.Activated, rec.LastUsed = now, now
	rec.HealthPending = a.cfg.Hooks.HealthCheck.Command != ""
	if err := a.saveRecord(rec); err != nil {
		return err
	}
	// The version it replaced stays cached for rollback.
	a.demoteOthers(name, version, now)
	a.log.Info("release activated", "release", name, "version", version, "previous", previous, "infohash", rec.InfoHash)
	if l, err := audit.Open(a.cfg.AuditLog, 0, 0); err == nil {
		err = l.Append(audit.Event{Action: "activate", Release: name, Version: version, InfoHash: rec.InfoHash,
			Tenant: a.cfg.Tenant, Site: a.cfg.Site, Details: map[string]string{"previous": previous}})
		if err != nil {
			a.log.Error("audit log", "err", err)
		}
	}
	if err := a.runHook(ctx, d.manifest, previous); err != nil {
		rec.LastError = err.Error()
		_ = a.saveRecord(rec) // logged; the hook's failure is logged below
		a.log.Error("post-activate hook failed", "release", name, "version", version, "err", err)
	}
	return a.finishHealthCheck(ctx, d.manifest, rec, previous)
}

// demoteOthers marks every other version of name recorded active as
// verified: it stays cached for rollback.
func (a *Agent) demoteOthers(name, version string, now time.Time) {
	recs, _ := a.state.All()
	for _, r := range recs {
		if r.Name == name && r.Version != version && r.Phase == PhaseActive {
			a.setPhase(r, PhaseVerified, "")
			r.LastUsed = now
			_ = a.saveRecord(r) // saveRecord logs a failure
		}
	}
}

// runHook runs hooks.post_activate through /bin/sh with the release's
// facts in its environment.
func (a *Agent) runHook(ctx context.Context, m *catalog.Manifest, previous string) error {
	if a.cfg.Hooks.PostActivate == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Hooks.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", a.cfg.Hooks.PostActivate)
	cmd.Env = append(os.Environ(),
		"SWARMSHIP_RELEASE="+m.Name,
		"SWARMSHIP_VERSION="+m.Version,
		"SWARMSHIP_PREVIOUS_VERSION="+previous,
		"SWARMSHIP_INFOHASH="+m.InfoHash,
		"SWARMSHIP_PATH="+a.cache.releaseDir(m.Name, m.Version),
		"SWARMSHIP_CURRENT="+a.cache.currentLink(m.Name),
		"SWARMSHIP_SITE="+a.cfg.Site,
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("post_activate hook: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

// writeFileAtomic writes b to path through a temp file and rename.
func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o640)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	syncDir(filepath.Dir(path))
	return nil
}

func mustMarshalManifest(m *catalog.Manifest) []byte {
	b, err := catalog.MarshalManifest(m)
	if err != nil {
		panic(err) // a validated manifest always encodes
	}
	return b
}

func metainfoPieceKey(d *download, i int) metainfo.PieceKey {
	return metainfo.PieceKey{InfoHash: d.t.InfoHash(), Index: i}
}

// lazyStore stands in for a catalog store that could not be opened at
// start (S3 endpoint down), and opens it on the next refresh.
type lazyStore struct {
	url string
	s3  catalog.S3Config

	mu    sync.Mutex
	inner catalog.Store
}

var errStoreNotOpen = fmt.Errorf("catalog store not reachable yet")

func (l *lazyStore) open(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inner != nil {
		return nil
	}
	s, err := catalog.OpenStore(ctx, l.url, l.s3)
	if err != nil {
		return err
	}
	l.inner = s
	return nil
}

// get opens the store if it is not open yet (each mirror of a list is
// opened when it is first asked, not only on refresh).
func (l *lazyStore) get(ctx context.Context) (catalog.Store, error) {
	if err := l.open(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", errStoreNotOpen, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inner, nil
}

func (l *lazyStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	s, err := l.get(ctx)
	if err != nil {
		return err
	}
	return s.Put(ctx, key, r, size)
}

func (l *lazyStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	s, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, key)
}

func (l *lazyStore) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	s, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return s.GetRange(ctx, key, off, n)
}

func (l *lazyStore) Stat(ctx context.Context, key string) (catalog.ObjectInfo, error) {
	s, err := l.get(ctx)
	if err != nil {
		return catalog.ObjectInfo{}, err
	}
	return s.Stat(ctx, key)
}

func (l *lazyStore) List(ctx context.Context, prefix string) ([]catalog.ObjectInfo, error) {
	s, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return s.List(ctx, prefix)
}

func (l *lazyStore) Delete(ctx context.Context, key string) error {
	s, err := l.get(ctx)
	if err != nil {
		return err
	}
	return s.Delete(ctx, key)
}

func (l *lazyStore) String() string { return l.url }
