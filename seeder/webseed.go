package seeder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/swarmship/swarmship/catalog"
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

var servedPrefixes = []string{"metadata/", "releases/", "torrents/", "data/"}

func (s *catalogServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "read-only", http.StatusMethodNotAllowed)
		return
	}
	key := strings.TrimPrefix(r.URL.Path, "/")
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
