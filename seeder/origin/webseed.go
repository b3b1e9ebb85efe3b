package origin

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"

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
