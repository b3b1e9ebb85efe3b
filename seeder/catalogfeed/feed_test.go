package catalogfeed_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/catalogevents"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/seeder/catalogfeed"
)

// wait bounds every wait for something that must happen: generous, for a
// loaded CI machine; the tests never assert how fast.
const wait = 30 * time.Second

// stream is one watcher's connection, its events delivered on a channel.
type stream struct {
	resp     *http.Response
	versions chan int64
	comments atomic.Int64
	err      chan error
}

func watch(t *testing.T, url string, hdr map[string]string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+catalogevents.Path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &stream{resp: resp, versions: make(chan int64, 100), err: make(chan error, 1)}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		return s
	}
	go func() {
		d := catalogevents.NewDecoder(resp.Body)
		d.OnComment = func() { s.comments.Add(1) }
		for {
			ev, err := d.Next()
			if err != nil {
				s.err <- err
				return
			}
			if v, err := catalogevents.Version(ev); err == nil {
				s.versions <- v
			}
		}
	}()
	return s
}

// next returns the next version the stream gets, failing after wait.
func (s *stream) next(t *testing.T) int64 {
	t.Helper()
	select {
	case v := <-s.versions:
		return v
	case err := <-s.err:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(wait):
		t.Fatal("no event")
	}
	return 0
}

func serve(t *testing.T, cfg catalogfeed.Config) (*catalogfeed.Feed, *httptest.Server) {
	t.Helper()
	f := catalogfeed.New(cfg)
	srv := httptest.NewServer(f)
	t.Cleanup(func() { f.Close(); srv.Close() })
	return f, srv
}

func TestFeedTellsWatchersAndCoalesces(t *testing.T) {
	f, srv := serve(t, catalogfeed.Config{MinInterval: time.Hour})
	f.Publish(3)
	s := watch(t, srv.URL, nil)
	if s.resp.Header.Get("Content-Type") != catalogevents.ContentType {
		t.Fatalf("content type %q", s.resp.Header.Get("Content-Type"))
	}
	if v := s.next(t); v != 3 {
		t.Fatalf("first event %d, want the current version 3", v)
	}
	// Within MinInterval every later version waits, and only the newest
	// would be sent: nothing is queued per watcher.
	for v := int64(4); v <= 50; v++ {
		f.Publish(v)
	}
	if f.Publish(10) {
		t.Error("an older version was published")
	}
	select {
	case v := <-s.versions:
		t.Fatalf("event %d inside min_interval", v)
	case <-time.After(300 * time.Millisecond):
	}

	// A short MinInterval: a burst ends with the newest version told.
	f2, srv2 := serve(t, catalogfeed.Config{MinInterval: 50 * time.Millisecond})
	s2 := watch(t, srv2.URL, nil)
	testenv.Eventually(t, wait, 10*time.Millisecond, func() error {
		if f2.Watchers() != 1 {
			return errors.New("watcher not registered")
		}
		return nil
	})
	for v := int64(1); v <= 200; v++ {
		f2.Publish(v)
	}
	got := 0
	for {
		got++
		if v := s2.next(t); v == 200 {
			break
		}
	}
	t.Logf("200 versions published in a burst reached the watcher as %d events", got)
}

func TestFeedCaps(t *testing.T) {
	f, srv := serve(t, catalogfeed.Config{MaxWatchers: 3, MaxWatchersPerAddress: 2})
	f.Publish(1)
	a := watch(t, srv.URL, nil)
	b := watch(t, srv.URL, nil)
	if a.resp.StatusCode != 200 || b.resp.StatusCode != 200 {
		t.Fatalf("first two watchers: %s, %s", a.resp.Status, b.resp.Status)
	}
	c := watch(t, srv.URL, nil)
	if c.resp.StatusCode != http.StatusTooManyRequests || c.resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third watcher from one address: %s (Retry-After %q), want 429 with Retry-After", c.resp.Status, c.resp.Header.Get("Retry-After"))
	}
	// A watcher that leaves frees its slot.
	a.resp.Body.Close()
	testenv.Eventually(t, wait, 10*time.Millisecond, func() error {
		if n := f.Watchers(); n != 1 {
			return fmt.Errorf("%d watchers after one left, want 1", n)
		}
		return nil
	})
	if d := watch(t, srv.URL, nil); d.resp.StatusCode != 200 {
		t.Fatalf("after one left: %s", d.resp.Status)
	}

	// The total cap: 503.
	g, srv2 := serve(t, catalogfeed.Config{MaxWatchers: 1, MaxWatchersPerAddress: -1})
	g.Publish(1)
	if s := watch(t, srv2.URL, nil); s.resp.StatusCode != 200 {
		t.Fatalf("first: %s", s.resp.Status)
	}
	if s := watch(t, srv2.URL, nil); s.resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("over the total cap: %s, want 503", s.resp.Status)
	}
	if s := watch(t, srv2.URL, nil); s.resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("over the total cap again: %s, want 503", s.resp.Status)
	}
	req := httptest.NewRequest("POST", catalogevents.Path, nil)
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", rec.Code)
	}
}

func TestFeedResumesFromLastEventID(t *testing.T) {
	f, srv := serve(t, catalogfeed.Config{Heartbeat: time.Second})
	f.Publish(7)
	s := watch(t, srv.URL, map[string]string{"Last-Event-ID": "7"})
	// No event for the version the client has; heartbeats keep it alive.
	testenv.Eventually(t, wait, 50*time.Millisecond, func() error {
		if s.comments.Load() == 0 {
			return errors.New("no heartbeat yet")
		}
		return nil
	})
	select {
	case v := <-s.versions:
		t.Fatalf("event %d for the version the client already had", v)
	default:
	}
	f.Publish(8)
	if v := s.next(t); v != 8 {
		t.Fatalf("event %d, want 8", v)
	}
	// A client that had an older version gets the current one at once.
	if v := watch(t, srv.URL, map[string]string{"Last-Event-ID": "5"}).next(t); v != 8 {
		t.Fatalf("resume from 5: event %d, want 8", v)
	}
}

func TestFeedCloseEndsStreams(t *testing.T) {
	f, srv := serve(t, catalogfeed.Config{})
	f.Publish(1)
	s := watch(t, srv.URL, nil)
	s.next(t)
	f.Close()
	select {
	case <-s.err:
	case <-time.After(wait):
		t.Fatal("stream still open after Close")
	}
	if s := watch(t, srv.URL, nil); s.resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after Close: %s, want 503", s.resp.Status)
	}
	if f.Publish(2) {
		t.Error("a closed feed took a version")
	}
}

// stuckWriter is a client that takes no bytes: each write blocks until the
// write deadline the feed sets, then fails as a timed-out socket does.
type stuckWriter struct {
	hdr      http.Header
	mu       sync.Mutex
	deadline time.Time
	ctx      context.Context
}

func (w *stuckWriter) Header() http.Header { return w.hdr }
func (w *stuckWriter) WriteHeader(int)     {}
func (w *stuckWriter) SetWriteDeadline(d time.Time) error {
	w.mu.Lock()
	w.deadline = d
	w.mu.Unlock()
	return nil
}
func (w *stuckWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	d := w.deadline
	w.mu.Unlock()
	if d.IsZero() {
		<-w.ctx.Done()
		return 0, w.ctx.Err()
	}
	select {
	case <-time.After(time.Until(d)):
		return 0, os.ErrDeadlineExceeded
	case <-w.ctx.Done():
		return 0, w.ctx.Err()
	}
}

func TestFeedDropsStuckWatcher(t *testing.T) {
	f := catalogfeed.New(catalogfeed.Config{WriteTimeout: 100 * time.Millisecond})
	t.Cleanup(f.Close)
	f.Publish(1)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	w := &stuckWriter{hdr: http.Header{}, ctx: ctx}
	done := make(chan struct{})
	go func() {
		f.ServeHTTP(w, httptest.NewRequest("GET", catalogevents.Path, nil).WithContext(ctx))
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("a watcher that takes no bytes was kept")
	}
	if n := f.Watchers(); n != 0 {
		t.Fatalf("%d watchers after the drop", n)
	}
}

func TestWatchStoreSeesTimestampChanges(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "metadata"), 0o755)
	store, err := catalog.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	ts := filepath.Join(dir, "metadata", "timestamp.json")
	// Replace the file whole: os.WriteFile truncates first, and a poll
	// between the truncation and the write would read an empty file.
	write := func(b string) {
		t.Helper()
		tmp := ts + ".tmp"
		if err := os.WriteFile(tmp, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, ts); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"v":1}`)
	var calls atomic.Int64
	cs := &countingStore{Store: store}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { catalogfeed.WatchStore(ctx, cs, 100*time.Millisecond, func() { calls.Add(1) }); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitCalls := func(n int64) {
		t.Helper()
		testenv.Eventually(t, wait, 20*time.Millisecond, func() error {
			if c := calls.Load(); c != n {
				return fmt.Errorf("%d calls, want %d", c, n)
			}
			return nil
		})
	}
	waitCalls(1) // the first read
	write(`{"v":2}`)
	waitCalls(2)
	if err := os.Remove(ts); err != nil {
		t.Fatal(err)
	}
	// Wait until a poll has found nothing.
	testenv.Eventually(t, wait, 20*time.Millisecond, func() error {
		if cs.misses.Load() < 1 {
			return errors.New("not polled since the removal")
		}
		return nil
	})
	write(`{"v":2}`)
	waitCalls(3) // back after missing: news, even with the same bytes
}

// countingStore counts reads, and those that found nothing.
type countingStore struct {
	catalog.Store
	gets, misses atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	c.gets.Add(1)
	rc, err := c.Store.Get(ctx, key)
	if errors.Is(err, catalog.ErrNotFound) {
		c.misses.Add(1)
	}
	return rc, err
}

func TestMemoryBusNewestWins(t *testing.T) {
	var b catalogfeed.MemoryBus
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan int64, 10)
	done := make(chan struct{})
	go func() { b.Subscribe(ctx, func(v int64) { got <- v }); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	testenv.Eventually(t, wait, 10*time.Millisecond, func() error {
		b.Publish(ctx, 1)
		select {
		case <-got:
			return nil
		default:
			return errors.New("subscriber not there yet")
		}
	})
	for v := int64(2); v <= 5; v++ {
		b.Publish(ctx, v)
	}
	for {
		select {
		case v := <-got:
			if v == 5 {
				return
			}
		case <-time.After(wait):
			t.Fatal("the newest version never arrived")
		}
	}
}
