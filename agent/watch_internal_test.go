package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/catalogevents"
	"github.com/swarmship/swarmship/internal/testenv"
)

func testWatch(base string, hint func()) *catalogWatch {
	return &catalogWatch{
		bases:  []string{base},
		client: watchClient(http.DefaultTransport),
		hint:   hint,
		log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		now:    time.Now,
		last:   -1,

		connectTimeout: watchConnect,
	}
}

func runWatch(t *testing.T, w *catalogWatch) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestWatchHintsOnNewVersionsAndResumes: a new version is a hint, a
// repeated one is not; a reconnect sends Last-Event-ID.
func TestWatchHintsOnNewVersionsAndResumes(t *testing.T) {
	var mu sync.Mutex
	var lastIDs []string
	versions := make(chan int64, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != catalogevents.Path {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		mu.Unlock()
		w.Header().Set("Content-Type", catalogevents.ContentType+"; charset=utf-8")
		for {
			select {
			case v := <-versions:
				if v < 0 { // end this stream: the client reconnects
					return
				}
				catalogevents.WriteChange(w, v)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	var hints atomic.Int64
	w := testWatch(srv.URL+"/", func() { hints.Add(1) })
	runWatch(t, w)
	waitHints := func(n int64) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, 10*time.Millisecond, func() error {
			if h := hints.Load(); h != n {
				return fmt.Errorf("%d hints, want %d", h, n)
			}
			return nil
		})
	}
	versions <- 4
	waitHints(1)
	if s := w.State(); !strings.HasPrefix(s, "following ") {
		t.Errorf("state %q", s)
	}
	versions <- 4 // the same version again: no hint
	versions <- 5
	waitHints(2)
	versions <- -1
	testenv.Eventually(t, 30*time.Second, 10*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(lastIDs) < 2 {
			return fmt.Errorf("%d connections", len(lastIDs))
		}
		return nil
	})
	mu.Lock()
	if lastIDs[0] != "" || lastIDs[1] != "5" {
		t.Errorf("Last-Event-ID on the connections: %q, want none then 5", lastIDs)
	}
	mu.Unlock()
	versions <- 5 // what it had: still no hint
	versions <- 6
	waitHints(3)
	if w.hints.Load() != 3 || !w.following.Load() {
		t.Errorf("metrics: %d hints, following %v; want 3, true", w.hints.Load(), w.following.Load())
	}
}

// TestWatchNotOffered: an origin without the stream (404) or a mirror that
// answers something else leaves the agent polling, and says so.
func TestWatchNotOffered(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"404":        http.NotFound,
		"not sse":    func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) },
		"forbidden":  func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusForbidden) },
		"wrong path": func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) },
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			w := testWatch(srv.URL, func() { t.Error("hint from an origin without the stream") })
			runWatch(t, w)
			testenv.Eventually(t, 30*time.Second, 10*time.Millisecond, func() error {
				if s := w.State(); !strings.HasPrefix(s, "not offered") {
					return fmt.Errorf("state %q", s)
				}
				return nil
			})
		})
	}
}

// TestWatchBoundsHostileOrigin: an origin that sends a new version
// nonstop gets at most about one refresh a second out of the agent.
func TestWatchBoundsHostileOrigin(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", catalogevents.ContentType)
		for v := int64(1); r.Context().Err() == nil; v++ {
			if catalogevents.WriteChange(w, v) != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	var hints atomic.Int64
	w := testWatch(srv.URL, func() { hints.Add(1) })
	start := time.Now()
	runWatch(t, w)
	testenv.Eventually(t, 30*time.Second, 10*time.Millisecond, func() error {
		if hints.Load() < 2 {
			return fmt.Errorf("%d hints", hints.Load())
		}
		return nil
	})
	elapsed := time.Since(start)
	if h, limit := hints.Load(), int64(elapsed/hintGap)+2; h > limit {
		t.Fatalf("%d hints in %v, want at most %d (one per %v)", h, elapsed, limit, hintGap)
	}
}

func TestWatchBases(t *testing.T) {
	for _, tc := range []struct {
		c    CatalogConfig
		want int
	}{
		{CatalogConfig{URL: "http://origin:7070/", Watch: WatchAuto}, 1},
		{CatalogConfig{URL: "HTTPS://origin/", Watch: WatchAuto}, 1},
		{CatalogConfig{URL: "http://origin:7070/", Watch: WatchOff}, 0},
		{CatalogConfig{URL: "s3://bucket/prefix", Watch: WatchAuto}, 0},
		{CatalogConfig{URL: "/srv/catalog", Watch: WatchAuto}, 0},
		{CatalogConfig{URLs: []string{"s3://b/p", "http://a/", "https://b/"}, Watch: WatchAuto}, 2},
	} {
		if got := len(tc.c.watchBases()); got != tc.want {
			t.Errorf("%+v: %d bases, want %d", tc.c, got, tc.want)
		}
	}
	if u := eventsURL("http://o:1/mirror/"); u != "http://o:1/mirror"+catalogevents.Path {
		t.Errorf("events URL %q", u)
	}
}

// TestWatchFollowsFirstMirrorThatOffers: mirrors are tried in order; one
// that is down, hangs or serves no stream is passed over for the next.
func TestWatchFollowsFirstMirrorThatOffers(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close() // connection refused
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(hang.Close)
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", catalogevents.ContentType)
		catalogevents.WriteChange(w, 9)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(origin.Close)
	var hints atomic.Int64
	w := testWatch(downURL, func() { hints.Add(1) })
	w.bases = []string{downURL + "/", hang.URL + "/", plain.URL + "/", origin.URL + "/"}
	w.connectTimeout = 200 * time.Millisecond
	runWatch(t, w)
	testenv.Eventually(t, 30*time.Second, 10*time.Millisecond, func() error {
		if s := w.State(); s != "following "+origin.URL+catalogevents.Path || hints.Load() != 1 {
			return fmt.Errorf("state %q, %d hints", s, hints.Load())
		}
		return nil
	})
}
