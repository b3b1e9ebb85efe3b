package catalog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/storetest"
	"github.com/swarmship/swarmship/internal/testenv"
)

func s3Config(gw *testenv.VersityGW, bucket, prefix string) catalog.S3Config {
	return catalog.S3Config{
		Endpoint:  gw.Endpoint,
		Bucket:    bucket,
		Prefix:    prefix,
		AccessKey: gw.AccessKey,
		SecretKey: gw.SecretKey,
	}
}

func newS3Store(t *testing.T, gw *testenv.VersityGW, prefix string) *catalog.S3Store {
	t.Helper()
	s, err := catalog.NewS3Store(t.Context(), s3Config(gw, gw.NewBucket(t), prefix))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestS3Store(t *testing.T) {
	gw := testenv.StartVersityGW(t)
	t.Run("NoPrefix", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) catalog.Store { return newS3Store(t, gw, "") })
	})
	t.Run("Prefix", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) catalog.Store { return newS3Store(t, gw, "catalogs/prod/") })
	})
}

func TestS3StorePrefixIsolation(t *testing.T) {
	gw := testenv.StartVersityGW(t)
	bucket := gw.NewBucket(t)
	ctx := t.Context()
	a, err := catalog.NewS3Store(ctx, s3Config(gw, bucket, "a"))
	if err != nil {
		t.Fatal(err)
	}
	ab, err := catalog.NewS3Store(ctx, s3Config(gw, bucket, "ab"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, "k", strings.NewReader("in a"), 4); err != nil {
		t.Fatal(err)
	}
	if err := ab.Put(ctx, "k", strings.NewReader("in ab"), 5); err != nil {
		t.Fatal(err)
	}
	list, err := a.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Key != "k" || list[0].Size != 4 {
		t.Errorf("List of prefix a = %+v; want only k (4 bytes)", list)
	}
}

func TestS3StoreUnreachable(t *testing.T) {
	start := time.Now()
	_, err := catalog.NewS3Store(t.Context(), catalog.S3Config{
		Endpoint: "http://127.0.0.1:1", Bucket: "b", AccessKey: "a", SecretKey: "s",
	})
	if err == nil || !strings.Contains(err.Error(), "s3 endpoint http://127.0.0.1:1: unreachable") {
		t.Fatalf("NewS3Store(unreachable) = %v; want an 'unreachable' error naming the endpoint", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("took %v to report an unreachable endpoint", d)
	}
}

func TestS3StoreMissingCredentials(t *testing.T) {
	_, err := catalog.NewS3Store(t.Context(), catalog.S3Config{Endpoint: "http://127.0.0.1:1", Bucket: "b"})
	if err == nil || !strings.Contains(err.Error(), "no S3 credentials") || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("NewS3Store without credentials = %v", err)
	}
}

func TestS3StoreWrongCredentials(t *testing.T) {
	gw := testenv.StartVersityGW(t)
	cfg := s3Config(gw, gw.NewBucket(t), "")
	cfg.SecretKey = "wrong"
	_, err := catalog.NewS3Store(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "credentials refused") || !strings.Contains(err.Error(), gw.Endpoint) || !strings.Contains(err.Error(), cfg.Bucket) {
		t.Fatalf("NewS3Store with a wrong secret = %v; want 'credentials refused' naming endpoint and bucket", err)
	}
}

func TestS3StoreMissingBucket(t *testing.T) {
	gw := testenv.StartVersityGW(t)
	_, err := catalog.NewS3Store(t.Context(), s3Config(gw, "no-such-bucket", ""))
	if err == nil || !strings.Contains(err.Error(), "no-such-bucket does not exist") || !strings.Contains(err.Error(), gw.Endpoint) {
		t.Fatalf("NewS3Store(missing bucket) = %v", err)
	}
}

// rangeGET fetches url with a Range header using no credentials.
func rangeGET(t *testing.T, url, rng string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Range", rng)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Range"), b
}

func TestS3StoreObjectURL(t *testing.T) {
	gw := testenv.StartVersityGW(t)
	s := newS3Store(t, gw, "cat")
	ctx := t.Context()
	const key = "data/app/1.0/my file+1 ü.bin"
	data := bytes.Repeat([]byte("0123456789"), 100)
	if err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "other", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	u := s.ObjectURL(key)
	if !strings.HasPrefix(u, gw.Endpoint+"/"+s.Bucket()+"/cat/data/app/1.0/") {
		t.Errorf("ObjectURL = %q; want a path-style URL", u)
	}
	if code, _, _ := rangeGET(t, u, "bytes=0-9"); code != http.StatusForbidden {
		t.Errorf("anonymous GET before SetPublicRead: %d; want 403", code)
	}
	if err := s.SetPublicRead(ctx); err != nil {
		t.Fatal(err)
	}
	// Idempotent.
	if err := s.SetPublicRead(ctx); err != nil {
		t.Fatal(err)
	}
	code, cr, body := rangeGET(t, u, "bytes=10-29")
	if code != http.StatusPartialContent || !bytes.Equal(body, data[10:30]) {
		t.Errorf("anonymous ranged GET %s: %d %q %q", u, code, cr, body)
	}
	if cr != fmt.Sprintf("bytes 10-29/%d", len(data)) {
		t.Errorf("Content-Range = %q", cr)
	}
	// Anonymous HEAD, as an HTTP store would do.
	hs, err := catalog.NewHTTPStore(strings.TrimSuffix(s.ObjectURL("other"), "other"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := hs.Stat(ctx, key); err != nil || fi.Size != int64(len(data)) {
		t.Errorf("anonymous Stat via HTTPStore: %+v, %v", fi, err)
	}
	// Anonymous writes stay forbidden.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, s.ObjectURL("evil"), strings.NewReader("x"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		t.Errorf("anonymous PUT: %s", resp.Status)
	}
	if _, err := s.Stat(ctx, "evil"); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("after anonymous PUT: Stat = %v", err)
	}

	// PublicURL replaces the endpoint URL.
	cfg := s3Config(gw, s.Bucket(), "cat")
	cfg.PublicURL = "https://cdn.example.com/catalog/"
	ps, err := catalog.NewS3Store(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ps.ObjectURL("data/a b"), "https://cdn.example.com/catalog/data/a%20b"; got != want {
		t.Errorf("ObjectURL with PublicURL = %q; want %q", got, want)
	}
	if got := ps.ObjectURL("../x"); got != "" {
		t.Errorf("ObjectURL(../x) = %q; want \"\"", got)
	}
}

func TestS3StorePresignGet(t *testing.T) {
	gw := testenv.StartVersityGW(t)
	s := newS3Store(t, gw, "")
	ctx := t.Context()
	const key = "data/app/1.0/a+b c.bin"
	data := bytes.Repeat([]byte("abcdefghij"), 50)
	if err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	u, err := s.PresignGet(ctx, key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	code, cr, body := rangeGET(t, u, "bytes=100-149")
	if code != http.StatusPartialContent || !bytes.Equal(body, data[100:150]) || cr != fmt.Sprintf("bytes 100-149/%d", len(data)) {
		t.Errorf("presigned ranged GET: %d %q %q", code, cr, body)
	}
	if _, err := s.PresignGet(ctx, key, 8*24*time.Hour); err == nil {
		t.Error("PresignGet with a ttl over 7 days succeeded")
	}
	if _, err := s.PresignGet(ctx, "../x", time.Minute); err == nil {
		t.Error("PresignGet of an invalid key succeeded")
	}
}

func TestS3ConfigFromEnv(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "envkey")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
	t.Setenv("AWS_SESSION_TOKEN", "envtoken")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "eu-west-1")
	t.Setenv("AWS_ENDPOINT_URL", "http://generic:9000")
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://s3only:9000")

	c := catalog.S3ConfigFromEnv(catalog.S3Config{Bucket: "b"})
	want := catalog.S3Config{
		Bucket: "b", AccessKey: "envkey", SecretKey: "envsecret", SessionToken: "envtoken",
		Region: "eu-west-1", Endpoint: "http://s3only:9000",
	}
	if c != want {
		t.Errorf("S3ConfigFromEnv = %+v; want %+v", c, want)
	}
	// Explicit values win, and an explicit key is not paired with the
	// environment's session token.
	c = catalog.S3ConfigFromEnv(catalog.S3Config{AccessKey: "k", SecretKey: "s", Region: "r", Endpoint: "e:1"})
	want = catalog.S3Config{AccessKey: "k", SecretKey: "s", Region: "r", Endpoint: "e:1"}
	if c != want {
		t.Errorf("S3ConfigFromEnv = %+v; want %+v", c, want)
	}
}

func TestS3StoreEndpointForms(t *testing.T) {
	gw := testenv.StartVersityGW(t)
	bucket := gw.NewBucket(t)
	hostPort := strings.TrimPrefix(gw.Endpoint, "http://")
	for _, c := range []struct {
		endpoint string
		insecure bool
		ok       bool
	}{
		{gw.Endpoint, false, true},       // the URL's scheme decides
		{gw.Endpoint + "/", false, true}, // a bare trailing slash is fine
		{hostPort, true, true},
		{hostPort, false, false}, // https to an http server
		{gw.Endpoint + "/bucket", false, false},
		{"ftp://" + hostPort, false, false},
	} {
		cfg := s3Config(gw, bucket, "")
		cfg.Endpoint, cfg.Insecure = c.endpoint, c.insecure
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		_, err := catalog.NewS3Store(ctx, cfg)
		cancel()
		if (err == nil) != c.ok {
			t.Errorf("endpoint %q insecure=%v: err = %v; want ok=%v", c.endpoint, c.insecure, err, c.ok)
		}
	}
}
