package seeder_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/seeder"
)

func newOrigin(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	srv, cat, _ := newOriginWith(t, seeder.Config{}, nil)
	return srv, cat
}

// newOriginWith publishes app@1.0 (file.bin = "0123456789abcdef") into a
// fresh directory catalog, runs an origin on it until its catalog is
// loaded, and serves its handler with srvStart (nil: plain HTTP).
func newOriginWith(t *testing.T, cfg seeder.Config, srvStart func(*httptest.Server)) (*httptest.Server, string, []byte) {
	t.Helper()
	dir := t.TempDir()
	cat := filepath.Join(dir, "catalog")
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "file.bin"), []byte("0123456789abcdef"), 0o644)
	os.WriteFile(filepath.Join(dir, "secret"), []byte("outside"), 0o644)
	store, keys, root := newTestCatalog(t, dir)
	if _, err := publish.Publish(t.Context(), store, keys, publish.PublishOptions{Name: "app", Version: "1.0", Paths: []string{filepath.Join(src, "file.bin")}}); err != nil {
		t.Fatal(err)
	}
	os.Symlink(filepath.Join(dir, "secret"), filepath.Join(cat, "data", "app", "1.0", "escape"))
	client, err := catalog.NewClient(store, root, filepath.Join(dir, "tuf"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Seed == nil {
		seed := false
		cfg.Seed = &seed
	}
	o, err := seeder.New(cfg, store, client, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); o.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; o.Close() })
	srv := httptest.NewUnstartedServer(o.Handler())
	if srvStart == nil {
		srv.Start()
	} else {
		srvStart(srv)
	}
	t.Cleanup(srv.Close)
	waitReady(t, srv.Client(), srv.URL)
	return srv, cat, root
}

func waitReady(t *testing.T, c *http.Client, base string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		resp, err := c.Get(base + "/healthz")
		if err != nil {
			return fmt.Errorf("origin not ready: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("origin not ready: %s", resp.Status)
		}
		return nil
	})
}

func get(t *testing.T, method, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return do(t, req)
}

func TestWebSeedServesRangesAndNothingElse(t *testing.T) {
	srv, _ := newOrigin(t)
	u := srv.URL + "/data/app/1.0/file.bin"
	resp, body := get(t, "GET", u, map[string]string{"Range": "bytes=4-7"})
	if resp.StatusCode != http.StatusPartialContent || body != "4567" || resp.Header.Get("Content-Range") != "bytes 4-7/16" {
		t.Fatalf("range: %s %q %q", resp.Status, body, resp.Header.Get("Content-Range"))
	}
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	resp, body = get(t, "HEAD", u, nil)
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != 16 {
		t.Fatalf("HEAD: %s len %d", resp.Status, resp.ContentLength)
	}
	if resp, _ = get(t, "GET", u, map[string]string{"If-None-Match": etag}); resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %s", resp.Status)
	}
	for _, path := range []string{
		"/data/app/1.0/",                   // listing
		"/data/app/",                       // listing
		"/data/app/1.0/escape",             // symlink out of the catalog
		"/data/app/1.0/../../../secret",    // traversal (cleaned by the client, sent raw below)
		"/data/app/1.0/%2e%2e/%2e%2e/keys", // encoded traversal
		"/keys/root.key",                   // outside the served prefixes
		"/data/app/1.0/missing",
	} {
		resp, body := get(t, "GET", srv.URL+path, nil)
		if resp.StatusCode != http.StatusNotFound || strings.Contains(body, "outside") {
			t.Errorf("GET %s: %s %q, want 404", path, resp.Status, body)
		}
	}
	if resp, _ := get(t, "PUT", u, nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %s, want 405", resp.Status)
	}
	if resp, _ := get(t, "GET", srv.URL+"/metadata/root.json", nil); resp.StatusCode != 200 {
		t.Errorf("metadata: %s", resp.Status)
	}
}

func TestOriginMetricsParse(t *testing.T) {
	srv, _ := newOrigin(t)
	get(t, "GET", srv.URL+"/data/app/1.0/file.bin", nil)
	resp, body := get(t, "GET", srv.URL+"/metrics", nil)
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	for _, name := range []string{"swarmship_origin_egress_bytes_total", "swarmship_origin_seeding_releases", "swarmship_tracker_announces_total"} {
		if _, ok := families[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	for _, m := range families["swarmship_origin_egress_bytes_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetValue() == "webseed" && m.GetCounter().GetValue() != 16 {
				t.Errorf("webseed egress %v, want 16", m.GetCounter().GetValue())
			}
		}
	}
}
