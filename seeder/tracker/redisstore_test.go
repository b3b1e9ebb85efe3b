package tracker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swarmship/swarmship/internal/report"
	"github.com/swarmship/swarmship/internal/state"
	"github.com/swarmship/swarmship/internal/testenv"
)

// testRedis, while set (TestSharedBehavioursOnRedis), makes newTest build
// trackers on the shared state, each under its own key prefix. Tests in
// this package do not run in parallel, so a package variable is enough.
var (
	testRedis      *redis.Client
	testPrefixes   atomic.Int64
	sharedTrackers []*Tracker // closed when the wrapper ends
)

// newTestStore is New, or NewShared on testRedis when it is set.
func newTestStore(cfg Config) *Tracker {
	if testRedis == nil {
		return New(cfg)
	}
	r := &state.Redis{Client: testRedis, Prefix: fmt.Sprintf("t%d", testPrefixes.Add(1))}
	tr, err := NewShared(context.Background(), cfg, r)
	if err != nil {
		panic(err) // the wrapper checked Redis answers
	}
	sharedTrackers = append(sharedTrackers, tr)
	return tr
}

// TestSharedBehavioursOnRedis runs the tracker's behaviour tests again with
// the swarms in a real redis-server: both stores must answer alike.
func TestSharedBehavioursOnRedis(t *testing.T) {
	rd := testenv.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: rd.Addr, ReadTimeout: 10 * time.Second})
	t.Cleanup(func() { client.Close() })
	testRedis = client
	t.Cleanup(func() {
		testRedis = nil
		for _, tr := range sharedTrackers {
			tr.Close()
		}
		sharedTrackers = nil
	})
	for _, tc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"AnnounceRoundTrip", TestAnnounceRoundTrip},
		{"IPv6AndNonCompact", TestIPv6AndNonCompact},
		{"LocalityOrdering", TestLocalityOrdering},
		{"TenantIsolation", TestTenantIsolation},
		{"RoleAndSeederFiltering", TestRoleAndSeederFiltering},
		{"StoppedRemoves", TestStoppedRemoves},
		{"Expiry", TestExpiry},
		{"Malformed", TestMalformed},
		{"Residency", TestResidency},
		{"Authorize", TestAuthorize},
		{"Scrape", TestScrape},
		{"RoutingAndAddress", TestRoutingAndAddress},
		{"LocalityRestrictsAnswer", TestLocalityRestrictsAnswer},
		{"GatewayLocality", TestGatewayLocality},
		{"SwarmView", TestSwarmView},
		{"CapFakePeersFromOneAddress", TestCapFakePeersFromOneAddress},
		{"CapsPerToken", TestCapsPerToken},
		{"UnknownInfoHashesRefused", TestUnknownInfoHashesRefused},
		{"PeerIDHijackRefused", TestPeerIDHijackRefused},
		{"IPParamIgnoredByDefault", TestIPParamIgnoredByDefault},
		{"Concurrent", TestConcurrent},
	} {
		t.Run(tc.name, tc.f)
	}
	if n, err := client.DBSize(context.Background()).Result(); err != nil || n == 0 {
		t.Errorf("the shared runs left no keys in Redis (%d, %v): they did not use it", n, err)
	}
}

// sharedPair starts a redis-server and two trackers on it, as two origins
// sharing one Redis, on one clock.
func sharedPair(t *testing.T, cfg Config) (a, b *Tracker, clk *clock, rd *testenv.Redis, client *redis.Client) {
	t.Helper()
	rd = testenv.StartRedis(t)
	clk = &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	var trs [2]*Tracker
	for i := range trs {
		// One pool per origin, as two processes have; short timeouts so
		// a dead Redis shows quickly.
		c := redis.NewClient(&redis.Options{Addr: rd.Addr, DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
		t.Cleanup(func() { c.Close() })
		tr, err := NewShared(context.Background(), cfg, &state.Redis{Client: c, Prefix: "pair"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tr.Close)
		tr.now = clk.now
		trs[i] = tr
		client = c
	}
	return trs[0], trs[1], clk, rd, client
}

func remoteOf(n int) string { return fmt.Sprintf("10.0.%d.%d:6881", n/250, n%250+1) }

func addrSet(r resp) map[string]bool {
	out := map[string]bool{}
	for _, a := range r.addrs {
		out[a.String()] = true
	}
	return out
}

// A peer announced to origin A is given by origin B, and the other way
// round; an expired peer is gone from both and from Redis.
func TestSharedTwoOrigins(t *testing.T) {
	a, b, clk, _, client := sharedPair(t, Config{})
	ih := hash("shared")
	for n := 1; n <= 3; n++ {
		mustOK(t, ann{ih: ih, id: pid(n), remote: remoteOf(n), left: 5}.do(t, a))
	}
	if n := len(b.Peers(ih)); n != 3 {
		t.Errorf("origin B's swarm view lists %d peers announced to A, want 3", n)
	}
	got := addrSet(mustOK(t, ann{ih: ih, id: pid(4), remote: remoteOf(4), left: 5}.do(t, b)))
	for n := 1; n <= 3; n++ {
		if !got[remoteOf(n)] {
			t.Errorf("origin B does not give peer %d announced to A: %v", n, got)
		}
	}
	r := mustOK(t, ann{ih: ih, id: pid(5), remote: remoteOf(5), left: 0}.do(t, a))
	if got := addrSet(r); !got[remoteOf(4)] {
		t.Errorf("origin A does not give peer 4 announced to B: %v", got)
	}
	if r.Complete != 1 || r.Incomplete != 4 {
		t.Errorf("A counts %d complete, %d incomplete; want 1, 4", r.Complete, r.Incomplete)
	}

	// Everyone but peer 1 goes quiet past the TTL.
	clk.add(a.cfg.PeerTTL + time.Second)
	r = mustOK(t, ann{ih: ih, id: pid(1), remote: remoteOf(1), left: 5}.do(t, b))
	if len(r.addrs) != 0 || r.Incomplete != 1 {
		t.Errorf("after expiry B gives %v (incomplete %d), want nobody", r.addrs, r.Incomplete)
	}
	_, z, _, _ := b.store.(*redisStore).keys(ih, "")
	if n, err := client.ZCard(context.Background(), z).Result(); err != nil || n != 1 {
		t.Errorf("Redis holds %d peers (%v) after expiry, want 1", n, err)
	}
	if ttl, err := client.PTTL(context.Background(), z).Result(); err != nil || ttl <= 0 || ttl > 2*a.cfg.PeerTTL {
		t.Errorf("swarm key TTL %v (%v): want it to expire within 2*peer_ttl", ttl, err)
	}
}

// Agents of two sites announce in gateway mode, alternately to the two
// origins: both origins elect the same one gateway per site.
func TestSharedGatewaysAgree(t *testing.T) {
	a, b, clk, _, _ := sharedPair(t, Config{})
	ih := hash("gateways")
	origins := []*Tracker{a, b}
	ident := func(n int) Identity {
		return Identity{Tenant: "t", Site: []string{"x", "y"}[n%2], Region: "eu", Role: RoleAgent}
	}
	round := func() {
		for n := 1; n <= 8; n++ {
			q := ann{ih: ih, id: pid(n), port: 6881, left: 9, ident: ident(n)}.values()
			q.Set("locality", "gateway")
			mustOK(t, announceRaw(t, origins[(n/2)%2], q.Encode(), remoteOf(n)))
			clk.add(time.Second)
		}
	}
	round()
	round()                        // every origin learns the version the other one made
	var views [2]map[string]string // site -> gateway peer ID
	for i, tr := range origins {
		q := url.Values{"info_hash": {string(ih[:])}, "tenant": {"t"}, "site": {"x"}, "region": {"eu"}, "role": {"agent"}}
		var v report.SwarmView
		if err := json.Unmarshal(get(t, tr, "/swarm?"+q.Encode(), remoteOf(1)), &v); err != nil {
			t.Fatal(err)
		}
		if len(v.Agents) != 8 {
			t.Fatalf("origin %d lists %d agents, want 8", i, len(v.Agents))
		}
		views[i] = map[string]string{}
		for _, m := range v.Agents {
			if !m.Gateway {
				continue
			}
			if g, dup := views[i][m.Site]; dup {
				t.Errorf("origin %d: site %s has two gateways %s and %s", i, m.Site, g, m.PeerID)
			}
			views[i][m.Site] = m.PeerID
		}
		if len(views[i]) != 2 {
			t.Errorf("origin %d elects gateways for %d sites, want 2", i, len(views[i]))
		}
	}
	if fmt.Sprint(views[0]) != fmt.Sprint(views[1]) {
		t.Errorf("origins disagree on gateways: %v vs %v", views[0], views[1])
	}
}

// counter reads one of the tracker's counters.
func counter(t *testing.T, tr *Tracker, name string) float64 {
	t.Helper()
	return gather(t, tr)[name]
}

// announceUntilOK retries an announce a few times: the first command after
// a Redis restart may meet a dead pooled connection.
func announceUntilOK(t *testing.T, tr *Tracker, a ann) resp {
	t.Helper()
	var r resp
	for range 20 {
		if r = a.do(t, tr); r.Failure == "" {
			return r
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("announce still fails: %s", r.Failure)
	return r
}

// Redis restarts empty: the next announce round puts every peer back,
// each origin writes back once, and both answer with everyone again.
func TestSharedRedisRestartHealed(t *testing.T) {
	a, b, clk, rd, client := sharedPair(t, Config{})
	ih := hash("restart")
	origins := []*Tracker{a, b}
	round := func() map[int]resp {
		out := map[int]resp{}
		for n := 1; n <= 6; n++ {
			out[n] = announceUntilOK(t, origins[n%2], ann{ih: ih, id: pid(n), remote: remoteOf(n), left: 5})
		}
		return out
	}
	round()
	// An agent's connection report (trust.go) survives the restart too.
	agent := Identity{Tenant: "", Site: "s", Region: "eu", Role: RoleAgent}
	mustOK(t, ann{ih: ih, id: pid(7), remote: remoteOf(7), left: 5, ident: agent}.do(t, a))
	viewFor(t, a, ih, 7, agent, remoteOf(7), 1, 2)
	rd.Restart(t)
	clk.add(time.Second)
	round()
	announceUntilOK(t, a, ann{ih: ih, id: pid(7), remote: remoteOf(7), left: 5, ident: agent})
	_, z, r, _ := a.store.(*redisStore).keys(ih, "")
	if ok, err := client.HExists(context.Background(), r, pidString(7)).Result(); err != nil || !ok {
		t.Errorf("the agent's report is not back in Redis after the restart (%v, %v)", ok, err)
	}
	if n, err := client.ZCard(context.Background(), z).Result(); err != nil || n != 7 {
		t.Errorf("after the restart and one round Redis holds %d peers (%v), want 7", n, err)
	}
	for i, tr := range origins {
		if n := counter(t, tr, "swarmship_tracker_state_restores_total"); n != 1 {
			t.Errorf("origin %d wrote back %v times, want 1", i, n)
		}
	}
	for n, r := range round() {
		if len(r.addrs) != 6 {
			t.Errorf("peer %d gets %d peers after the restart, want 6", n, len(r.addrs))
		}
	}
	for i, tr := range origins {
		if n := len(tr.Peers(ih)); n != 7 {
			t.Errorf("origin %d's swarm view lists %d peers after the restart, want 7", i, n)
		}
	}
}

// A late answer carrying the epoch from before a write-back this origin
// already made (an announce sent before Redis came back) is not a second
// loss: no second write-back, no new epoch that would send the other
// origins writing back again.
func TestStaleEmptyEpochIsNotALoss(t *testing.T) {
	a, b, _, rd, client := sharedPair(t, Config{})
	ih := hash("epoch")
	mustOK(t, ann{ih: ih, id: pid(1), remote: remoteOf(1), left: 5}.do(t, a))
	mustOK(t, ann{ih: ih, id: pid(2), remote: remoteOf(2), left: 5}.do(t, b))
	sa := a.store.(*redisStore)
	before := sa.currentEpoch()
	rd.Restart(t)
	announceUntilOK(t, a, ann{ih: ih, id: pid(1), remote: remoteOf(1), left: 5})
	after := sa.currentEpoch()
	if after == before || after == "" {
		t.Fatalf("epoch %q -> %q: the loss was not noticed", before, after)
	}
	sa.lost(context.Background(), before) // the late, stale answer
	if got := sa.currentEpoch(); got != after {
		t.Errorf("a stale empty epoch moved the epoch on: %q -> %q", after, got)
	}
	if n := counter(t, a, "swarmship_tracker_state_restores_total"); n != 1 {
		t.Errorf("origin A wrote back %v times, want 1", n)
	}
	if got, err := client.Get(context.Background(), sa.epochKey()).Result(); err != nil || got != after {
		t.Errorf("Redis epoch %q (%v), want %q", got, err, after)
	}
	// B notices the new epoch at its next announce and writes back once.
	announceUntilOK(t, b, ann{ih: ih, id: pid(2), remote: remoteOf(2), left: 5})
	announceUntilOK(t, b, ann{ih: ih, id: pid(2), remote: remoteOf(2), left: 5})
	if n := counter(t, b, "swarmship_tracker_state_restores_total"); n != 1 {
		t.Errorf("origin B wrote back %v times, want 1", n)
	}
	if got := b.store.(*redisStore).currentEpoch(); got != after {
		t.Errorf("origin B's epoch %q, want %q", got, after)
	}
}

// Redis killed: announces get a failure reason, promptly, and the metrics
// count them.
func TestSharedRedisAwayFailsClearly(t *testing.T) {
	a, _, _, rd, _ := sharedPair(t, Config{})
	ih := hash("away")
	mustOK(t, ann{ih: ih, id: pid(1), remote: remoteOf(1), left: 5}.do(t, a))
	rd.Kill()
	start := time.Now()
	r := ann{ih: ih, id: pid(2), remote: remoteOf(2), left: 5}.do(t, a)
	if !strings.Contains(r.Failure, "shared state unavailable") {
		t.Errorf("announce with Redis away: failure %q, want the shared state named", r.Failure)
	}
	// The client's timeouts are 1-2 s with a few retries; 30 s only
	// catches a hang on a loaded machine.
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("announce took %v with Redis away", d)
	}
	// The swarm view is still served, from the copy.
	v := viewFor(t, a, ih, 1, Identity{}, remoteOf(1))
	if len(v.Agents) != 0 || v.Interval == 0 {
		t.Errorf("swarm view with Redis away: %+v, want an answer from the copy", v)
	}
	m := gather(t, a)
	if m["swarmship_tracker_state_errors_total"] < 1 || m["swarmship_tracker_refusals_total{reason=state_unavailable}"] < 1 {
		t.Errorf("metrics do not count the failure: %v errors, %v refusals",
			m["swarmship_tracker_state_errors_total"], m["swarmship_tracker_refusals_total{reason=state_unavailable}"])
	}
}

// Bytes Redis spends per stored peer (MEMORY USAGE of the swarm's keys),
// for a swarm small enough for Redis's compact encoding and one beyond it.
func TestSharedBytesPerPeer(t *testing.T) {
	a, _, _, _, client := sharedPair(t, Config{MaxPeersPerAddress: -1, MaxSwarmsPerAddress: -1})
	ctx := context.Background()
	for _, n := range []int{100, 1000} {
		ih := hash(fmt.Sprint("size", n))
		for i := range n {
			id := Identity{Tenant: "tenant-1", Site: fmt.Sprintf("site-%04d", i/10), Region: "eu-west", Role: RoleAgent}
			mustOK(t, ann{ih: ih, id: pid(i), remote: remoteOf(i), left: 5, ident: id}.do(t, a))
		}
		p, z, r, m := a.store.(*redisStore).keys(ih, "tenant-1")
		var total int64
		for _, k := range []string{p, z, r, m} {
			u, err := client.MemoryUsage(ctx, k, 0).Result()
			if err != nil && err != redis.Nil {
				t.Fatal(err)
			}
			total += u
		}
		per := float64(total) / float64(n)
		t.Logf("%d peers: %d bytes, %.0f bytes per peer", n, total, per)
		if per > 300 {
			t.Errorf("%d peers cost %.0f bytes each in Redis, target <= 300", n, per)
		}
	}
}

// Announces and stops for the same peers arrive concurrently at both
// origins: afterwards both list exactly the peers whose last announce was
// not a stop.
func TestSharedConcurrentOrigins(t *testing.T) {
	a, b, _, _, _ := sharedPair(t, Config{SharedViewAge: time.Millisecond})
	origins := []*Tracker{a, b}
	ih := hash("concurrent")
	const workers, rounds, peersPerWorker = 6, 120, 10
	errs := make(chan error, workers*rounds)
	last := make([]map[int]bool, workers) // per worker: peer -> live after its last announce
	var wg sync.WaitGroup
	for g := range workers {
		last[g] = map[int]bool{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				n := g*1000 + i%peersPerWorker
				ev := ""
				if i%5 == 0 {
					ev = "stopped"
				}
				an := ann{ih: ih, id: pid(n), port: 6881, remote: fmt.Sprintf("10.%d.0.%d:1", g, i%peersPerWorker), left: int64(i % 2), event: ev,
					ident: Identity{Tenant: "t", Site: fmt.Sprint("s", g%2), Region: "eu", Role: RoleAgent}}
				if err := serveOK(origins[(i/3)%2], "/announce?"+an.values().Encode(), an.remote); err != nil {
					errs <- fmt.Errorf("worker %d announce %d: %w", g, i, err)
				}
				last[g][n] = ev != "stopped"
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := map[[20]byte]bool{}
	for g := range workers {
		for n, live := range last[g] {
			if live {
				want[pid(n)] = true
			}
		}
	}
	time.Sleep(10 * time.Millisecond) // past shared_view_age: the next read re-checks
	for i, tr := range origins {
		got := map[[20]byte]bool{}
		for _, p := range tr.Peers(ih) {
			got[p.ID] = true
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("origin %d lists %d peers, want %d", i, len(got), len(want))
		}
	}
}

// BenchmarkAnnounceShared is BenchmarkAnnounce on the shared state: one
// origin, a real redis-server on loopback, a swarm of 100 (the fleet's
// shape: 100 agents per swarm).
func BenchmarkAnnounceShared(b *testing.B) {
	rd := testenv.StartRedis(b)
	client := redis.NewClient(&redis.Options{Addr: rd.Addr})
	b.Cleanup(func() { client.Close() })
	tr, err := NewShared(context.Background(), Config{}, &state.Redis{Client: client, Prefix: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(tr.Close)
	ih := hash("bench")
	const swarmSize = 100
	reqs := make([]*http.Request, swarmSize)
	for i := range swarmSize {
		a := ann{ih: ih, id: pid(i), port: 6881, left: int64(i%3) << 20,
			ident: Identity{Tenant: "acme", Site: fmt.Sprint("site", i%10), Region: "eu", Role: RoleAgent}}
		req := httptest.NewRequest(http.MethodGet, "/announce?"+a.values().Encode(), nil)
		req.RemoteAddr = fmt.Sprintf("10.0.%d.%d:6881", i>>8&255, i&255)
		reqs[i] = req
		tr.ServeHTTP(&discard{h: http.Header{}}, req)
	}
	if n := len(tr.Peers(ih)); n != swarmSize {
		b.Fatalf("swarm has %d peers", n)
	}
	var next atomic.Int64
	cpu0 := redisCPU(b, client)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(37))
		w := &discard{h: http.Header{}}
		for pb.Next() {
			tr.ServeHTTP(w, reqs[i%swarmSize])
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "announces/s")
	if cpu := redisCPU(b, client) - cpu0; cpu > 0 {
		b.ReportMetric(cpu*1e6/float64(b.N), "redis-cpu-µs/op")
	}
}

// redisCPU is the CPU seconds (user + system) redis-server has used.
func redisCPU(b *testing.B, client *redis.Client) float64 {
	st, err := client.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(st, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, _ := strconv.ParseFloat(v, 64)
			sum += f
		}
	}
	return sum
}

// After Redis lost its data, a swarm view asked before any announce
// reached this origin still lists the swarm (the copy is not replaced by
// the empty read) and the origin writes it back.
func TestSharedRestartKeepsViewBeforeAnnounces(t *testing.T) {
	a, _, clk, rd, client := sharedPair(t, Config{})
	ih := hash("view-after-restart")
	for n := 1; n <= 3; n++ {
		mustOK(t, ann{ih: ih, id: pid(n), remote: remoteOf(n), left: 5}.do(t, a))
	}
	rd.Restart(t)
	clk.add(time.Second)
	a.store.(*redisStore).stale(ih, "") // the re-read shared_view_age later would do
	var n int
	for range 20 { // the first command after the restart may meet a dead connection
		if n = len(a.Peers(ih)); n == 3 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n != 3 {
		t.Errorf("after Redis restarted empty the swarm view lists %d peers, want 3", n)
	}
	_, z, _, _ := a.store.(*redisStore).keys(ih, "")
	testenv.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		if n, err := client.ZCard(context.Background(), z).Result(); err != nil || n != 3 {
			return fmt.Errorf("Redis holds %d peers (%v), want the 3 written back", n, err)
		}
		return nil
	})
}
