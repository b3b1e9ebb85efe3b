package catalog_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/testenv"
)

func TestOpenStoreDir(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	for _, u := range []string{dir, "file://" + filepath.ToSlash(dir), "file://localhost" + filepath.ToSlash(dir)} {
		s, err := catalog.OpenStore(ctx, u, catalog.S3Config{})
		if err != nil {
			t.Errorf("OpenStore(%q): %v", u, err)
			continue
		}
		if ds, ok := s.(*catalog.DirStore); !ok || ds.Root() != dir {
			t.Errorf("OpenStore(%q) = %v; want a DirStore at %s", u, s, dir)
		}
	}

	missing := filepath.Join(dir, "new", "catalog")
	if _, err := catalog.OpenStore(ctx, missing, catalog.S3Config{}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("OpenStore(missing dir) = %v; want a 'does not exist' error", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenStore created %s", missing)
	}
	s, err := catalog.OpenOrCreateStore(ctx, "file://"+filepath.ToSlash(missing), catalog.S3Config{})
	if err != nil {
		t.Fatalf("OpenOrCreateStore: %v", err)
	}
	if fi, err := os.Stat(missing); err != nil || !fi.IsDir() {
		t.Errorf("OpenOrCreateStore did not create the directory: %v", err)
	}
	if err := s.Put(ctx, "k", strings.NewReader("v"), 1); err != nil {
		t.Error(err)
	}

	// A relative plain path works too.
	t.Chdir(dir)
	if _, err := catalog.OpenStore(ctx, "new/catalog", catalog.S3Config{}); err != nil {
		t.Errorf("OpenStore(relative path): %v", err)
	}
	if _, err := catalog.OpenStore(ctx, "./new/catalog", catalog.S3Config{}); err != nil {
		t.Errorf("OpenStore(./relative path): %v", err)
	}
}

func TestOpenStoreErrors(t *testing.T) {
	ctx := t.Context()
	for _, c := range []struct{ url, want string }{
		{"", "no catalog location"},
		{"gopher://host/x", "unknown scheme"},
		{"file:relative", "absolute path"},
		{"file://otherhost/x", "local"},
		{"s3:///prefix", "no bucket"},
	} {
		_, err := catalog.OpenStore(ctx, c.url, catalog.S3Config{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("OpenStore(%q) = %v; want an error containing %q", c.url, err, c.want)
		}
	}
	_, err := catalog.OpenOrCreateStore(ctx, "https://example.com/catalog", catalog.S3Config{})
	if !errors.Is(err, catalog.ErrReadOnly) {
		t.Errorf("OpenOrCreateStore(https) = %v; want ErrReadOnly", err)
	}
}

func TestOpenStoreHTTP(t *testing.T) {
	s, err := catalog.OpenStore(t.Context(), "https://example.com/catalog/", catalog.S3Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*catalog.HTTPStore); !ok {
		t.Errorf("OpenStore(https) = %T; want *HTTPStore", s)
	}
	if u := s.(catalog.URLer).ObjectURL("data/a b"); u != "https://example.com/catalog/data/a%20b" {
		t.Errorf("ObjectURL = %q", u)
	}
}

func TestOpenStoreS3(t *testing.T) {
	gw := testenv.StartVersityGW(t)
	bucket := gw.NewBucket(t)
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"} {
		t.Setenv(k, "")
	}
	ctx := t.Context()
	if _, err := catalog.OpenStore(ctx, "s3://"+bucket+"/x", catalog.S3Config{Endpoint: gw.Endpoint}); err == nil || !strings.Contains(err.Error(), "no S3 credentials") {
		t.Errorf("OpenStore(s3) without credentials = %v", err)
	}

	// Credentials and endpoint from the environment.
	t.Setenv("AWS_ACCESS_KEY_ID", gw.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", gw.SecretKey)
	t.Setenv("AWS_ENDPOINT_URL_S3", gw.Endpoint)
	s, err := catalog.OpenStore(ctx, "s3://"+bucket+"/catalogs/prod/", catalog.S3Config{Bucket: "ignored"})
	if err != nil {
		t.Fatal(err)
	}
	ss, ok := s.(*catalog.S3Store)
	if !ok || ss.Bucket() != bucket || ss.Prefix() != "catalogs/prod/" {
		t.Fatalf("OpenStore(s3) = %v", s)
	}
	if err := s.Put(ctx, "metadata/root.json", strings.NewReader("{}"), 2); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.Client(t).StatObject(ctx, bucket, "catalogs/prod/metadata/root.json", minio.StatObjectOptions{}); err != nil {
		t.Errorf("object not under the prefix: %v", err)
	}
}
