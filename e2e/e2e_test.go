package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

// testLogger sends logs to the test log only when -v is on.
func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// writePayload writes a release of random files under dir and returns dir.
func writePayload(t *testing.T, dir string, seed uint64, sizes map[string]int64) string {
	t.Helper()
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 's', 'w'})
	for name, size := range sizes {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, size)
		r.Read(b)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func newSwarm(t *testing.T, opts localswarm.OriginOptions) *localswarm.Swarm {
	t.Helper()
	sw, err := localswarm.New(context.Background(), t.TempDir(), opts, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	return sw
}

func publish(t *testing.T, sw *localswarm.Swarm, name, version string, seed uint64, sizes map[string]int64, channels ...string) *catalog.Manifest {
	t.Helper()
	dir := writePayload(t, t.TempDir(), seed, sizes)
	entries, _ := os.ReadDir(dir)
	var paths []string
	for _, e := range entries {
		paths = append(paths, filepath.Join(dir, e.Name()))
	}
	if _, err := sw.Publish(context.Background(), name, version, paths, channels...); err != nil {
		t.Fatal(err)
	}
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

func startAgents(t *testing.T, sw *localswarm.Swarm, n int, sub agent.Subscription, tweak func(*agent.Config)) []*localswarm.RunningAgent {
	t.Helper()
	var out []*localswarm.RunningAgent
	for i := range n {
		name := fmt.Sprintf("agent-%d", i+1)
		cfg := sw.AgentConfig(name, fmt.Sprintf("site-%d", i%2), "eu", sub)
		if tweak != nil {
			tweak(cfg)
		}
		ra, err := sw.StartAgent(context.Background(), name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ra)
	}
	return out
}

func waitActive(t *testing.T, name, version string, timeout time.Duration, agents ...*localswarm.RunningAgent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := localswarm.WaitActive(ctx, name, version, agents...); err != nil {
		for _, ra := range agents {
			t.Logf("%s status: %+v", ra.Name, ra.Agent.Status().Subscriptions)
		}
		t.Fatal(err)
	}
}

// checkActiveFiles re-hashes what current/<name> points at.
func checkActiveFiles(t *testing.T, ra *localswarm.RunningAgent, m *catalog.Manifest) {
	t.Helper()
	dir := filepath.Join(ra.Config.CacheDir, "current", m.Name)
	target, err := os.Readlink(dir)
	if err != nil {
		t.Fatalf("%s: %v", ra.Name, err)
	}
	if filepath.Base(target) != m.Version {
		t.Fatalf("%s: current/%s -> %s, want version %s", ra.Name, m.Name, target, m.Version)
	}
	for _, f := range m.Files {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			t.Fatalf("%s: %v", ra.Name, err)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != f.SHA256 {
			t.Fatalf("%s: %s has sha256 %x, manifest says %s", ra.Name, f.Path, sum, f.SHA256)
		}
	}
}

func releaseStatus(ra *localswarm.RunningAgent, name, version string) agent.ReleaseStatus {
	for _, r := range ra.Agent.Status().Releases {
		if r.Name == name && r.Version == version {
			return r
		}
	}
	return agent.ReleaseStatus{}
}

// watchSources samples, every 10 ms until stop is called, where the
// connected peers of each agent's release came from; stop returns the
// samples per source, one map per agent. Sampling, because status shows
// only the connections open now.
func watchSources(name, version string, ras ...*localswarm.RunningAgent) (stop func() []map[string]int) {
	seen := make([]map[string]int, len(ras))
	for i := range seen {
		seen[i] = map[string]int{}
	}
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			for i, ra := range ras {
				for src, n := range releaseStatus(ra, name, version).PeerSources {
					seen[i][src] += n
				}
			}
			select {
			case <-quit:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() []map[string]int {
		close(quit)
		<-done
		return seen
	}
}

func totalDownloaded(ras ...*localswarm.RunningAgent) int64 {
	var n int64
	for _, ra := range ras {
		for _, r := range ra.Agent.Status().Releases {
			n += r.Downloaded.Total()
		}
	}
	return n
}

var release24MiB = map[string]int64{
	"bin/app":         20 << 20,
	"share/data.bin":  3<<20 + 12345,
	"etc/config.yaml": 777,
	"README":          1 << 10,
}

func TestSwarmFiveAgentsOriginSendsAboutOneCopy(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{})
	m := publish(t, sw, "app", "1.0", 1, release24MiB, "stable")
	agents := startAgents(t, sw, 5, agent.Subscription{Name: "app", Channel: "stable"}, nil)
	waitActive(t, "app", "1.0", 90*time.Second, agents...)
	for _, ra := range agents {
		checkActiveFiles(t, ra, m)
	}
	eg := sw.Origin.Egress()
	copies := float64(eg.Total()) / float64(m.TotalSize)
	var fromOrigin, fromPeers int64
	for _, ra := range agents {
		rs := releaseStatus(ra, "app", "1.0")
		fromOrigin += rs.Downloaded.Origin
		fromPeers += rs.Downloaded.Peer
		if rs.Phase != agent.PhaseActive {
			t.Errorf("%s: state %s, want active", ra.Name, rs.Phase)
		}
	}
	t.Logf("origin egress %.3f copies (%d bytes); agents counted %d from origin, %d from peers", copies, eg.Total(), fromOrigin, fromPeers)
	if copies > 1.2 {
		t.Fatalf("origin sent %.2f copies of the release, want <= 1.2", copies)
	}
	if fromOrigin != eg.WebSeed {
		t.Errorf("agents counted %d origin bytes, origin served %d", fromOrigin, eg.WebSeed)
	}
	if fromPeers < 3*m.TotalSize {
		t.Errorf("only %d bytes came from peers for 5 agents of %d bytes", fromPeers, m.TotalSize)
	}
}

func TestSwarmSurvivesAgentKilledMidDownload(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{WrapHandler: slowPayload(20 * time.Millisecond)})
	m := publish(t, sw, "app", "1.0", 2, release24MiB, "stable")
	agents := startAgents(t, sw, 5, agent.Subscription{Name: "app", Channel: "stable"}, nil)
	victim := agents[0]
	deadline := time.Now().Add(60 * time.Second)
	for {
		rs := releaseStatus(victim, "app", "1.0")
		if rs.Completed > 0 && rs.Completed < m.TotalSize/2 {
			break
		}
		if rs.Completed >= m.TotalSize/2 || time.Now().After(deadline) {
			t.Fatalf("could not catch %s mid-download (completed %d of %d)", victim.Name, rs.Completed, m.TotalSize)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := victim.Stop(); err != nil {
		t.Fatal(err)
	}
	rest := agents[1:]
	waitActive(t, "app", "1.0", 90*time.Second, rest...)
	for _, ra := range rest {
		checkActiveFiles(t, ra, m)
	}
	copies := float64(sw.Origin.Egress().Total()) / float64(m.TotalSize)
	t.Logf("origin egress with one agent killed: %.3f copies", copies)
	if copies > 1.5 {
		t.Fatalf("origin sent %.2f copies, want <= 1.5", copies)
	}
}

// slowPayload delays every payload request so downloads last long enough
// to be interrupted.
func slowPayload(d time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/data/") {
				time.Sleep(d)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// stoppedDownload is app@1.0 (release24MiB) on a swarm whose payloads
// come slowly, and agent "solo", stopped once it had a third of it.
type stoppedDownload struct {
	sw  *localswarm.Swarm
	m   *catalog.Manifest
	cfg *agent.Config
}

func stopMidDownload(t *testing.T, seed uint64) stoppedDownload {
	t.Helper()
	sw := newSwarm(t, localswarm.OriginOptions{WrapHandler: slowPayload(40 * time.Millisecond)})
	m := publish(t, sw, "app", "1.0", seed, release24MiB, "stable")
	cfg := sw.AgentConfig("solo", "site-1", "eu", agent.Subscription{Name: "app", Channel: "stable"})
	cfg.Offload.StartupGrace = 10 * time.Millisecond
	ra, err := sw.StartAgent(context.Background(), "solo", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !testenv.Poll(60*time.Second, 5*time.Millisecond, func() bool { return releaseStatus(ra, "app", "1.0").Completed >= m.TotalSize/3 }) {
		t.Fatal("download made no progress")
	}
	if err := ra.Stop(); err != nil {
		t.Fatal(err)
	}
	return stoppedDownload{sw: sw, m: m, cfg: cfg}
}

// restart runs the agent again on the same cache directory and waits
// until it has app@1.0 active with the published files.
func (d stoppedDownload) restart(t *testing.T, timeout time.Duration) *localswarm.RunningAgent {
	t.Helper()
	cfg := d.sw.AgentConfig("solo", "site-1", "eu", agent.Subscription{Name: "app", Channel: "stable"}) // same cache dir
	cfg.Offload.StartupGrace = 10 * time.Millisecond
	ra, err := d.sw.StartAgent(context.Background(), "solo-restarted", cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitActive(t, "app", "1.0", timeout, ra)
	checkActiveFiles(t, ra, d.m)
	return ra
}

func TestAgentRestartResumesWithoutRefetching(t *testing.T) {
	d := stopMidDownload(t, 3)
	m, cfg := d.m, d.cfg
	// What the first run holds is what the state database recorded.
	first := readState(t, cfg, "app@1.0")
	if first.Completed >= m.TotalSize {
		t.Fatalf("first run finished before it was stopped")
	}
	ra2 := d.restart(t, 90*time.Second)
	final := releaseStatus(ra2, "app", "1.0")
	second := final.Downloaded.Total() - first.Downloaded.Total()
	missing := m.TotalSize - first.Completed
	// Pieces in flight when the agent stopped were written but not yet
	// verified; they may be fetched again.
	slack := int64(cfg.Offload.Parallel) * m.PieceLength
	t.Logf("first run completed %d bytes; second run downloaded %d for %d missing", first.Completed, second, missing)
	if second > missing+slack {
		t.Fatalf("restarted agent downloaded %d bytes, but only %d were missing (+%d in flight)", second, missing, slack)
	}
	if second <= 0 {
		t.Fatalf("restarted agent downloaded nothing, yet %d bytes were missing", missing)
	}
}

// readState reads one release record from a stopped agent's state.
func readState(t *testing.T, cfg *agent.Config, key string) agent.ReleaseState {
	t.Helper()
	recs, err := agent.ReadState(cfg.CacheDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Key() == key {
			return *r
		}
	}
	t.Fatalf("no state for %s", key)
	return agent.ReleaseState{}
}

func TestNewVersionRollbackAndYank(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{})
	small := map[string]int64{"app.bin": 3 << 20, "VERSION": 10}
	m1 := publish(t, sw, "app", "1.0", 10, small, "stable")
	agents := startAgents(t, sw, 2, agent.Subscription{Name: "app", Channel: "stable"}, nil)
	waitActive(t, "app", "1.0", 60*time.Second, agents...)

	// A new version published while the agents run is picked up.
	m2 := publish(t, sw, "app", "2.0", 11, small, "stable")
	waitActive(t, "app", "2.0", 60*time.Second, agents...)
	for _, ra := range agents {
		checkActiveFiles(t, ra, m2)
	}

	// Rollback: the channel moves back and the cached 1.0 is activated
	// without downloading a byte.
	before := totalDownloaded(agents...)
	repo, err := sw.Repo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Promote("app", "1.0", "stable"); err != nil {
		t.Fatal(err)
	}
	if err := repo.Commit(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	waitActive(t, "app", "1.0", 30*time.Second, agents...)
	for _, ra := range agents {
		checkActiveFiles(t, ra, m1)
	}
	if after := totalDownloaded(agents...); after != before {
		t.Fatalf("rollback downloaded %d bytes, want 0", after-before)
	}

	// A yanked release is never activated: 3.0 is published to the
	// channel and yanked while one agent is down; on return it stays put.
	stopped := agents[1]
	if err := stopped.Stop(); err != nil {
		t.Fatal(err)
	}
	publish(t, sw, "app", "3.0", 12, small)
	repo, err = sw.Repo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Promote("app", "3.0", "stable"); err != nil {
		t.Fatal(err)
	}
	if err := repo.Yank("app", "3.0"); err != nil {
		t.Fatal(err)
	}
	if err := repo.Commit(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	back, err := sw.StartAgent(context.Background(), "agent-2-again", stopped.Config)
	if err != nil {
		t.Fatal(err)
	}
	// The yank moved the channel off 3.0, so stable has no version: the
	// agents keep 1.0 active and say why they wait.
	time.Sleep(3 * time.Second)
	for _, ra := range []*localswarm.RunningAgent{agents[0], back} {
		if v := activeVersion(ra); v != "1.0" {
			t.Fatalf("%s activated %q after 3.0 was yanked, want 1.0 kept", ra.Name, v)
		}
		if rs := releaseStatus(ra, "app", "3.0"); rs.Phase != "" {
			t.Fatalf("%s has state %s for the yanked 3.0", ra.Name, rs.Phase)
		}
	}
}

func activeVersion(ra *localswarm.RunningAgent) string {
	target, _ := os.Readlink(filepath.Join(ra.Config.CacheDir, "current", "app"))
	return filepath.Base(target)
}

func TestUnreachableCatalogKeepsServingCache(t *testing.T) {
	var down atomic.Bool
	sw := newSwarm(t, localswarm.OriginOptions{WrapHandler: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if down.Load() && !strings.HasPrefix(r.URL.Path, "/announce") {
				http.Error(w, "catalog down", http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	}})
	m := publish(t, sw, "app", "1.0", 20, map[string]int64{"a": 2 << 20}, "stable")
	agents := startAgents(t, sw, 1, agent.Subscription{Name: "app", Channel: "stable"}, nil)
	waitActive(t, "app", "1.0", 60*time.Second, agents...)
	down.Store(true)
	ra := agents[0]
	if !testenv.Poll(20*time.Second, 100*time.Millisecond, func() bool { return ra.Agent.Status().Catalog.Error != "" }) {
		t.Fatal("agent never noticed the catalog was down")
	}
	st := ra.Agent.Status()
	if !strings.Contains(st.Catalog.Error, "503") && !strings.Contains(st.Catalog.Error, "Service Unavailable") {
		t.Errorf("catalog error %q does not say what failed", st.Catalog.Error)
	}
	// Still active, still complete, still seeding.
	checkActiveFiles(t, ra, m)
	if rs := releaseStatus(ra, "app", "1.0"); rs.Phase != agent.PhaseActive {
		t.Fatalf("release state %s while the catalog is down, want active", rs.Phase)
	}
	// The catalog comes back and the agent recovers by itself.
	down.Store(false)
	if !testenv.Poll(30*time.Second, 100*time.Millisecond, func() bool { return ra.Agent.Status().Catalog.Error == "" }) {
		t.Fatal("agent did not recover when the catalog came back")
	}
}

func TestMismatchedInfohashIsRefused(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{})
	publish(t, sw, "app", "1.0", 30, map[string]int64{"a": 1 << 20}, "stable")
	// A signer (bug or compromised pipeline) signs a manifest whose
	// infohash is not the torrent's: the agent must refuse it.
	ctx := context.Background()
	good, _ := catalog.ReadAll(ctx, sw.Store, catalog.ManifestKey("app", "1.0"), catalog.MaxManifestSize)
	m, _ := catalog.ParseManifest(good)
	torrent, _ := catalog.ReadAll(ctx, sw.Store, catalog.TorrentKey("app", "1.0"), catalog.MaxTorrentSize)
	m.Version = "1.1"
	m.InfoHash = strings.Repeat("ab", 20)
	mb, _ := catalog.MarshalManifest(m)
	put := func(key string, b []byte) {
		if err := sw.Store.Put(ctx, key, strings.NewReader(string(b)), int64(len(b))); err != nil {
			t.Fatal(err)
		}
	}
	put(catalog.ManifestKey("app", "1.1"), mb)
	put(catalog.TorrentKey("app", "1.1"), torrent)
	repo, err := sw.Repo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.AddRelease(mb, torrent, []string{"stable"}); err != nil {
		t.Fatal(err)
	}
	if err := repo.Commit(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	agents := startAgents(t, sw, 1, agent.Subscription{Name: "app", Channel: "stable"}, nil)
	ra := agents[0]
	testenv.Eventually(t, 20*time.Second, 100*time.Millisecond, func() error {
		if rs := releaseStatus(ra, "app", "1.1"); rs.Phase != agent.PhaseFailed {
			return fmt.Errorf("release 1.1 state %q, want failed", rs.Phase)
		}
		return nil
	})
	if rs := releaseStatus(ra, "app", "1.1"); !strings.Contains(rs.LastError, "infohash") {
		t.Fatalf("refused with %q, want it to name the infohash", rs.LastError)
	}
	if v := activeVersion(ra); v == "1.1" {
		t.Fatal("activated a release whose torrent does not match its manifest")
	}
	for _, s := range ra.Agent.Status().Subscriptions {
		if s.Ready || !strings.Contains(s.Reason, "infohash") {
			t.Fatalf("subscription status %+v: want not ready with the infohash reason", s)
		}
	}
}
