package mediaserve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// dirRelease is a release laid out in a directory, as the agent holds
// one; gate, when set, makes Open wait for it (pieces still downloading).
type dirRelease struct {
	dir   string
	files map[string]File
	gate  chan struct{}
	err   error
}

func (r *dirRelease) File(p string) (File, bool) { f, ok := r.files[p]; return f, ok }

func (r *dirRelease) Open(ctx context.Context, p string) (*os.File, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return os.Open(filepath.Join(r.dir, filepath.FromSlash(p)))
}

type testSource struct {
	current map[string]string
	rels    map[string]*dirRelease // by name@version
}

func (s *testSource) Current(name string) (string, error) {
	v, ok := s.current[name]
	if !ok {
		return "", ErrNotFound
	}
	return v, nil
}

func (s *testSource) Release(name, version string) (Release, error) {
	r, ok := s.rels[name+"@"+version]
	if !ok {
		return nil, ErrNotFound
	}
	return r, nil
}

// newRelease writes files (path -> content) under a temp dir and lists
// them with their SHA-256.
func newRelease(t *testing.T, files map[string]string) *dirRelease {
	t.Helper()
	r := &dirRelease{dir: t.TempDir(), files: map[string]File{}}
	for p, content := range files {
		full := filepath.Join(r.dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(content))
		r.files[p] = File{Path: p, Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])}
	}
	return r
}

func newTestServer(t *testing.T, cfg Config, src Source) *Server {
	t.Helper()
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func do(s http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = "10.1.2.3:4567"
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

const segment = "0123456789abcdefghijklmnopqrstuvwxyz"

func mediaFixture(t *testing.T) (*testSource, *dirRelease) {
	rel := newRelease(t, map[string]string{
		"index.m3u8":        "#EXTM3U\n#EXTINF:2.0,\nlow/seg000.ts\n",
		"low/seg000.ts":     segment,
		"dash/out.mpd":      "<MPD/>",
		"dash/chunk-1.m4s":  "m4s",
		"dash/init.mp4":     "mp4",
		"subs/en.vtt":       "WEBVTT\n",
		"audio/a.aac":       "aac",
		"misc/blob.bin":     "bin",
		"sub dir/ünï.ts":    "spaced",
		"low/seg001.ts":     "second",
		"other/notlisted.x": "x",
	})
	delete(rel.files, "other/notlisted.x") // on disk, not in the manifest
	src := &testSource{current: map[string]string{"show": "2"}, rels: map[string]*dirRelease{"show@2": rel}}
	return src, rel
}

func TestServeRangeETagMIMEAndCaching(t *testing.T) {
	src, rel := mediaFixture(t)
	s := newTestServer(t, Config{}, src)

	rec := do(s, "GET", "/media/show@2/low/seg000.ts", nil)
	if rec.Code != 200 || rec.Body.String() != segment {
		t.Fatalf("GET segment: %d %q", rec.Code, rec.Body.String())
	}
	etag := `"sha256-` + rel.files["low/seg000.ts"].SHA256 + `"`
	if got := rec.Header().Get("ETag"); got != etag {
		t.Errorf("ETag %q, want %q", got, etag)
	}
	if got := rec.Header().Get("Cache-Control"); !strings.Contains(got, "immutable") {
		t.Errorf("segment Cache-Control %q, want immutable", got)
	}
	if got := rec.Header().Get("Accept-Ranges"); got != "bytes" {
		t.Errorf("Accept-Ranges %q", got)
	}

	rec = do(s, "GET", "/media/show@2/low/seg000.ts", map[string]string{"Range": "bytes=10-19"})
	if rec.Code != http.StatusPartialContent || rec.Body.String() != segment[10:20] {
		t.Fatalf("Range: %d %q", rec.Code, rec.Body.String())
	}
	if got := rec.Header().Get("Content-Range"); got != "bytes 10-19/36" {
		t.Errorf("Content-Range %q", got)
	}
	rec = do(s, "GET", "/media/show@2/low/seg000.ts", map[string]string{"Range": "bytes=-4"})
	if rec.Code != http.StatusPartialContent || rec.Body.String() != segment[32:] {
		t.Errorf("suffix Range: %d %q", rec.Code, rec.Body.String())
	}
	rec = do(s, "GET", "/media/show@2/low/seg000.ts", map[string]string{"Range": "bytes=100-200"})
	if rec.Code != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("Range past the end: %d", rec.Code)
	}
	rec = do(s, "GET", "/media/show@2/low/seg000.ts", map[string]string{"If-None-Match": etag})
	if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Errorf("If-None-Match: %d", rec.Code)
	}
	rec = do(s, "HEAD", "/media/show@2/low/seg000.ts", nil)
	if rec.Code != 200 || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") != "36" {
		t.Errorf("HEAD: %d len %d %q", rec.Code, rec.Body.Len(), rec.Header().Get("Content-Length"))
	}
	rec = do(s, "POST", "/media/show@2/low/seg000.ts", nil)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}

	for p, want := range map[string]string{
		"index.m3u8":       "application/vnd.apple.mpegurl",
		"dash/out.mpd":     "application/dash+xml",
		"low/seg000.ts":    "video/mp2t",
		"dash/chunk-1.m4s": "video/iso.segment",
		"dash/init.mp4":    "video/mp4",
		"subs/en.vtt":      "text/vtt; charset=utf-8",
		"audio/a.aac":      "audio/aac",
		"misc/blob.bin":    "application/octet-stream",
	} {
		rec := do(s, "GET", "/media/show@2/"+p, nil)
		if rec.Code != 200 || rec.Header().Get("Content-Type") != want {
			t.Errorf("%s: %d %q, want %q", p, rec.Code, rec.Header().Get("Content-Type"), want)
		}
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", p)
		}
	}
	rec = do(s, "GET", "/media/show@2/index.m3u8", nil)
	if got := rec.Header().Get("Cache-Control"); got != "public, max-age=10" {
		t.Errorf("playlist Cache-Control %q", got)
	}
	rec = do(s, "GET", "/media/show@2/sub%20dir/%C3%BCn%C3%AF.ts", nil)
	if rec.Code != 200 || rec.Body.String() != "spaced" {
		t.Errorf("escaped path: %d %q", rec.Code, rec.Body.String())
	}
}

func TestStableURLRedirectsToVersion(t *testing.T) {
	src, _ := mediaFixture(t)
	s := newTestServer(t, Config{}, src)
	rec := do(s, "GET", "/media/show/sub%20dir/%C3%BCn%C3%AF.ts?x=1", nil)
	if rec.Code != http.StatusFound {
		t.Fatalf("stable URL: %d", rec.Code)
	}
	if got := rec.Header().Get("Location"); got != "/media/show@2/sub%20dir/%C3%BCn%C3%AF.ts?x=1" {
		t.Errorf("Location %q", got)
	}
	if got := rec.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("redirect Cache-Control %q", got)
	}
	if rec := do(s, "GET", "/media/nothing/index.m3u8", nil); rec.Code != 404 {
		t.Errorf("unknown release: %d", rec.Code)
	}
	if rec := do(s, "GET", "/media/show@9/index.m3u8", nil); rec.Code != 404 {
		t.Errorf("unknown version: %d", rec.Code)
	}
}

func TestOnlyManifestFilesAreServed(t *testing.T) {
	src, rel := mediaFixture(t)
	// A symlink in the release directory pointing out of it, at a path
	// the manifest does not list, and one replacing a listed file.
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("secret"), 0o600)
	os.Symlink(secret, filepath.Join(rel.dir, "link.ts"))
	s := newTestServer(t, Config{}, src)
	for _, u := range []string{
		"/media/show@2/other/notlisted.x",
		"/media/show@2/link.ts",
		"/media/show@2/../show@2/index.m3u8x",
		"/media/show@2/low/../../../etc/passwd",
		"/media/show@2/low/%2e%2e/%2e%2e/etc/passwd",
		"/media/show@2/low%2f..%2f..%2fetc%2fpasswd",
		"/media/show@2/low/seg000.ts%00",
		"/media/show@2/low\\seg000.ts",
		"/media/show@2/",
		"/media/show@2",
		"/media/sh%2fow@2/index.m3u8",
		"/media/.show@2/index.m3u8",
		"/media/show@../index.m3u8",
	} {
		rec := do(s, "GET", u, nil)
		if rec.Code == 200 || rec.Code == 206 || strings.Contains(rec.Body.String(), "secret") {
			t.Errorf("%s: %d %q", u, rec.Code, rec.Body.String())
		}
	}
}

func TestTamperedFileIsNotServed(t *testing.T) {
	src, rel := mediaFixture(t)
	s := newTestServer(t, Config{}, src)
	if rec := do(s, "GET", "/media/show@2/low/seg001.ts", nil); rec.Code != 200 {
		t.Fatalf("before: %d", rec.Code)
	}
	// Same size, other bytes, a new modification time: checked again.
	p := filepath.Join(rel.dir, "low", "seg001.ts")
	if err := os.WriteFile(p, []byte("SECOND"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	os.Chtimes(p, later, later)
	rec := do(s, "GET", "/media/show@2/low/seg001.ts", nil)
	if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "SECOND") {
		t.Fatalf("tampered: %d %q", rec.Code, rec.Body.String())
	}
	if rec := do(s, "GET", "/media/show@2/low/seg001.ts", map[string]string{"Range": "bytes=0-1"}); rec.Code != http.StatusInternalServerError {
		t.Errorf("tampered, ranged: %d", rec.Code)
	}
	if s.Stats().HashFailed.Load() < 1 {
		t.Error("hash failure not counted")
	}
	// A file of the wrong size is refused without hashing.
	os.WriteFile(filepath.Join(rel.dir, "index.m3u8"), []byte("#EXTM3U\n"), 0o644)
	if rec := do(s, "GET", "/media/show@2/index.m3u8", nil); rec.Code != http.StatusInternalServerError {
		t.Errorf("short file: %d", rec.Code)
	}
}

func TestWaitsForPiecesThenServes(t *testing.T) {
	src, rel := mediaFixture(t)
	rel.gate = make(chan struct{})
	s := newTestServer(t, Config{WaitTimeout: 50 * time.Millisecond}, src)
	rec := do(s, "GET", "/media/show@2/low/seg000.ts", nil)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("still downloading: %d %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("ETag") != "" {
		t.Errorf("a 503 is cacheable: Cache-Control %q, ETag %q", rec.Header().Get("Cache-Control"), rec.Header().Get("ETag"))
	}
	s = newTestServer(t, Config{WaitTimeout: time.Minute}, src)
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- do(s, "GET", "/media/show@2/low/seg000.ts", nil) }()
	select {
	case rec := <-done:
		t.Fatalf("answered before its pieces: %d", rec.Code)
	case <-time.After(100 * time.Millisecond):
	}
	close(rel.gate)
	select {
	case rec := <-done:
		if rec.Code != 200 || rec.Body.String() != segment {
			t.Fatalf("after pieces: %d %q", rec.Code, rec.Body.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no answer once the pieces were in")
	}
	rel.err = &NotReadyError{Reason: "download paused: outside its window"}
	rec = do(s, "GET", "/media/show@2/low/seg001.ts", nil)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "outside its window") {
		t.Errorf("paused: %d %q", rec.Code, rec.Body.String())
	}
	rel.err = errors.New("disk on fire")
	if rec := do(s, "GET", "/media/show@2/low/seg001.ts", nil); rec.Code != 500 || strings.Contains(rec.Body.String(), "fire") {
		t.Errorf("error: %d %q", rec.Code, rec.Body.String())
	}
}

func TestClientAddressAndCORS(t *testing.T) {
	src, _ := mediaFixture(t)
	s := newTestServer(t, Config{AllowOrigins: []string{"http://player.example"}}, src)
	req := httptest.NewRequest("GET", "/media/show@2/index.m3u8", nil)
	req.RemoteAddr = "203.0.113.9:5555"
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("public client: %d", rec.Code)
	}
	rec = do(s, "GET", "/media/show@2/index.m3u8", map[string]string{"Origin": "http://player.example"})
	if rec.Header().Get("Access-Control-Allow-Origin") != "http://player.example" {
		t.Errorf("allowed origin: %q", rec.Header().Get("Access-Control-Allow-Origin"))
	}
	rec = do(s, "GET", "/media/show@2/index.m3u8", map[string]string{"Origin": "http://evil.example"})
	if rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin got CORS: %q", rec.Header().Get("Access-Control-Allow-Origin"))
	}
	// A mounted handler is behind the same address check.
	s.Handle("GET /screens/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "screen") }))
	if rec := do(s, "GET", "/screens/1", nil); rec.Body.String() != "screen" {
		t.Errorf("mounted: %d %q", rec.Code, rec.Body.String())
	}
	req = httptest.NewRequest("GET", "/media/show@2/index.m3u8", nil)
	req.RemoteAddr = "[fe80::1%eth0]:5555" // link-local with a zone
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("link-local client with a zone: %d", rec.Code)
	}
	req = httptest.NewRequest("GET", "/screens/1", nil)
	req.RemoteAddr = "[2001:db8::1]:5555"
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("mounted, public client: %d", rec.Code)
	}
}

func TestConnectionLimitPerClient(t *testing.T) {
	src, _ := mediaFixture(t)
	s := newTestServer(t, Config{MaxConnsPerClient: 2, MaxConns: 4}, src)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		<-served
	})
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		return c
	}
	get := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.WriteString(c, "GET /media/show@2/low/seg000.ts HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200") {
			return errors.New("answer: " + string(buf[:n]))
		}
		return nil
	}
	a, b := dial(), dial()
	for _, c := range []net.Conn{a, b} {
		if err := get(c); err != nil {
			t.Fatalf("within the limit: %v", err)
		}
	}
	if err := get(dial()); err == nil {
		t.Fatal("a third connection from one client was served")
	}
	// Closing one frees its slot (released once the server sees the close).
	a.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := get(dial())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed after a close: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s.Stats().Refused.Load() < 1 {
		t.Error("refused connections not counted")
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Listen: "0.0.0.0:8088", Releases: []string{"signage"}, Allow: []string{"10.0.0.0/8"}, AllowOrigins: []string{"*", "https://app.example"}}.WithDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	if (Config{}).Enabled() || (Config{Listen: "off"}).Enabled() {
		t.Error("off by default")
	}
	for name, c := range map[string]Config{
		"listen":               {Listen: "8088"},
		"releases[0]":          {Releases: []string{"../x"}},
		"allow[0]":             {Allow: []string{"10.0.0.1"}},
		"allow_origins[0]":     {AllowOrigins: []string{"https://app.example/path"}},
		"max_conns_per_client": {MaxConnsPerClient: 10, MaxConns: 5},
		"wait_timeout":         {WaitTimeout: -1},
	} {
		err := c.WithDefaults().Validate()
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A player that stops reading is cut after send_timeout instead of holding
// its connection (and the file) for ever.
func TestClientThatStopsReadingIsCut(t *testing.T) {
	const size = 24 << 20 // more than loopback socket buffers hold
	big := strings.Repeat("x", size)
	rel := newRelease(t, map[string]string{"big.mp4": big})
	src := &testSource{current: map[string]string{}, rels: map[string]*dirRelease{"loop@1": rel}}
	s := newTestServer(t, Config{SendTimeout: 300 * time.Millisecond}, src)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		<-served
	})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /media/loop@1/big.mp4 HTTP/1.1\r\nHost: x\r\n\r\n")
	// Not reading: once the file is checked and sending starts, the
	// socket buffers fill and the next write times out.
	for deadline := time.Now().Add(60 * time.Second); s.Stats().Served.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the file was never served")
		}
	}
	time.Sleep(2 * time.Second)
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	n, err := io.Copy(io.Discard, c)
	if n >= size {
		t.Fatalf("read %d bytes: the stalled response was not cut", n)
	}
	t.Logf("read %d of %d bytes before the cut (%v)", n, size, err)
}

// waitUntil polls cond for up to a minute (a loaded machine is slow).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
	}
}

// A file whose hash takes longer than WaitTimeout (a large file on a slow
// disk): requests give up alone, the one hash goes on and is remembered.
func TestSlowHashOutlivesRequests(t *testing.T) {
	src, _ := mediaFixture(t)
	s := newTestServer(t, Config{WaitTimeout: time.Second}, src)
	var starts, cancelled atomic.Int64
	release := make(chan struct{})
	s.onHashBlock = func(ctx context.Context, off int64) {
		if off == 0 {
			starts.Add(1)
		}
		select {
		case <-release:
		case <-ctx.Done():
			cancelled.Add(1)
		}
	}
	const target = "/media/show@2/low/seg000.ts"

	// The client whose request started the hash goes away.
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequest("GET", target, nil).WithContext(cctx)
	req.RemoteAddr = "10.1.2.3:4567"
	gone := make(chan struct{})
	go func() { defer close(gone); s.ServeHTTP(httptest.NewRecorder(), req) }()
	waitUntil(t, "the hash to start", func() bool { return starts.Load() == 1 })
	cancel()
	select {
	case <-gone:
	case <-time.After(30 * time.Second):
		t.Fatal("a request whose client went away did not end")
	}

	// The next one waits its WaitTimeout and is told to come back.
	rec := do(s, "GET", target, nil)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("hash under way: %d %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if n := starts.Load(); n != 1 {
		t.Fatalf("%d hashes started, want 1 shared", n)
	}

	close(release)
	waitUntil(t, "the hash to end", func() bool { return s.Stats().HashedBytes.Load() == int64(len(segment)) })
	for i := 0; i < 2; i++ {
		rec = do(s, "GET", target, nil)
		if rec.Code != 200 || rec.Body.String() != segment {
			t.Fatalf("after the hash: %d %q", rec.Code, rec.Body.String())
		}
	}
	if n, c := starts.Load(), cancelled.Load(); n != 1 || c != 0 {
		t.Errorf("hashes started %d (want 1), cancelled %d (want 0)", n, c)
	}
}

func TestCloseStopsHashes(t *testing.T) {
	src, _ := mediaFixture(t)
	s := newTestServer(t, Config{WaitTimeout: 50 * time.Millisecond}, src)
	var starts, cancelled atomic.Int64
	s.onHashBlock = func(ctx context.Context, off int64) {
		if off == 0 {
			starts.Add(1)
		}
		<-ctx.Done()
		cancelled.Add(1)
	}
	for _, p := range []string{"low/seg000.ts", "low/seg001.ts", "index.m3u8"} {
		if rec := do(s, "GET", "/media/show@2/"+p, nil); rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s while hashing: %d", p, rec.Code)
		}
	}
	waitUntil(t, "two hashes to start", func() bool { return starts.Load() == 2 })
	time.Sleep(100 * time.Millisecond) // a third, if unbounded, would start now
	if n := starts.Load(); n != 2 {
		t.Errorf("%d hashes at once, want at most 2", n)
	}
	closed := make(chan struct{})
	go func() { defer close(closed); s.Close() }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not stop the hashes")
	}
	if n, c := starts.Load(), cancelled.Load(); c != n {
		t.Errorf("hashes started %d, stopped %d", n, c)
	}
	if b := s.Stats().HashedBytes.Load(); b != 0 {
		t.Errorf("a stopped hash counted %d bytes", b)
	}
	if rec := do(s, "GET", "/media/show@2/low/seg000.ts", nil); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("after Close: %d", rec.Code)
	}
}
