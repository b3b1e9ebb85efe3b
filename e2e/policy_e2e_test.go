package e2e

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	catalogpublish "github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
	"github.com/swarmship/swarmship/policy"
)

// shiftedClock runs at real speed from a chosen wall-clock start, so that
// a test can cross a window edge a few seconds after it starts.
func shiftedClock(start time.Time) func() time.Time {
	t0 := time.Now()
	return func() time.Time { return start.Add(time.Since(t0)) }
}

func mustWindow(t *testing.T, s string) policy.Window {
	t.Helper()
	w, err := policy.ParseWindow(s)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func originBytes(ra *localswarm.RunningAgent, name, version string) int64 {
	return releaseStatus(ra, name, version).Downloaded.Origin
}

// The limit switches at a window edge mid-download, without a restart, and
// the measured rate follows each limit within ±15%.
func TestRateLimitSwitchesAtWindowEdge(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{})
	publish(t, sw, "app", "1.0", 50, map[string]int64{"big.bin": 48 << 20}, "stable")
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	const night, business = 4 << 20, 2 << 20
	cfg := sw.AgentConfig("solo", "s", "eu", agent.Subscription{Name: "app", Channel: "stable"})
	cfg.TimeZone = "Europe/Berlin"
	cfg.Offload.StartupGrace = 10 * time.Millisecond
	cfg.Rates = agent.RatesConfig{
		Profiles: []policy.RateProfile{{Name: "business", Down: business}, {Name: "night", Down: night}},
		Schedule: []policy.Rule{{Window: mustWindow(t, "Mon-Fri 08:00-18:00"), Name: "business"}},
		Default:  "night",
	}
	// Monday 2026-11-23 07:59:54 in Berlin: six seconds of night first.
	clock := shiftedClock(time.Date(2026, 11, 23, 7, 59, 54, 0, berlin))
	ra, err := sw.StartAgentWith(context.Background(), "solo", cfg, agent.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	sample := func(at time.Duration) int64 {
		time.Sleep(time.Until(start.Add(at)))
		return originBytes(ra, "app", "1.0")
	}
	// Skip the first 1.5 s (startup and the limiter's initial burst) and
	// the second around the edge.
	n1 := sample(1500 * time.Millisecond)
	n2 := sample(5 * time.Second)
	n3 := sample(7500 * time.Millisecond)
	n4 := sample(11500 * time.Millisecond)
	nightRate := float64(n2-n1) / 3.5
	businessRate := float64(n4-n3) / 4
	t.Logf("night: %.2f MiB/s (limit %d), business: %.2f MiB/s (limit %d)", nightRate/(1<<20), night>>20, businessRate/(1<<20), business>>20)
	for _, c := range []struct {
		name       string
		got, limit float64
	}{{"night", nightRate, night}, {"business", businessRate, business}} {
		if c.got < 0.85*c.limit || c.got > 1.15*c.limit {
			t.Errorf("%s rate %.0f B/s, want within 15%% of %.0f", c.name, c.got, c.limit)
		}
	}
	if p := ra.Agent.Status().Policy; p.Profile != "business" || p.NextEdge.IsZero() {
		t.Errorf("status policy %+v, want profile business and the next window edge", p)
	}
}

// A pre-seeded release moves no payload byte before its window opens and
// completes inside it.
func TestPreseedWindow(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{})
	m := publish(t, sw, "signage", "2026-11-24", 51, map[string]int64{"loop.mp4": 4 << 20}, "eu")
	cfg := sw.AgentConfig("player", "s", "eu", agent.Subscription{
		Name: "signage", Channel: "eu", Windows: []policy.Window{mustWindow(t, "daily 22:00-06:00")},
	})
	cfg.Offload.StartupGrace = 10 * time.Millisecond
	clock := shiftedClock(time.Date(2026, 11, 23, 21, 59, 57, 0, time.UTC))
	ra, err := sw.StartAgentWith(context.Background(), "player", cfg, agent.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	// Before 22:00 on the agent's clock: nothing moves, and status says why.
	sawReason := false
	for clock().Before(time.Date(2026, 11, 23, 21, 59, 59, 500e6, time.UTC)) {
		rs := releaseStatus(ra, "signage", "2026-11-24")
		if n := rs.Downloaded.Total(); n != 0 {
			t.Fatalf("%d payload bytes moved before the window opened", n)
		}
		for _, s := range ra.Agent.Status().Subscriptions {
			if strings.Contains(s.Reason, "waiting for window daily 22:00-06:00") {
				sawReason = true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !sawReason {
		t.Error("status never said the release waits for its window")
	}
	waitActive(t, "signage", "2026-11-24", 60*time.Second, ra)
	checkActiveFiles(t, ra, m)
	if !clock().After(time.Date(2026, 11, 23, 22, 0, 0, 0, time.UTC)) {
		t.Fatal("activated before the window opened")
	}
}

// GC evicts in the documented order under a quota, keeps the active
// release and the rollback copy, and refuses a release larger than the
// whole quota with a clear reason.
func TestQuotaAndGC(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{})
	const mib = 1 << 20
	files := map[string]int64{"app.bin": 3 * mib}
	publish(t, sw, "app", "1.0", 60, files, "stable")
	cfg := sw.AgentConfig("branch", "s", "eu", agent.Subscription{Name: "app", Channel: "stable", Keep: 1})
	cfg.CacheQuota = 10 * mib
	cfg.Offload.StartupGrace = 10 * time.Millisecond
	ra, err := sw.StartAgent(context.Background(), "branch", cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitActive(t, "app", "1.0", 30*time.Second, ra)
	for i, v := range []string{"2.0", "3.0", "4.0"} {
		publish(t, sw, "app", v, uint64(61+i), files, "stable")
		waitActive(t, "app", v, 30*time.Second, ra)
	}
	// 4.0 needed 3 MiB with 9 MiB cached under a 10 MiB quota: 1.0, the
	// least recently used release that is neither active nor the rollback
	// copy, went first; 2.0 fit after that.
	exists := func(v string) bool {
		_, err := os.Stat(filepath.Join(cfg.CacheDir, "releases", "app", v))
		return err == nil
	}
	if exists("1.0") || releaseStatus(ra, "app", "1.0").Phase != "" {
		t.Error("1.0 was not evicted")
	}
	for _, v := range []string{"3.0", "4.0"} {
		if !exists(v) {
			t.Errorf("%s was evicted; the active release and its rollback copy must stay", v)
		}
	}
	if p := ra.Agent.Status().Policy; p.CachedBytes > 10*mib || p.QuotaBytes != 10*mib {
		t.Errorf("policy status %+v: cache over quota", p)
	}

	// A release larger than the whole quota is refused, and 4.0 stays.
	publish(t, sw, "app", "5.0", 70, map[string]int64{"app.bin": 12 * mib}, "stable")
	testenv.Eventually(t, 20*time.Second, 100*time.Millisecond, func() error {
		var reason string
		for _, s := range ra.Agent.Status().Subscriptions {
			reason = s.Reason
		}
		if !strings.Contains(reason, "larger than the whole cache quota") {
			return fmt.Errorf("no quota refusal in status; reason %q", reason)
		}
		return nil
	})
	if v := activeVersion(ra); v != "4.0" {
		t.Fatalf("active %s after refusing 5.0, want 4.0", v)
	}
	if rs := releaseStatus(ra, "app", "5.0"); rs.Downloaded.Total() != 0 {
		t.Fatalf("downloaded %d bytes of a release that cannot fit", rs.Downloaded.Total())
	}

	// An eviction cut short by a crash (state record gone, files part
	// removed) loses nothing that was active: the next start removes the
	// leftovers, which no longer verify, and keeps serving 4.0. (Files
	// that still verify are re-adopted instead: see corrupt_test.go.)
	if err := ra.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(cfg.CacheDir, "releases", "app", "3.0", "app.bin")); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(cfg.CacheDir, "state", "agent.db"), 0o640, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("releases")).Delete([]byte("app@3.0")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	ra2, err := sw.StartAgent(context.Background(), "branch-restarted", cfg)
	if err != nil {
		t.Fatal(err)
	}
	// 5.0 still cannot fit, so the agent keeps 4.0 and says why.
	testenv.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		if st := ra2.Agent.Status().Subscriptions; len(st) != 1 || st[0].Active != "4.0" || !strings.Contains(st[0].Reason, "cache quota") {
			return fmt.Errorf("restarted agent status %+v", st)
		}
		return nil
	})
	if !testenv.Poll(10*time.Second, 50*time.Millisecond, func() bool { return !exists("3.0") }) {
		t.Fatal("files of the half-evicted 3.0 were not cleaned up")
	}
	m4 := manifestOf(t, sw, "app", "4.0")
	checkActiveFiles(t, ra2, m4)
}

func manifestOf(t *testing.T, sw *localswarm.Swarm, name, version string) *catalog.Manifest {
	t.Helper()
	b, err := catalog.ReadAll(context.Background(), sw.Store, catalog.ManifestKey(name, version), catalog.MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	m, err := catalog.ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// With locality "site", each site takes one copy from the origin and shares
// it inside the site: no payload crosses between sites.
func TestLocalitySiteKeepsBytesInSite(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{})
	m := publish(t, sw, "app", "1.0", 80, map[string]int64{"app.bin": 12 << 20}, "stable")
	var agents []*localswarm.RunningAgent
	site := map[*localswarm.RunningAgent]string{}
	for i := range 6 {
		s := []string{"branch-a", "branch-b"}[i%2]
		name := s + "-" + string(rune('1'+i/2))
		cfg := sw.AgentConfig(name, s, "eu", agent.Subscription{Name: "app", Channel: "stable"})
		cfg.Swarm.Locality = "site"
		ra, err := sw.StartAgent(context.Background(), name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		agents = append(agents, ra)
		site[ra] = s
	}
	waitActive(t, "app", "1.0", 90*time.Second, agents...)
	type sums struct{ peer, origin, up int64 }
	by := map[string]*sums{"branch-a": {}, "branch-b": {}}
	for _, ra := range agents {
		checkActiveFiles(t, ra, m)
		rs := releaseStatus(ra, "app", "1.0")
		s := by[site[ra]]
		s.peer += rs.Downloaded.Peer
		s.origin += rs.Downloaded.Origin
		s.up += rs.Uploaded
	}
	// Uploads and peer downloads balance inside each site exactly when no
	// payload crossed between sites (every upload is some peer's download).
	for name, s := range by {
		local := s.origin + min(s.up, s.peer)
		share := float64(local) / float64(s.peer+s.origin)
		t.Logf("%s: %d from origin, %d from peers, %d uploaded in site: local share %.3f", name, s.origin, s.peer, s.up, share)
		if share < 0.9 {
			t.Errorf("%s: only %.1f%% of its payload came from its own site or the origin", name, 100*share)
		}
	}
	// And directly: no agent is connected to an agent of the other site.
	port := map[string]string{}
	for _, ra := range agents {
		port[fmt.Sprint(ra.Agent.PeerPort())] = site[ra]
	}
	for _, ra := range agents {
		for _, addr := range releaseStatus(ra, "app", "1.0").PeerAddrs {
			_, p, _ := net.SplitHostPort(addr)
			if s, ok := port[p]; ok && s != site[ra] {
				t.Errorf("%s (%s) is connected to an agent of %s", ra.Name, site[ra], s)
			}
		}
	}
	// About one copy per site; a loaded machine (stalled peers hand their
	// shards on) costs some extra, but never a copy per agent.
	copies := float64(sw.Origin.Egress().Total()) / float64(m.TotalSize)
	t.Logf("origin egress %.2f copies for two sites", copies)
	if copies > 3 {
		t.Errorf("origin sent %.2f copies for two sites of three agents, want about one per site", copies)
	}
}

// A release restricted to a region is never fetched by an agent outside
// it, and the agent says why; agents inside the region get it.
func TestResidencyRefusesForbiddenRegion(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{})
	dir := writePayload(t, t.TempDir(), 90, map[string]int64{"patient-data.bin": 2 << 20})
	if _, err := sw.PublishWith(context.Background(), catalogpublish.PublishOptions{
		Name: "records", Version: "1.0", Paths: []string{filepath.Join(dir, "patient-data.bin")},
		Channels: []string{"stable"}, Regions: []string{"eu"},
	}); err != nil {
		t.Fatal(err)
	}
	sub := agent.Subscription{Name: "records", Channel: "stable"}
	eu, err := sw.StartAgent(context.Background(), "eu-1", sw.AgentConfig("eu-1", "fra", "eu", sub))
	if err != nil {
		t.Fatal(err)
	}
	us, err := sw.StartAgent(context.Background(), "us-1", sw.AgentConfig("us-1", "nyc", "us", sub))
	if err != nil {
		t.Fatal(err)
	}
	waitActive(t, "records", "1.0", 60*time.Second, eu)
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		if st := us.Agent.Status(); len(st.Subscriptions) != 1 || !strings.Contains(st.Subscriptions[0].Reason, "restricted to regions eu; this agent is in region us") {
			return fmt.Errorf("us agent status %+v: want a residency reason", st.Subscriptions)
		}
		return nil
	})
	if rs := releaseStatus(us, "records", "1.0"); rs.Phase != "" || rs.Downloaded.Total() != 0 {
		t.Fatalf("us agent holds %+v for an eu-only release", rs)
	}
	if _, err := os.Stat(filepath.Join(us.Config.CacheDir, "releases", "records")); err == nil {
		t.Fatal("us agent wrote files of an eu-only release")
	}
	ih := manifestOf(t, sw, "records", "1.0").InfoHash
	for _, p := range sw.Origin.Tracker().Peers(hexHash(t, ih)) {
		if p.Identity.Region != "eu" {
			t.Fatalf("tracker holds a %s peer for an eu-only release", p.Identity.Region)
		}
	}
}

func hexHash(t *testing.T, s string) [20]byte {
	t.Helper()
	var h [20]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 20 {
		t.Fatalf("bad infohash %q", s)
	}
	copy(h[:], b)
	return h
}

// A download-only agent never uploads, though it advertises what it has;
// its neighbours must not wait for it forever.
func TestDownloadOnlyAgentUploadsNothingAndStallsNobody(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{})
	m := publish(t, sw, "app", "1.0", 96, map[string]int64{"app.bin": 8 << 20}, "stable")
	sub := agent.Subscription{Name: "app", Channel: "stable"}
	cfgA := sw.AgentConfig("metered", "s", "eu", sub)
	cfgA.Mode = policy.ModeDownloadOnly
	cfgA.Offload.OrphanTimeout = 2 * time.Second
	a, err := sw.StartAgent(context.Background(), "metered", cfgA)
	if err != nil {
		t.Fatal(err)
	}
	cfgB := sw.AgentConfig("normal", "s", "eu", sub)
	cfgB.Offload.OrphanTimeout = 2 * time.Second
	b, err := sw.StartAgent(context.Background(), "normal", cfgB)
	if err != nil {
		t.Fatal(err)
	}
	waitActive(t, "app", "1.0", 60*time.Second, a, b)
	checkActiveFiles(t, a, m)
	checkActiveFiles(t, b, m)
	if up := releaseStatus(a, "app", "1.0").Uploaded; up != 0 {
		t.Fatalf("download-only agent uploaded %d bytes", up)
	}
	if p := a.Agent.Status().Policy; p.Upload || p.Mode != policy.ModeDownloadOnly {
		t.Fatalf("policy status %+v", p)
	}
}
