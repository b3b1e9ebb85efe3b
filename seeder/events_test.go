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

	"github.com/redis/go-redis/v9"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/internal/catalogevents"
	"github.com/swarmship/swarmship/internal/state"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/internal/token"
	"github.com/swarmship/swarmship/seeder"
	"github.com/swarmship/swarmship/seeder/catalogfeed"
)

// openEvents opens the catalog change stream and returns the response and
// a channel of the versions it announces.
func openEvents(t *testing.T, url string, hdr map[string]string) (*http.Response, <-chan int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	ch := make(chan int64, 16)
	if resp.StatusCode == http.StatusOK {
		go func() {
			defer close(ch)
			d := catalogevents.NewDecoder(resp.Body)
			for {
				ev, err := d.Next()
				if err != nil {
					return
				}
				if v, err := catalogevents.Version(ev); err == nil {
					ch <- v
				}
			}
		}()
	}
	return resp, ch
}

func nextVersion(t *testing.T, ch <-chan int64) int64 {
	t.Helper()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatal("stream ended")
		}
		return v
	case <-time.After(60 * time.Second):
		t.Fatal("no catalog event")
	}
	return 0
}

// twoVersions is a catalog under dir with app 1.0 and 2.0 published.
func twoVersions(t *testing.T, dir string) (*catalog.DirStore, catalog.Keys, []byte) {
	t.Helper()
	store, keys, root := newTestCatalog(t, dir)
	src := filepath.Join(dir, "f.bin")
	os.WriteFile(src, []byte("payload"), 0o644)
	for _, v := range []string{"1.0", "2.0"} {
		if _, err := publish.Publish(t.Context(), store, keys, publish.PublishOptions{Name: "app", Version: v, Paths: []string{src}, Workers: 1}); err != nil {
			t.Fatal(err)
		}
	}
	return store, keys, root
}

// runOrigin runs o until the test ends and serves it; it returns once the
// origin is ready.
func runOrigin(t *testing.T, o *seeder.Origin) *httptest.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); o.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; o.Close() })
	srv := httptest.NewServer(o.Handler())
	t.Cleanup(srv.Close)
	waitReady(t, srv.Client(), srv.URL)
	return srv
}

// TestCatalogEventsFollowPromote: the origin tells watchers the version it
// verified, and a promote written to the store by someone else (the CLI)
// reaches them without waiting for the origin's refresh interval.
func TestCatalogEventsFollowPromote(t *testing.T) {
	dir := t.TempDir()
	store, keys, root := twoVersions(t, dir)
	client, err := catalog.NewClient(store, root, filepath.Join(dir, "tuf"))
	if err != nil {
		t.Fatal(err)
	}
	seed := false
	o, err := seeder.New(seeder.Config{
		Seed: &seed, CacheDir: filepath.Join(dir, "cache"), RefreshInterval: time.Hour,
		Events: catalogfeed.Config{PollInterval: 100 * time.Millisecond, MinInterval: 10 * time.Millisecond},
	}, store, client, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	bus := &catalogfeed.MemoryBus{}
	o.SetEventBus(bus)
	fromBus := make(chan int64, 16)
	ctx, cancel := context.WithCancel(context.Background())
	busDone := make(chan struct{})
	go func() { bus.Subscribe(ctx, func(v int64) { fromBus <- v }); close(busDone) }()
	t.Cleanup(func() { cancel(); <-busDone })
	srv := runOrigin(t, o)

	resp, events := openEvents(t, srv.URL+catalogevents.Path, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events: %s", resp.Status)
	}
	first := nextVersion(t, events)
	repo, err := catalog.OpenRepo(t.Context(), store, keys, catalog.DefaultExpiry)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Promote("app", "2.0", "stable"); err != nil {
		t.Fatal(err)
	}
	if err := repo.Commit(t.Context(), time.Now()); err != nil {
		t.Fatal(err)
	}
	next := nextVersion(t, events)
	if next <= first {
		t.Fatalf("after the promote: version %d, want more than %d", next, first)
	}
	// What watchers are told, the origin has verified: its catalog says
	// stable is 2.0 already.
	if r, err := client.Resolve("app", "stable", ""); err != nil || r.Version != "2.0" {
		t.Fatalf("origin's catalog after the event: %v, %v", r, err)
	}
	// Other origins hear of it on the bus.
	for v := int64(0); v != next; {
		select {
		case v = <-fromBus:
		case <-time.After(60 * time.Second):
			t.Fatalf("version %d never went out on the bus", next)
		}
	}
}

// TestCatalogEventsNeedATokenWithPrivateCatalog: with private_catalog the
// stream asks for a token like the catalog's metadata, any tenant's.
func TestCatalogEventsNeedATokenWithPrivateCatalog(t *testing.T) {
	to := newTenantOrigin(t)
	resp, _ := openEvents(t, to.srv.URL+catalogevents.Path, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %s, want 401", resp.Status)
	}
	resp, _ = openEvents(t, to.srv.URL+catalogevents.Path, map[string]string{"Authorization": "Bearer not-a-token"})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("bad token: %s, want 403", resp.Status)
	}
	for _, c := range []token.Claims{
		{Tenant: "globex", Site: "s1"},
		{Tenant: "acme", Role: token.RoleOperator},
	} {
		resp, events := openEvents(t, to.srv.URL+catalogevents.Path, bearer(to.issue(t, c)))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%+v: %s", c, resp.Status)
		}
		if v := nextVersion(t, events); v < 1 {
			t.Fatalf("%+v: version %d", c, v)
		}
	}
	// The token stays out of URLs here too.
	tok := to.issue(t, token.Claims{Tenant: "globex", Site: "s1"})
	resp, _ = openEvents(t, to.srv.URL+catalogevents.Path+"?token="+tok, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("token in the query: %s, want 401", resp.Status)
	}
}

// TestCatalogEventsReachManyWatchers is the small version of
// scripts/bench/watchers: 200 watchers on one origin are all told of a
// promote. The time to the last one is logged, not asserted.
func TestCatalogEventsReachManyWatchers(t *testing.T) {
	dir := t.TempDir()
	store, keys, root := twoVersions(t, dir)
	client, err := catalog.NewClient(store, root, filepath.Join(dir, "tuf"))
	if err != nil {
		t.Fatal(err)
	}
	seed := false
	o, err := seeder.New(seeder.Config{
		Seed: &seed, CacheDir: filepath.Join(dir, "cache"), RefreshInterval: time.Hour,
		Events: catalogfeed.Config{MaxWatchersPerAddress: -1},
	}, store, client, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := runOrigin(t, o)

	const n = 200
	streams := make([]<-chan int64, n)
	var first int64
	for i := range streams {
		resp, ch := openEvents(t, srv.URL+catalogevents.Path, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("watcher %d: %s", i, resp.Status)
		}
		streams[i] = ch
	}
	for _, ch := range streams {
		first = max(first, nextVersion(t, ch))
	}
	repo, err := catalog.OpenRepo(t.Context(), store, keys, catalog.DefaultExpiry)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Promote("app", "2.0", "stable"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := repo.Commit(t.Context(), time.Now()); err != nil {
		t.Fatal(err)
	}
	for i, ch := range streams {
		if v := nextVersion(t, ch); v <= first {
			t.Fatalf("watcher %d: version %d after the promote, want more than %d", i, v, first)
		}
	}
	t.Logf("promote -> all %d watchers told: %v", n, time.Since(start).Round(time.Millisecond))
}

// TestCatalogEventsAcrossOriginsOnRedis: two origins share a Redis; the
// second polls its catalog only hourly, yet its watchers hear of a promote
// as soon as the first origin verified it, over Redis pub/sub, and the
// second announces it only after its own refresh verified it.
func TestCatalogEventsAcrossOriginsOnRedis(t *testing.T) {
	rd := testenv.StartRedis(t)
	dir := t.TempDir()
	store, keys, root := twoVersions(t, dir)
	shared := state.Config{Redis: &state.RedisConfig{URL: rd.URL, Prefix: "events-test"}}
	start := func(name string, poll time.Duration) (*httptest.Server, *catalog.Client) {
		client, err := catalog.NewClient(store, root, filepath.Join(dir, name, "tuf"))
		if err != nil {
			t.Fatal(err)
		}
		seed := false
		o, err := seeder.New(seeder.Config{
			Seed: &seed, CacheDir: filepath.Join(dir, name, "cache"), RefreshInterval: time.Hour, State: shared,
			Events: catalogfeed.Config{PollInterval: poll, MinInterval: 10 * time.Millisecond},
		}, store, client, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		return runOrigin(t, o), client
	}
	_, _ = start("a", 100*time.Millisecond)
	srvB, clientB := start("b", time.Hour)
	resp, events := openEvents(t, srvB.URL+catalogevents.Path, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events on b: %s", resp.Status)
	}
	first := nextVersion(t, events)
	// Both subscribed before the change: nothing is stored in pub/sub.
	testenv.Eventually(t, 30*time.Second, 20*time.Millisecond, func() error {
		n, err := redisSubscribers(rd.URL, "events-test:catalog:events")
		if err != nil || n < 2 {
			return fmt.Errorf("%d subscribers (%v)", n, err)
		}
		return nil
	})
	repo, err := catalog.OpenRepo(t.Context(), store, keys, catalog.DefaultExpiry)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Promote("app", "2.0", "stable"); err != nil {
		t.Fatal(err)
	}
	if err := repo.Commit(t.Context(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if v := nextVersion(t, events); v <= first {
		t.Fatalf("b told version %d, want more than %d", v, first)
	}
	if r, err := clientB.Resolve("app", "stable", ""); err != nil || r.Version != "2.0" {
		t.Fatalf("b's own catalog when it told its watchers: %v, %v", r, err)
	}
}

// redisSubscribers counts the subscribers of a pub/sub channel.
func redisSubscribers(url, channel string) (int64, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return 0, err
	}
	c := redis.NewClient(opt)
	defer c.Close()
	m, err := c.PubSubNumSub(context.Background(), channel).Result()
	return m[channel], err
}

// TestCatalogEventsOff: with events.enabled false there is no stream (404,
// which agents take for "not offered" and poll).
func TestCatalogEventsOff(t *testing.T) {
	off := false
	srv, _, _ := newOriginWith(t, seeder.Config{Events: catalogfeed.Config{Enabled: &off}}, nil)
	resp, _ := openEvents(t, srv.URL+catalogevents.Path, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("events off: %s, want 404", resp.Status)
	}
	if _, err := seeder.ParseConfig("origin.yaml", []byte("events:\n  heartbeat: 2m\n"), nil); err == nil || !strings.Contains(err.Error(), "events.heartbeat") {
		t.Errorf("a heartbeat agents would take for a dead stream: %v", err)
	}
	if _, err := seeder.ParseConfig("origin.yaml", []byte("events:\n  max_watchers: -1\n  max_watchers_per_address: 10\n  poll_interval: 500ms\n"), nil); err != nil {
		t.Errorf("valid events section: %v", err)
	}
}
