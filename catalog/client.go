package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// storeURLBase is the pseudo URL under which the TUF updater asks our
// fetcher for metadata; the fetcher maps it back to store keys.
const storeURLBase = "swarmship-store:/"

// storeFetcher lets the TUF updater read metadata from any Store. The
// updater's fetcher interface has no context, so the Client sets one for
// the duration of each Refresh.
type storeFetcher struct {
	mu    sync.Mutex
	ctx   context.Context
	store Store
	// timeout bounds each file (0: none); timedOut records that one hit it.
	timeout  time.Duration
	timedOut bool
}

func (f *storeFetcher) DownloadFile(urlPath string, maxLength int64, _ time.Duration) ([]byte, error) {
	key, ok := strings.CutPrefix(urlPath, storeURLBase)
	if !ok {
		return nil, fmt.Errorf("unexpected metadata URL %q", urlPath)
	}
	f.mu.Lock()
	ctx, store, timeout := f.ctx, f.store, f.timeout
	f.mu.Unlock()
	var b []byte
	var err error
	if timeout > 0 {
		// The timeout is for silence, not for the whole file: a big
		// targets.json over a slow link takes longer, a hung mirror
		// sends nothing.
		actx, cancel := context.WithCancelCause(ctx)
		timer := time.AfterFunc(timeout, func() { cancel(errNoAnswer) })
		b, err = readAllWatched(actx, store, key, maxLength, func() { timer.Reset(timeout) })
		timer.Stop()
		if err != nil && errors.Is(context.Cause(actx), errNoAnswer) {
			f.mu.Lock()
			f.timedOut = true
			f.mu.Unlock()
			err = fmt.Errorf("%s: no answer for %s: %w", key, timeout, err)
		}
		cancel(nil)
	} else {
		b, err = ReadAll(ctx, store, key, maxLength)
	}
	if errors.Is(err, ErrNotFound) {
		// The updater ends its search for newer roots on an HTTP 404.
		return nil, fmt.Errorf("%s: %w", key, &metadata.ErrDownloadHTTP{StatusCode: 404, URL: key})
	}
	return b, err
}

// readAllWatched is ReadAll calling progress whenever bytes arrive.
func readAllWatched(ctx context.Context, s Store, key string, limit int64, progress func()) ([]byte, error) {
	rc, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	progress()
	b, err := io.ReadAll(io.LimitReader(progressReader{rc, progress}, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", key, s, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s in %s is larger than the %d-byte limit", key, s, limit)
	}
	return b, nil
}

type progressReader struct {
	r        io.Reader
	progress func()
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.progress()
	}
	return n, err
}

// Client reads a catalog the way agents do: every byte it returns has been
// checked against TUF metadata that chains to a pinned root.
//
// Trusted metadata is kept in a local directory, so a Client refuses
// metadata older than what it saw before (rollback), even across restarts.
type Client struct {
	store    Store
	localDir string
	fetcher  *storeFetcher
	pinned   []byte

	mu      sync.Mutex
	updater *updater.Updater
	now     func() time.Time
}

// NewClient prepares a client for store, trusting pinnedRoot on first use
// and whatever newer root it has verified since (kept in localDir).
func NewClient(store Store, pinnedRoot []byte, localDir string) (*Client, error) {
	if _, err := metadata.Root().FromBytes(pinnedRoot); err != nil {
		return nil, fmt.Errorf("pinned root: %w", err)
	}
	if err := os.MkdirAll(localDir, 0o750); err != nil {
		return nil, fmt.Errorf("catalog state directory: %w", err)
	}
	return &Client{
		store:    store,
		localDir: localDir,
		fetcher:  &storeFetcher{store: store},
		pinned:   pinnedRoot,
		now:      time.Now,
	}, nil
}

// Store returns the store the client reads.
func (c *Client) Store() Store { return c.store }

// Refresh fetches and verifies the newest metadata. On error the client
// keeps the metadata it had, and callers keep serving what they have.
//
// Over Mirrors, each mirror is tried in turn until one serves metadata
// that verifies (see refreshMirrors).
func (c *Client) Refresh(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.store.(*Mirrors); ok {
		return c.refreshMirrors(ctx, m)
	}
	_, err := c.refreshFrom(ctx, c.store, 0)
	return err
}

// refreshFrom runs one TUF update against store, each file bounded by
// timeout (0: by ctx only); timedOut says whether a file hit it. c.mu is
// held.
func (c *Client) refreshFrom(ctx context.Context, store Store, timeout time.Duration) (timedOut bool, err error) {
	c.fetcher.mu.Lock()
	c.fetcher.ctx, c.fetcher.store, c.fetcher.timeout, c.fetcher.timedOut = ctx, store, timeout, false
	c.fetcher.mu.Unlock()
	defer func() {
		c.fetcher.mu.Lock()
		timedOut = c.fetcher.timedOut
		c.fetcher.mu.Unlock()
	}()

	trusted := c.pinned
	if b, err := os.ReadFile(filepath.Join(c.localDir, "root.json")); err == nil {
		trusted = b
	}
	cfg, err := config.New(storeURLBase+"metadata", trusted)
	if err != nil {
		return false, err
	}
	cfg.LocalMetadataDir = c.localDir
	cfg.LocalTargetsDir = filepath.Join(c.localDir, "targets")
	cfg.Fetcher = c.fetcher
	cfg.TimestampMaxLength = 64 << 10
	cfg.SnapshotMaxLength = MaxMetadataSize
	cfg.TargetsMaxLength = MaxMetadataSize
	up, err := updater.New(cfg)
	if err != nil {
		return false, fmt.Errorf("catalog %s: trusted root: %w", store, err)
	}
	up.UnsafeSetRefTime(c.now())
	if err := up.Refresh(); err != nil {
		return false, fmt.Errorf("catalog %s: %w", store, describeTUFError(err))
	}
	c.updater = up
	return false, nil
}

// describeTUFError turns the updater's errors into messages an operator
// can act on, keeping the original for errors.Is/As.
func describeTUFError(err error) error {
	var expired *metadata.ErrExpiredMetadata
	var badVersion *metadata.ErrBadVersionNumber
	var unsigned *metadata.ErrUnsignedMetadata
	var lengthOrHash *metadata.ErrLengthOrHashMismatch
	var missing *metadata.ErrDownloadHTTP
	switch {
	case errors.As(err, &missing) && missing.StatusCode == 404:
		return fmt.Errorf("no catalog metadata here (%s is missing): wrong catalog URL, or run `swarmship catalog init`: %w", missing.URL, err)
	case errors.As(err, &expired):
		return fmt.Errorf("metadata expired (re-sign with `swarmship catalog resign`): %w", err)
	case errors.As(err, &badVersion):
		return fmt.Errorf("metadata is older than a version already trusted (rollback refused): %w", err)
	case errors.As(err, &unsigned):
		return fmt.Errorf("metadata is not signed by trusted keys: %w", err)
	case errors.As(err, &lengthOrHash):
		return fmt.Errorf("metadata does not match its signed length or hash: %w", err)
	}
	return err
}

func (c *Client) current() (*updater.Updater, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.updater == nil {
		return nil, errors.New("catalog not loaded: Refresh first")
	}
	return c.updater, nil
}

// Releases lists every release in the signed catalog, yanked ones included.
func (c *Client) Releases() ([]Release, error) {
	up, err := c.current()
	if err != nil {
		return nil, err
	}
	return releasesFromTargets(up.GetTopLevelTargets())
}

// TargetNames lists the store keys of every signed target (manifests,
// torrents, other signed documents) in the loaded catalog: each target's
// hash-prefixed and plain copies (TargetKeys).
func (c *Client) TargetNames() ([]string, error) {
	up, err := c.current()
	if err != nil {
		return nil, err
	}
	targets := up.GetTopLevelTargets()
	names := make([]string, 0, 2*len(targets))
	for _, tf := range targets {
		names = append(names, TargetKeys(tf)...)
	}
	return names, nil
}

// Entry returns the signed state of one release.
func (c *Client) Entry(name, version string) (Release, error) {
	rels, err := c.Releases()
	if err != nil {
		return Release{}, err
	}
	for _, r := range rels {
		if r.Name == name && r.Version == version {
			return r, nil
		}
	}
	return Release{}, fmt.Errorf("%s@%s: %w", name, version, ErrNotFound)
}

// Target fetches the signed target at key and checks its length and hash.
// It reads the target's hash-prefixed name, as the TUF specification says
// for a root with consistent snapshots, and falls back to the plain name
// when that copy is missing or does not verify (catalogs published before
// targets were stored under both names): the bytes are checked against the
// signed length and hash either way, so the fallback trusts nothing more.
func (c *Client) Target(ctx context.Context, key string, limit int64) ([]byte, error) {
	tf, keys, err := c.targetKeys(key, limit)
	if err != nil {
		return nil, err
	}
	m, ok := c.store.(*Mirrors)
	if !ok {
		return readTarget(ctx, c.store, tf, keys)
	}
	// A mirror whose copy does not verify is as bad as one that errors.
	var b []byte
	done, err := m.attempt(ctx, func(ctx context.Context, s Store, touch func()) error {
		var err error
		b, err = readTarget(ctx, watchedStore{s, touch}, tf, keys)
		return err
	})
	if err != nil {
		return nil, err
	}
	done()
	return b, nil
}

// readTarget reads the first of keys in s that verifies against tf.
func readTarget(ctx context.Context, s Store, tf *metadata.TargetFiles, keys []string) ([]byte, error) {
	var first error
	for _, k := range keys {
		b, err := readTargetCopy(ctx, s, tf, k)
		if err == nil {
			return b, nil
		}
		// A missing copy says least: a later copy's failure is the news.
		if first == nil || errors.Is(first, ErrNotFound) {
			first = err
		}
	}
	return nil, first
}

// TargetCopies returns the store keys that hold the signed target key, the
// one Target reads first before the other (see TargetKeys).
func (c *Client) TargetCopies(key string) ([]string, error) {
	_, keys, err := c.targetKeys(key, -1)
	return keys, err
}

// TargetCopy reads target key from storeKey, one of TargetCopies(key), and
// checks it against the signed length and hash, with no fallback: `catalog
// verify` checks each copy this way.
func (c *Client) TargetCopy(ctx context.Context, key, storeKey string, limit int64) ([]byte, error) {
	tf, keys, err := c.targetKeys(key, limit)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(keys, storeKey) {
		return nil, fmt.Errorf("%s is not where target %s is stored", storeKey, key)
	}
	return readTargetCopy(ctx, c.store, tf, storeKey)
}

// targetKeys looks up the signed target key and where it is stored; a
// limit >= 0 refuses targets signed as longer than that.
func (c *Client) targetKeys(key string, limit int64) (*metadata.TargetFiles, []string, error) {
	up, err := c.current()
	if err != nil {
		return nil, nil, err
	}
	tf, ok := up.GetTopLevelTargets()[key]
	if !ok {
		return nil, nil, fmt.Errorf("%s is not a signed target of the catalog: %w", key, ErrNotFound)
	}
	if limit >= 0 && tf.Length > limit {
		return nil, nil, fmt.Errorf("%s: signed length %d exceeds the %d-byte limit", key, tf.Length, limit)
	}
	if !up.GetTrustedMetadataSet().Root.Signed.ConsistentSnapshot {
		return tf, []string{tf.Path}, nil
	}
	return tf, TargetKeys(tf), nil
}

// Manifest fetches and verifies the manifest of name@version.
func (c *Client) Manifest(ctx context.Context, name, version string) (*Manifest, error) {
	b, err := c.Target(ctx, ManifestKey(name, version), MaxManifestSize)
	if err != nil {
		return nil, err
	}
	m, err := ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("%s@%s: %w", name, version, err)
	}
	if m.Name != name || m.Version != version {
		return nil, fmt.Errorf("manifest at %s names %s: refusing a mix-up", ManifestKey(name, version), m.Ref())
	}
	return m, nil
}

// Torrent fetches and verifies the .torrent of name@version.
func (c *Client) Torrent(ctx context.Context, name, version string) ([]byte, error) {
	return c.Target(ctx, TorrentKey(name, version), MaxTorrentSize)
}

// Resolve picks the release a subscription means: a pinned version, the
// version a channel points at, or else the newest version that is not
// yanked. Yanked releases are never returned.
func (c *Client) Resolve(name, channel, version string) (Release, error) {
	rels, err := c.Releases()
	if err != nil {
		return Release{}, err
	}
	return ResolveRelease(rels, name, channel, version)
}

// ResolveRelease is Resolve over an already listed catalog.
func ResolveRelease(rels []Release, name, channel, version string) (Release, error) {
	var best *Release
	for i := range rels {
		r := &rels[i]
		if r.Name != name {
			continue
		}
		switch {
		case version != "":
			if r.Version == version {
				if r.Yanked {
					return Release{}, fmt.Errorf("%s@%s is yanked", name, version)
				}
				return *r, nil
			}
		case channel != "":
			for _, ch := range r.Channels {
				if ch == channel && !r.Yanked {
					return *r, nil
				}
			}
		default:
			if !r.Yanked {
				best = r // releases are sorted by version, so the last wins
			}
		}
	}
	if best != nil {
		return *best, nil
	}
	switch {
	case version != "":
		return Release{}, fmt.Errorf("%s@%s: %w", name, version, ErrNotFound)
	case channel != "":
		return Release{}, fmt.Errorf("channel %s of %s points at no release: %w", channel, name, ErrNotFound)
	}
	return Release{}, fmt.Errorf("release %s: %w", name, ErrNotFound)
}
