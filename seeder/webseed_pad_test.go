package seeder_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/seeder"
)

// writeTinyHLS writes a hand-made HLS release (no ffmpeg): a media
// playlist and three segments of awkward sizes.
func writeTinyHLS(t *testing.T, dir string) {
	t.Helper()
	pl := "#EXTM3U\n#EXT-X-TARGETDURATION:2\n"
	for i, n := range []int{40_000, 33_333, 50_001} {
		b := make([]byte, n)
		rand.Read(b)
		name := fmt.Sprintf("s%d.ts", i)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		pl += "#EXTINF:2,\n" + name + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "index.m3u8"), []byte(pl+"#EXT-X-ENDLIST\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The origin's web seed answers a signed media release's pad paths
// (<version>/.pad/<N>) with N zeros, ranges included, and nothing else
// under .pad: not another size, not a release without pads.
func TestWebSeedServesPadZeros(t *testing.T) {
	srv, cat, _ := newOriginWith(t, seeder.Config{}, nil)
	keys, err := catalog.LoadKeys(filepath.Join(filepath.Dir(cat), "keys"), "targets", "snapshot", "timestamp")
	if err != nil {
		t.Fatal(err)
	}
	store, err := catalog.NewDirStore(cat)
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	writeTinyHLS(t, src)
	if _, err := publish.Publish(t.Context(), store, keys, publish.PublishOptions{Name: "show", Version: "1", Paths: []string{src}, Media: true, PieceLength: 16 << 10}); err != nil {
		t.Fatal(err)
	}
	b, err := catalog.ReadAll(t.Context(), store, catalog.ManifestKey("show", "1"), catalog.MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	m, err := catalog.ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	sizes := m.PadSizes()
	if len(sizes) == 0 {
		t.Fatal("no pads in the layout")
	}
	for _, n := range sizes {
		u := srv.URL + "/" + catalog.PadKey("show", "1", n)
		resp, body := get(t, "GET", u, nil)
		if resp.StatusCode != http.StatusOK || int64(len(body)) != n || strings.Trim(body, "\x00") != "" {
			t.Fatalf("GET pad %d: %s, %d bytes", n, resp.Status, len(body))
		}
		resp, body = get(t, "GET", u, map[string]string{"Range": "bytes=10-19"})
		if resp.StatusCode != http.StatusPartialContent || body != string(bytes.Repeat([]byte{0}, 10)) || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 10-19/%d", n) {
			t.Fatalf("ranged pad: %s %q %q", resp.Status, body, resp.Header.Get("Content-Range"))
		}
		if resp, _ = get(t, "HEAD", u, nil); resp.StatusCode != http.StatusOK || resp.ContentLength != n {
			t.Fatalf("HEAD pad: %s %d", resp.Status, resp.ContentLength)
		}
	}
	for _, path := range []string{
		catalog.PadKey("show", "1", sizes[0]+1), // not a pad of this release
		catalog.PadKey("app", "1.0", sizes[0]),  // a release without pads
		catalog.PadKey("show", "2", sizes[0]),   // not signed
		"data/show/1/.pad/0" + fmt.Sprint(sizes[0]),
		"data/show/1/.pad/1000000000000",
	} {
		if resp, _ := get(t, "GET", srv.URL+"/"+path, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", path, resp.Status)
		}
	}
}
