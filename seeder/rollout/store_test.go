package rollout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/report"
	"github.com/swarmship/swarmship/internal/state"
	"github.com/swarmship/swarmship/internal/testenv"
)

// storeKind is one implementation of recordStore. fresh gives an opener
// of a new, empty store; the Reports one opener opens share their records
// when the kind is shared (two origins on one Redis).
type storeKind struct {
	name   string
	shared bool
	fresh  func(t *testing.T) func(cfg Config, clock *fakeClock) *Reports
}

var redisPrefixes atomic.Int64

// openRedis connects to a test Redis the way an origin does, with a
// timeout no stall of a loaded machine reaches (a killed Redis refuses at
// once, so the "away" test does not wait for it).
func openRedis(t *testing.T, url, prefix string) *state.Redis {
	t.Helper()
	rdb, err := state.Open(context.Background(), state.Config{Redis: &state.RedisConfig{URL: url, Prefix: prefix, Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// storeKinds are the stores every behaviour below runs on: memory,
// memory with reports.db, and Redis (one redis-server for the test, a key
// prefix per store).
func storeKinds(t *testing.T) ([]storeKind, *testenv.Redis) {
	rs := testenv.StartRedis(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	withClock := func(t *testing.T, s *Reports, clock *fakeClock) *Reports {
		t.Cleanup(func() { s.Close() })
		s.now = clock.Now
		return s
	}
	return []storeKind{
		{"memory", false, func(t *testing.T) func(Config, *fakeClock) *Reports {
			return func(cfg Config, clock *fakeClock) *Reports {
				s, err := Open(cfg, "", Origin{}, quiet)
				if err != nil {
					t.Fatal(err)
				}
				return withClock(t, s, clock)
			}
		}},
		{"bbolt", false, func(t *testing.T) func(Config, *fakeClock) *Reports {
			return func(cfg Config, clock *fakeClock) *Reports {
				s, err := Open(cfg, t.TempDir(), Origin{}, quiet)
				if err != nil {
					t.Fatal(err)
				}
				s.db.NoSync, s.db.MaxBatchDelay = true, time.Microsecond
				return withClock(t, s, clock)
			}
		}},
		{"redis", true, func(t *testing.T) func(Config, *fakeClock) *Reports {
			prefix := fmt.Sprintf("test%d", redisPrefixes.Add(1))
			return func(cfg Config, clock *fakeClock) *Reports {
				s, err := OpenShared(cfg, openRedis(t, rs.URL, prefix), Origin{}, quiet)
				if err != nil {
					t.Fatal(err)
				}
				return withClock(t, s, clock)
			}
		}},
	}, rs
}

func newClock() *fakeClock { return &fakeClock{t: time.Now().Truncate(time.Second)} }

func downloading(id, tenant string, completed int64) *report.Report {
	r := mkReport(id, "store-1", "eu", "1.0", rel("1.0", "downloading", completed, report.Bytes{Peer: completed}))
	r.Tenant = tenant
	return r
}

func getRecord(t *testing.T, s *Reports, key string) *agentRecord {
	t.Helper()
	rec, err := s.store.get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// The store's behaviours, one table over every implementation.
func TestRecordStores(t *testing.T) {
	kinds, _ := storeKinds(t)
	behaviours := []struct {
		name string
		run  func(t *testing.T, k storeKind, open func(Config, *fakeClock) *Reports) // open: one store
	}{
		{"latest report and bounded history", func(t *testing.T, _ storeKind, open func(Config, *fakeClock) *Reports) {
			clock := newClock()
			s := open(Config{}, clock)
			for i := range 40 {
				clock.Add(time.Second)
				if err := s.ingest(downloading("a1", "", int64(i*10))); err != nil {
					t.Fatal(err)
				}
			}
			rec := getRecord(t, s, recordKey("", "a1"))
			if rec == nil || len(rec.History) != 32 || rec.Report.Releases[0].Completed != 390 || rec.History[31].Releases[0].Completed != 390 {
				t.Fatalf("record %+v", rec)
			}
			srv := httptest.NewServer(mux(s))
			defer srv.Close()
			resp, err := http.Get(srv.URL + "/api/v1/agents/a1")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("GET agent: %s", resp.Status)
			}
			if resp, _ := http.Get(srv.URL + "/api/v1/agents/nope"); resp.StatusCode != 404 {
				t.Errorf("unknown agent: %s", resp.Status)
			}
		}},
		{"view aggregates the records", func(t *testing.T, _ storeKind, open func(Config, *fakeClock) *Reports) {
			s := open(Config{}, newClock())
			s.ingest(mkReport("a1", "store-1", "eu", "1.0", rel("1.0", "active", 1000, report.Bytes{Peer: 600, Origin: 400})))
			s.ingest(mkReport("a2", "store-1", "eu", "1.0", rel("1.0", "downloading", 500, report.Bytes{Peer: 500})))
			s.ingest(mkReport("a3", "store-2", "us", "1.0"))
			ro := s.View()
			r := findRelease(t, ro, "app@1.0")
			if ro.Agents.Known != 3 || r.Subscribed != 3 || r.Active != 1 || r.Bytes != (report.Bytes{Peer: 1100, Origin: 400}) {
				t.Errorf("agents %+v, release %+v", ro.Agents, r)
			}
		}},
		{"budgets", func(t *testing.T, k storeKind, open func(Config, *fakeClock) *Reports) {
			s := open(Config{MaxAgents: 3, MaxAgentsPerTenant: 2}, newClock())
			for _, c := range []struct {
				id, tenant string
				want       error
			}{{"a1", "t0", nil}, {"a2", "t0", nil}, {"a3", "t0", errTooManyAgents}, {"b1", "t1", nil}, {"b2", "t1", errTooManyAgents}, {"a1", "t0", nil}} {
				if err := s.ingest(downloading(c.id, c.tenant, 1)); !errors.Is(err, c.want) {
					t.Errorf("%s/%s: %v, want %v", c.tenant, c.id, err, c.want)
				}
			}
			one := len(mustJSON(downloading("x", "t0", 1))) // about a record's size
			s2 := k.fresh(t)(Config{MaxRecordBytes: one / 2}, newClock())
			if err := s2.ingest(downloading("a1", "", 1)); !errors.Is(err, errRecordTooBig) {
				t.Errorf("record over max_record_bytes: %v", err)
			}
			s3 := k.fresh(t)(Config{MaxTenantBytes: int64(3 * one), MaxBytes: int64(5 * one)}, newClock())
			var full int
			for i := range 6 {
				for _, tenant := range []string{"t0", "t1"} {
					if err := s3.ingest(downloading(fmt.Sprint("a", i), tenant, 1)); errors.Is(err, errReportsFull) {
						full++
					} else if err != nil {
						t.Fatal(err)
					}
				}
			}
			s3.mu.RLock()
			defer s3.mu.RUnlock()
			if full == 0 || s3.totalBytes > int64(5*one) || len(s3.agents) > 5 {
				t.Errorf("%d refused as full, %d bytes and %d agents kept (budget %d bytes)", full, s3.totalBytes, len(s3.agents), 5*one)
			}
		}},
		{"bound to site and address", func(t *testing.T, _ storeKind, open func(Config, *fakeClock) *Reports) {
			s := open(Config{}, newClock())
			h := mux(s)
			real := mkReport("a1", "store-1", "eu", "1.0", rel("1.0", "active", 1000, report.Bytes{Peer: 1000}))
			if c := postFrom(h, "10.0.0.1:5000", mustJSON(real)); c != http.StatusNoContent {
				t.Fatalf("real report: %d", c)
			}
			fake := mkReport("a1", "store-1", "eu", "1.0", rel("1.0", "failed", 0, report.Bytes{}))
			if c := postFrom(h, "10.6.6.6:5000", mustJSON(fake)); c != http.StatusForbidden {
				t.Errorf("fake from another address: %d", c)
			}
			fake.Site = "store-9"
			if c := postFrom(h, "10.0.0.1:5000", mustJSON(fake)); c != http.StatusForbidden {
				t.Errorf("fake moving the agent: %d", c)
			}
			if rec := getRecord(t, s, recordKey("", "a1")); rec.Report.Releases[0].State != "active" {
				t.Errorf("record overwritten: %+v", rec.Report)
			}
		}},
		{"forget gives the budget back", func(t *testing.T, _ storeKind, open func(Config, *fakeClock) *Reports) {
			clock := newClock()
			s := open(Config{Forget: time.Hour, MaxAgents: 2}, clock)
			s.ingest(downloading("a1", "", 1))
			clock.Add(2 * time.Hour)
			s.ingest(downloading("a2", "", 1))
			if err := s.ingest(downloading("a3", "", 1)); !errors.Is(err, errTooManyAgents) {
				t.Fatalf("third agent before forgetting: %v", err)
			}
			s.Tick(clock.Now())
			if rec := getRecord(t, s, recordKey("", "a1")); rec != nil {
				t.Errorf("a1 kept after Tick: %+v", rec)
			}
			if err := s.ingest(downloading("a3", "", 1)); err != nil {
				t.Errorf("third agent after forgetting a1: %v", err)
			}
			if n := s.View().Agents.Known; n != 2 {
				t.Errorf("view knows %d agents", n)
			}
		}},
		{"two writers at once lose no report", func(t *testing.T, k storeKind, open func(Config, *fakeClock) *Reports) {
			clock := newClock()
			a := open(Config{MaxAgents: 5}, clock)
			b := a
			if k.shared {
				b = open(Config{MaxAgents: 5}, clock) // a second origin
			}
			var wg sync.WaitGroup
			var ok, conflicts, admitted atomic.Int64
			for g, s := range []*Reports{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 14 {
						switch err := s.ingest(downloading("same", "", int64(i))); {
						case err == nil:
							ok.Add(1)
						case errors.Is(err, errConflict):
							conflicts.Add(1)
						default:
							t.Error(err)
						}
						if s.ingest(downloading(fmt.Sprintf("new-%d-%d", g, i), "", 1)) == nil {
							admitted.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			rec := getRecord(t, a, recordKey("", "same"))
			t.Logf("%d reports stored, %d refused as conflicts after %d tries", ok.Load(), conflicts.Load(), maxPutAttempts)
			if rec == nil || int64(len(rec.History)) != ok.Load() {
				t.Errorf("history holds %d reports, %d were accepted", len(rec.History), ok.Load())
			}
			if admitted.Load() != 4 {
				t.Errorf("%d new agents admitted, max_agents 5 leaves room for 4", admitted.Load())
			}
			for _, s := range []*Reports{a, b} {
				s.Tick(clock.Now())
				if n := s.View().Agents.Known; n != 5 {
					t.Errorf("view knows %d agents, want 5", n)
				}
			}
		}},
	}
	for _, k := range kinds {
		for _, b := range behaviours {
			t.Run(k.name+"/"+b.name, func(t *testing.T) { b.run(t, k, k.fresh(t)) })
		}
	}
}

// sharedPair is two origins' report stores on one Redis prefix.
func sharedPair(t *testing.T, rs *testenv.Redis, cfg Config, clock *fakeClock) (a, b *Reports) {
	t.Helper()
	prefix := fmt.Sprintf("pair%d", redisPrefixes.Add(1))
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, p := range []**Reports{&a, &b} {
		s, err := OpenShared(cfg, openRedis(t, rs.URL, prefix), Origin{}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		s.now = clock.Now
		t.Cleanup(func() { s.Close() })
		*p = s
	}
	return a, b
}

// Two origins on one Redis show one rollout: each stores what it
// receives, and after a Tick (its sync) each view counts both origins'
// agents; an agent's history can be read at either.
func TestSharedReportsTwoOrigins(t *testing.T) {
	rs := testenv.StartRedis(t)
	clock := newClock()
	a, b := sharedPair(t, rs, Config{}, clock)
	for i := range 3 {
		a.ingest(mkReport(fmt.Sprint("a", i), "store-1", "eu", "1.0", rel("1.0", "active", 1000, report.Bytes{Peer: 1000})))
		b.ingest(mkReport(fmt.Sprint("b", i), "store-2", "eu", "1.0", rel("1.0", "downloading", 500, report.Bytes{Origin: 500})))
	}
	for _, s := range []*Reports{a, b} {
		s.Tick(clock.Now())
		ro := s.View()
		r := findRelease(t, ro, "app@1.0")
		if ro.Agents.Known != 6 || r.Active != 3 || r.Subscribed != 6 || r.Bytes != (report.Bytes{Peer: 3000, Origin: 1500}) || len(r.Sites) != 2 {
			t.Errorf("view: agents %+v, release %+v", ro.Agents, r)
		}
	}
	// An agent moves to the other origin (failover): its record continues.
	clock.Add(time.Second)
	if err := b.ingest(mkReport("a0", "store-1", "eu", "1.0", rel("1.0", "active", 1000, report.Bytes{Peer: 1000}))); err != nil {
		t.Fatal(err)
	}
	if rec := getRecord(t, a, recordKey("", "a0")); rec == nil || len(rec.History) != 2 {
		t.Errorf("a0 at the first origin after reporting to the second: %+v", rec)
	}
	// One forgets for both.
	clock.Add(8 * 24 * time.Hour)
	b.ingest(mkReport("b0", "store-2", "eu", "1.0", rel("1.0", "active", 1000, report.Bytes{Origin: 1000})))
	a.Tick(clock.Now())
	b.Tick(clock.Now())
	clock.Add(fullSyncEvery)
	b.Tick(clock.Now())
	if ro := b.View(); ro.Agents.Known != 1 {
		t.Errorf("after forgetting at the first origin, the second knows %d agents, want b0 only", ro.Agents.Known)
	}
	if n := a.store.(*redisStore).rdb.Client.ZCard(context.Background(), a.store.(*redisStore).indexKey()).Val(); n != 1 {
		t.Errorf("index holds %d agents after forgetting", n)
	}
}

// Redis away: reports are refused with 503 within the client's timeout,
// views show the last records, Tick returns; when Redis comes back empty
// (no persistence), the origins write their copies back, so only the
// history is lost.
func TestSharedReportsRedisAway(t *testing.T) {
	rs := testenv.StartRedis(t)
	clock := newClock()
	a, b := sharedPair(t, rs, Config{}, clock)
	a.ingest(mkReport("a1", "store-1", "eu", "1.0", rel("1.0", "active", 1000, report.Bytes{Peer: 1000})))
	b.ingest(mkReport("b1", "store-2", "eu", "1.0", rel("1.0", "downloading", 500, report.Bytes{Peer: 500})))
	a.Tick(clock.Now())
	b.Tick(clock.Now())

	rs.Kill()
	h := mux(a)
	start := time.Now()
	req := httptest.NewRequest("POST", report.Path, bytes.NewReader(mustJSON(mkReport("a2", "store-1", "eu", "1.0"))))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || strings.Contains(rec.Body.String(), rs.Addr) {
		t.Errorf("report with Redis away: %d %q (Retry-After %q)", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}
	a.Tick(clock.Now())
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("a report and a Tick took %v with Redis away", d)
	}
	if ro := a.View(); ro.Agents.Known != 2 {
		t.Errorf("view with Redis away knows %d agents, want the last 2", ro.Agents.Known)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/agents/a1", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("agent view with Redis away: %d", rec.Code)
	}

	rs.Restart(t)
	clock.Add(time.Second)
	// The first command after the restart may meet a connection of the
	// old server: retry, the store must recover.
	testenv.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		if err := a.ingest(mkReport("a2", "store-1", "eu", "1.0")); err != nil {
			return fmt.Errorf("report after Redis came back: %w", err)
		}
		return nil
	})
	testenv.Eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		a.Tick(clock.Now())
		b.Tick(clock.Now())
		for _, s := range []*Reports{a, b} {
			if n := s.View().Agents.Known; n != 3 {
				return fmt.Errorf("view knows %d agents, want a1, b1 (written back) and a2", n)
			}
		}
		return nil
	})
	for _, id := range []string{"a1", "b1", "a2"} {
		if rec := getRecord(t, b, recordKey("", id)); rec == nil {
			t.Errorf("%s not in Redis after it came back", id)
		}
	}
}

// What a shared record costs in Redis: a typical agent (two
// subscriptions, two releases) with a full history, measured with
// MEMORY USAGE, and the whole Redis's growth per agent.
func TestSharedReportBytes(t *testing.T) {
	rs := testenv.StartRedis(t)
	clock := newClock()
	s, _ := sharedPair(t, rs, Config{}, clock)
	c := s.store.(*redisStore).rdb.Client
	ctx := context.Background()
	used := func() int64 {
		info := c.Info(ctx, "memory").Val()
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		return 0
	}
	typical := func(id string, i int) *report.Report {
		r := mkReport(id, "store-1", "eu", "1.1",
			rel("1.0", "active", 1000, report.Bytes{Peer: 900, Origin: 100}),
			rel("1.1", "downloading", int64(10*i), report.Bytes{Peer: int64(10 * i)}))
		r.PeerID = "2d5353303130302d000102030405060708090a0b"
		r.Subscriptions = append(r.Subscriptions, report.Subscription{Subscription: "media (channel signage-eu)", Name: "media", Target: "7"})
		return r
	}
	agents := 200
	if raceOn {
		agents = 40 // seconds, not tens of seconds; the figures come from a run without it
	}
	before := used()
	for i := range agents {
		if err := s.ingest(typical(fmt.Sprintf("agent-%04d", i), 0)); err != nil {
			t.Fatal(err)
		}
	}
	one := used() - before
	for h := 1; h < 32; h++ {
		clock.Add(30 * time.Second)
		for i := range agents {
			if err := s.ingest(typical(fmt.Sprintf("agent-%04d", i), h)); err != nil {
				t.Fatal(err)
			}
		}
	}
	full := used() - before
	key := s.store.(*redisStore).agentKey(recordKey("", "agent-0000"))
	vals := c.HMGet(ctx, key, "rec", "hist", "size").Val()
	rec, _ := vals[0].(string)
	hist, _ := vals[1].(string)
	usage := c.MemoryUsage(ctx, key).Val()
	t.Logf("per agent: record %d bytes of JSON (the views' part), history of 32 %d bytes, size counted %v; MEMORY USAGE of its hash %d bytes; Redis grew %d bytes per agent with one report, %d with 32",
		len(rec), len(hist), vals[2], usage, one/int64(agents), full/int64(agents))
	if len(rec) == 0 || len(hist) == 0 || usage == 0 {
		t.Errorf("nothing measured: %d %d %d", len(rec), len(hist), usage)
	}
}

// A record in Redis that does not decode (written by hand, another
// version) is left out of the views and replaced by the agent's next
// report, its budget share carried over; nothing panics.
func TestSharedReportsCorruptRecord(t *testing.T) {
	rs := testenv.StartRedis(t)
	clock := newClock()
	a, b := sharedPair(t, rs, Config{}, clock)
	a.ingest(downloading("a1", "", 1))
	a.ingest(downloading("a2", "", 1))
	r := a.store.(*redisStore)
	ctx := context.Background()
	if err := r.rdb.Client.HSet(ctx, r.agentKey(recordKey("", "a1")), "rec", `{"report":{"v":99`).Err(); err != nil {
		t.Fatal(err)
	}
	b.Tick(clock.Now())
	if n := b.View().Agents.Known; n != 1 {
		t.Errorf("view with one corrupt record knows %d agents, want 1", n)
	}
	clock.Add(time.Second)
	if err := b.ingest(downloading("a1", "", 2)); err != nil {
		t.Fatalf("report over a corrupt record: %v", err)
	}
	clock.Add(fullSyncEvery)
	a.Tick(clock.Now())
	if rec := getRecord(t, a, recordKey("", "a1")); rec == nil || rec.Report.Releases[0].Completed != 2 || len(rec.History) != 1 {
		t.Errorf("a1 after its next report: %+v", rec)
	}
	if use := r.rdb.Client.HGetAll(ctx, r.useKey()).Val(); use["agents"] != "2" {
		t.Errorf("use counters %v, want 2 agents", use)
	}
}
