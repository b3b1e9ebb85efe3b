package catalog_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/storetest"
)

// serveDir serves the files under root the way the origin serves a
// directory catalog: GET and HEAD with Range support via http.ServeContent,
// 404 for anything that is not a regular file inside root. With
// ignoreRange it answers every GET with the whole file, as some servers do.
func serveDir(root string, ignoreRange bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(r.URL.Path, "/")
		if catalog.CleanKey(name) != nil {
			http.NotFound(w, r)
			return
		}
		f, err := os.OpenInRoot(root, filepath.FromSlash(name))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			http.NotFound(w, r)
			return
		}
		if ignoreRange {
			r.Header.Del("Range")
		}
		http.ServeContent(w, r, name, fi.ModTime(), f)
	})
}

// fixtureServer writes storetest's fixtures into a DirStore and serves it.
func fixtureServer(t *testing.T, ignoreRange bool) *httptest.Server {
	t.Helper()
	ds := newDirStore(t)
	for key, data := range storetest.Fixtures() {
		if err := ds.Put(t.Context(), key, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(serveDir(ds.Root(), ignoreRange))
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPStore(t *testing.T) {
	for _, ignoreRange := range []bool{false, true} {
		name := "Range"
		if ignoreRange {
			name = "NoRange"
		}
		t.Run(name, func(t *testing.T) {
			storetest.RunReadOnly(t, func(t *testing.T) catalog.Store {
				srv := fixtureServer(t, ignoreRange)
				s, err := catalog.NewHTTPStore(srv.URL+"/", srv.Client())
				if err != nil {
					t.Fatal(err)
				}
				return s
			})
		})
	}
}

func TestHTTPStoreSubpath(t *testing.T) {
	srv := fixtureServer(t, false)
	mux := http.NewServeMux()
	mux.Handle("/mirror/catalog/", http.StripPrefix("/mirror/catalog", srv.Config.Handler))
	msrv := httptest.NewServer(mux)
	defer msrv.Close()
	// With and without the trailing slash.
	for _, base := range []string{msrv.URL + "/mirror/catalog", msrv.URL + "/mirror/catalog/"} {
		s, err := catalog.NewHTTPStore(base, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := catalog.ReadAll(t.Context(), s, "metadata/root.json", 1<<20)
		if err != nil || string(b) != string(storetest.Fixtures()["metadata/root.json"]) {
			t.Errorf("%s: ReadAll = %q, %v", base, b, err)
		}
		const key = "data/app/1.0/my file+1 ü.txt"
		resp, err := http.Get(s.ObjectURL(key))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, storetest.Fixtures()[key]) {
			t.Errorf("GET %s: %s %q", s.ObjectURL(key), resp.Status, got)
		}
	}
}

func TestHTTPStoreErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "broken", http.StatusInternalServerError)
	}))
	defer srv.Close()
	s, err := catalog.NewHTTPStore(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(t.Context(), "metadata/root.json")
	if err == nil || errors.Is(err, catalog.ErrNotFound) || !strings.Contains(err.Error(), srv.URL+"/metadata/root.json") || !strings.Contains(err.Error(), "500") {
		t.Errorf("Get from a failing server: %v; want an error naming the URL and status", err)
	}
	_, err = s.Stat(t.Context(), "metadata/root.json")
	if err == nil || !strings.Contains(err.Error(), srv.URL) {
		t.Errorf("Stat from a failing server: %v", err)
	}

	srv.Close()
	if _, err := s.Get(t.Context(), "metadata/root.json"); err == nil || !strings.Contains(err.Error(), srv.URL) {
		t.Errorf("Get from a closed server: %v; want an error naming the URL", err)
	}

	for _, bad := range []string{"", "ftp://host/x", "http://", "/just/a/path", "http://h/x?y=1"} {
		if _, err := catalog.NewHTTPStore(bad, nil); err == nil {
			t.Errorf("NewHTTPStore(%q) succeeded", bad)
		}
	}
}

func TestHTTPStoreRedactsPassword(t *testing.T) {
	s, err := catalog.NewHTTPStore("https://user:hunter2@example.com/catalog", nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.String(), "hunter2") {
		t.Errorf("String() = %q leaks the password", s.String())
	}
	if err := s.Put(t.Context(), "k", strings.NewReader("v"), 1); !errors.Is(err, catalog.ErrReadOnly) || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Put: %v", err)
	}
}
