package seeder_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
)

// A key or any other unsigned file dropped under the served prefixes is
// not served: only TUF metadata, signed targets and files listed in
// signed manifests are.
func TestWebSeedServesOnlySignedFiles(t *testing.T) {
	srv, cat := newOrigin(t)
	for _, f := range []string{
		"data/app/1.0/root.key",
		"data/app/1.0/file.bin.bak",
		"data/app/2.0/file.bin", // a payload whose release is not signed (yet)
		"metadata/targets.key",
		"metadata/notes.json",
		"metadata/1.root.json.orig",
		"releases/app/2.0.json",
		"torrents/app/2.0.torrent",
	} {
		p := filepath.Join(cat, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("PRIVATE KEY"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, method := range []string{"GET", "HEAD"} {
			resp, body := get(t, method, srv.URL+"/"+f, nil)
			if resp.StatusCode != http.StatusNotFound || strings.Contains(body, "PRIVATE") {
				t.Errorf("%s /%s: %s %q, want 404", method, f, resp.Status, body)
			}
		}
	}
	for _, f := range []string{
		"metadata/root.json", "metadata/1.root.json", "metadata/timestamp.json",
		"metadata/snapshot.json", "metadata/targets.json",
		"releases/app/1.0.json", "torrents/app/1.0.torrent", "data/app/1.0/file.bin",
	} {
		if _, err := os.Stat(filepath.Join(cat, filepath.FromSlash(f))); err != nil {
			continue // the catalog layout may not keep every form
		}
		if resp, _ := get(t, "GET", srv.URL+"/"+f, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("GET /%s: %s, want 200", f, resp.Status)
		}
	}
	// The hash-prefixed copies that TUF clients read (consistent
	// snapshots) are signed targets too; a made-up hash is not.
	hashed, _ := filepath.Glob(filepath.Join(cat, "releases", "app", "*.1.0.json"))
	hashedT, _ := filepath.Glob(filepath.Join(cat, "torrents", "app", "*.1.0.torrent"))
	if len(hashed) != 1 || len(hashedT) != 1 {
		t.Fatalf("hash-prefixed copies: %v %v", hashed, hashedT)
	}
	for _, p := range append(hashed, hashedT...) {
		rel, _ := filepath.Rel(cat, p)
		if resp, _ := get(t, "GET", srv.URL+"/"+filepath.ToSlash(rel), nil); resp.StatusCode != http.StatusOK {
			t.Errorf("GET /%s: %s, want 200", rel, resp.Status)
		}
	}
	fake := filepath.Join(cat, "releases", "app", strings.Repeat("0", 64)+".1.0.json")
	os.WriteFile(fake, []byte("PRIVATE KEY"), 0o644)
	if resp, _ := get(t, "GET", srv.URL+"/releases/app/"+strings.Repeat("0", 64)+".1.0.json", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("made-up hash-prefixed name: %s, want 404", resp.Status)
	}
}

// Many or overlapping ranges are refused with 416 and a short body instead
// of a multipart answer many times the header's size.
func TestWebSeedRangeAbuse(t *testing.T) {
	srv, _ := newOrigin(t)
	u := srv.URL + "/data/app/1.0/file.bin"
	many := func(n int) string {
		var b strings.Builder
		b.WriteString("bytes=")
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%d-%d", i%16, i%16)
		}
		return b.String()
	}
	tests := []struct {
		name, rng string
		code      int
		maxBody   int
	}{
		{"one range", "bytes=4-7", http.StatusPartialContent, 4},
		{"two disjoint, unsorted", "bytes=8-9,0-1", http.StatusPartialContent, 600},
		{"sixteen ranges", "bytes=0-0,1-1,2-2,3-3,4-4,5-5,6-6,7-7,8-8,9-9,10-10,11-11,12-12,13-13,14-14,15-15", http.StatusPartialContent, 4000},
		{"seventeen ranges", "bytes=0-0,1-1,2-2,3-3,4-4,5-5,6-6,7-7,8-8,9-9,10-10,11-11,12-12,13-13,14-14,15-15,0-", http.StatusRequestedRangeNotSatisfiable, 200},
		{"10,000 ranges", many(10_000), http.StatusRequestedRangeNotSatisfiable, 200},
		{"10,000 empty parts", "bytes=0-0" + strings.Repeat(",", 10_000), http.StatusRequestedRangeNotSatisfiable, 200},
		{"overlapping", "bytes=0-15,0-15", http.StatusRequestedRangeNotSatisfiable, 200},
		{"suffix overlapping", "bytes=10-12,-4", http.StatusRequestedRangeNotSatisfiable, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, "GET", u, map[string]string{"Range": tc.rng})
			if resp.StatusCode != tc.code || len(body) > tc.maxBody {
				t.Fatalf("Range %.60q: %s, %d body bytes; want %d, <= %d", tc.rng, resp.Status, len(body), tc.code, tc.maxBody)
			}
			if tc.code == http.StatusRequestedRangeNotSatisfiable && resp.Header.Get("Content-Range") != "bytes */16" {
				t.Errorf("416 without Content-Range: %q", resp.Header.Get("Content-Range"))
			}
		})
	}
}

// A release published while the origin runs is served at once (a miss
// reloads the catalog, at most every two seconds), not a refresh
// interval (30 s by default) later.
func TestWebSeedServesNewReleaseWithoutWaiting(t *testing.T) {
	srv, cat := newOrigin(t)
	dir := filepath.Dir(cat)
	keys, err := catalog.LoadKeys(filepath.Join(dir, "keys"), "targets", "snapshot", "timestamp")
	if err != nil {
		t.Fatal(err)
	}
	store, err := catalog.NewDirStore(cat)
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "new.bin")
	os.WriteFile(src, []byte("fresh"), 0o644)
	if resp, _ := get(t, "GET", srv.URL+"/data/app/2.0/new.bin", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("before publish: %s", resp.Status)
	}
	time.Sleep(2100 * time.Millisecond) // past the miss back-off of the request above
	if _, err := publish.Publish(t.Context(), store, keys, publish.PublishOptions{Name: "app", Version: "2.0", Paths: []string{src}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/releases/app/2.0.json", "/torrents/app/2.0.torrent", "/data/app/2.0/new.bin"} {
		if resp, _ := get(t, "GET", srv.URL+p, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s right after publish: %s", p, resp.Status)
		}
	}
}
