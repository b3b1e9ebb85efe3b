package seeder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/httprange"
)

// catalogServer serves a directory catalog read-only over HTTP: the signed
// metadata, manifests and torrents for agents reading the catalog, and
// data/ as the BEP 19 web seed. Range, HEAD and conditional requests come
// from http.ServeContent. There are no listings, and os.Root keeps every
// request inside the catalog directory (symlinks included).
type catalogServer struct {
	root    *os.Root
	webSeed *atomic.Int64
	catalog *atomic.Int64
}

var servedPrefixes = []string{"metadata/", "releases/", "torrents/", "data/",
	"rollouts/",            // signed rollout plans (catalog/rolloutplan.go)
	catalog.PolicyPrefix,   // fleet policy documents (catalog/fleetpolicy.go)
	catalog.PlaylistPrefix, // signage schedules (catalog/playlist.go)
	"rollouts/",            // signed rollout plans (catalog/rolloutplan.go)
	catalog.PolicyPrefix,   // fleet policy documents (catalog/fleetpolicy.go)
	catalog.CodesPrefix,    // site code tables of watermarked media (catalog/sitecodes.go)
}

func (s *catalogServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "read-only", http.StatusMethodNotAllowed)
		return
	}
	key := strings.TrimPrefix(r.URL.Path, "/")
	if n, ok := catalog.ParsePadKey(key); ok {
		servePad(w, r, n, s.webSeed) // the guard let only signed pads through
		return
	}
	if err := catalog.CleanKey(key); err != nil || !hasServedPrefix(key) || strings.Contains(key, "/.") {
		http.NotFound(w, r)
		return
	}
	f, err := s.root.Open(key)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	if !httprange.Check(w, r, st.Size()) {
		return
	}
	w.Header().Set("ETag", fmt.Sprintf(`"%x-%x"`, st.Size(), st.ModTime().UnixNano()))
	if strings.HasPrefix(key, "data/") {
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	counter := s.catalog
	if strings.HasPrefix(key, "data/") {
		counter = s.webSeed
	}
	http.ServeContent(&countingWriter{ResponseWriter: w, n: counter}, r, "", st.ModTime(), f)
}

// presigner is implemented by stores that can hand out time-limited URLs
// (S3), so that the origin redirects payload reads and S3 serves the bytes.
type presigner interface {
	PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// remoteCatalogServer serves a catalog kept in a remote store (S3) to
// agents that hold no bucket credentials: metadata, manifests and torrents
// are proxied (they are small and signed); payload reads under data/ are
// redirected to presigned URLs, with the Range header kept by the client.
type remoteCatalogServer struct {
	store   catalog.Store
	catalog *atomic.Int64
	ttl     time.Duration
}

func (s *remoteCatalogServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "read-only", http.StatusMethodNotAllowed)
		return
	}
	key := strings.TrimPrefix(r.URL.Path, "/")
	if n, ok := catalog.ParsePadKey(key); ok {
		// Zeros cost nothing to make: no presigned trip to S3.
		servePad(w, r, n, s.catalog)
		return
	}
	if err := catalog.CleanKey(key); err != nil || !hasServedPrefix(key) {
		http.NotFound(w, r)
		return
	}
	if strings.HasPrefix(key, "data/") {
		p, ok := s.store.(presigner)
		if !ok {
			http.NotFound(w, r)
			return
		}
		u, err := p.PresignGet(r.Context(), key, s.ttl)
		if err != nil {
			http.Error(w, "cannot sign a URL for the payload", http.StatusBadGateway)
			return
		}
		http.Redirect(w, r, u, http.StatusTemporaryRedirect)
		return
	}
	st, err := s.store.Stat(r.Context(), key)
	if errors.Is(err, catalog.ErrNotFound) {
		http.NotFound(w, r)
		return
	} else if err != nil {
		http.Error(w, "catalog store unavailable", http.StatusBadGateway)
		return
	}
	if st.Size > catalog.MaxMetadataSize+catalog.MaxTorrentSize {
		http.Error(w, "object too large to proxy", http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(st.Size, 10))
	if r.Method == http.MethodHead {
		return
	}
	rc, err := s.store.Get(r.Context(), key)
	if err != nil {
		http.Error(w, "catalog store unavailable", http.StatusBadGateway)
		return
	}
	defer rc.Close()
	n, _ := io.Copy(w, rc)
	s.catalog.Add(n)
}

// servePad answers a web seed request for a BEP 47 pad file of n bytes
// with zeros (Range, HEAD and conditional requests as for files). Clients
// that treat pads as files, anacrolix/torrent v1.59.1 and aria2 among
// them, ask for <version>/.pad/<n>; a 404 would make them drop the web
// seed for the pieces around it. Nothing is read from disk; the size is
// bounded by the piece length of a signed media release (the guard
// lists only the pad keys of signed manifests).
func servePad(w http.ResponseWriter, r *http.Request, n int64, counter *atomic.Int64) {
	if !httprange.Check(w, r, n) {
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", fmt.Sprintf(`"pad-%x"`, n))
	http.ServeContent(&countingWriter{ResponseWriter: w, n: counter}, r, "", time.Time{}, io.NewSectionReader(zeroReader{}, 0, n))
}

// zeroReader reads zeros at any offset.
type zeroReader struct{}

func (zeroReader) ReadAt(p []byte, _ int64) (int, error) {
	clear(p)
	return len(p), nil
}

func hasServedPrefix(key string) bool {
	for _, p := range servedPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// countingWriter counts body bytes written, for origin egress metrics.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// ReadFrom keeps sendfile-style copies working while counting.
func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(struct{ io.Writer }{c.ResponseWriter}, r)
	c.n.Add(n)
	return n, err
}

// signedIndex is what the origin may serve from the catalog: TUF metadata,
// signed targets (manifests, torrents) and the payload files listed in
// signed manifests. Anything else placed under the catalog's prefixes (a
// key file, a half-published payload, notes) is answered 404, so a
// mistake in the bucket or directory does not become a download.
type signedIndex struct {
	mu      sync.RWMutex
	targets map[string]bool
	data    map[string]bool
	// files caches each manifest's payload keys: releases are immutable,
	// so a manifest is read once, not on every refresh.
	files map[string][]string

	// reload re-reads the catalog and updates the index. A miss calls it
	// (at most every missReload) so that a release is servable as soon as
	// agents can see it signed, not a refresh interval later.
	reload     func(context.Context) error
	reloadMu   sync.Mutex
	lastReload time.Time
}

const missReload = 2 * time.Second

// update rebuilds the index from the loaded catalog. A manifest that cannot
// be read keeps its payload unserved until a later refresh reads it.
func (x *signedIndex) update(ctx context.Context, c *catalog.Client, log *slog.Logger) error {
	names, err := c.TargetNames()
	if err != nil {
		return err
	}
	rels, err := c.Releases()
	if err != nil {
		return err
	}
	x.mu.RLock()
	cached := x.files
	x.mu.RUnlock()
	targets := make(map[string]bool, len(names))
	for _, n := range names {
		targets[n] = true
	}
	files := make(map[string][]string, len(rels))
	data := map[string]bool{}
	for _, r := range rels {
		mk := catalog.ManifestKey(r.Name, r.Version)
		keys, ok := cached[mk]
		if !ok {
			m, err := c.Manifest(ctx, r.Name, r.Version)
			if err != nil {
				log.Warn("web seed: manifest unreadable; its payload is not served", "release", r.Name, "version", r.Version, "err", err)
				continue
			}
			for _, f := range m.Files {
				keys = append(keys, catalog.DataPrefix(m.Name, m.Version)+f.Path)
			}
			for _, n := range m.PadSizes() {
				keys = append(keys, catalog.PadKey(m.Name, m.Version, n))
			}
		}
		files[mk] = keys
		for _, k := range keys {
			data[k] = true
		}
	}
	x.mu.Lock()
	x.targets, x.data, x.files = targets, data, files
	x.mu.Unlock()
	return nil
}

// allowed reports whether key may be served.
func (x *signedIndex) allowed(key string) bool {
	if catalog.IsMetadataKey(key) {
		return true
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.targets[key] || x.data[key]
}

// guard answers 404 for every key the index does not list.
func (x *signedIndex) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.URL.Path, "/")
		if !x.allowed(key) && !x.reloadAndCheck(r.Context(), key) {
			http.NotFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// reloadAndCheck reloads the catalog once for a miss, unless one was done
// in the last missReload: misses from anyone cost at most one catalog
// read (the timestamp, if nothing changed) every two seconds.
func (x *signedIndex) reloadAndCheck(ctx context.Context, key string) bool {
	if x.reload == nil || !hasServedPrefix(key) || strings.HasPrefix(key, "metadata/") {
		return false
	}
	x.reloadMu.Lock()
	defer x.reloadMu.Unlock()
	if time.Since(x.lastReload) < missReload {
		return x.allowed(key)
	}
	x.lastReload = time.Now()
	if err := x.reload(ctx); err != nil {
		return false
	}
	return x.allowed(key)
}
