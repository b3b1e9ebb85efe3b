package interop

import (
	"context"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
	"github.com/swarmship/swarmship/seeder/tracker"
)

// The interop matrix: each foreign client of clients_test.go (aria2,
// libtorrent, Transmission, qBittorrent) downloads from swarmship's web
// seed, leeches from swarmship agents, and seeds to a swarmship agent. Each
// subtest runs its own origin, agents and client, in parallel with the
// other clients' subtests; a missing client skips its subtest (fails in CI).

// TestForeignFromWebSeed: each client downloads the release as published
// (url-list on the origin, announce to its tracker, which has no seeder to
// offer), so every byte comes from the web seed.
func TestForeignFromWebSeed(t *testing.T) {
	for _, c := range foreignClients() {
		if c.name == "libtorrent" {
			continue // TestLibtorrentWebSeedDirCatalog, with per-peer checks
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newSwarm(t, localswarm.OriginOptions{})
			res := publishSample(t, s, true)
			if want := s.OriginURL + "/data/" + relName + "/"; res.WebSeed != want {
				t.Fatalf("web seed %q, want %q", res.WebSeed, want)
			}
			dir := t.TempDir()
			wait := c.start(t, filepath.Join(s.CatalogDir, filepath.FromSlash(res.TorrentKey)), res.InfoHash, dir, false)
			wait(t, clientTimeout)
			checkClientFiles(t, c, filepath.Join(dir, relVersion), readManifest(t, s.Store, relName, relVersion))
			eg := s.Origin.Egress()
			t.Logf("origin sent %d bytes as web seed, %d as a peer (release %d)", eg.WebSeed, eg.Peer, res.TotalSize)
			if eg.Peer != 0 {
				t.Errorf("origin sent %d bytes as a peer; it runs no seeder", eg.Peer)
			}
			if eg.WebSeed < res.TotalSize {
				t.Errorf("origin web seed sent %d bytes, release is %d", eg.WebSeed, res.TotalSize)
			}
		})
	}
}

// TestForeignLeechesFromAgents: each client downloads from agents that hold
// the release, through the tracker, with the url-list removed and no origin
// seeder; the agents must have uploaded at least the release.
func TestForeignLeechesFromAgents(t *testing.T) {
	for _, c := range foreignClients() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newSwarm(t, localswarm.OriginOptions{})
			res := publishSample(t, s, true)
			torrent := withoutURLList(t, filepath.Join(s.CatalogDir, filepath.FromSlash(res.TorrentKey)), res.InfoHash)
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), agentTimeout)
			defer cancel()

			var agents []*localswarm.RunningAgent
			startAgents := func(n int) {
				for i := range n {
					name := "agent" + strconv.Itoa(i+1)
					cfg := s.AgentConfig(name, "store-"+strconv.Itoa(i+1), "eu", agent.Subscription{Name: relName, Channel: "stable"})
					ra, err := s.StartAgent(ctx, name, cfg)
					if err != nil {
						t.Fatal(err)
					}
					agents = append(agents, ra)
				}
			}
			waitAgents := func() {
				t.Helper()
				if err := localswarm.WaitActive(ctx, relName, relVersion, agents...); err != nil {
					logAgents(t, agents)
					t.Fatal(err)
				}
			}

			var wait func(*testing.T, time.Duration)
			var before int64
			if c.dialsLoopback {
				// Agents first: the client finds them through the tracker
				// and dials them.
				startAgents(2)
				waitAgents()
				before = uploadedBy(agents)
				webBefore := s.Origin.Egress().WebSeed
				wait = c.start(t, torrent, res.InfoHash, dir, false)
				wait(t, clientTimeout)
				if d := s.Origin.Egress().WebSeed - webBefore; d != 0 {
					t.Errorf("origin web seed sent %d bytes while the client downloaded", d)
				}
			} else {
				// The client first: it announces, and the agent finds it in
				// its first announce and dials it. One agent, so that
				// everything it uploads went to the client.
				wait = c.start(t, torrent, res.InfoHash, dir, false)
				waitTrackerPeer(t, s, res.InfoHash, c.name+" leeching", clientTimeout,
					func(p tracker.Peer) bool { return isForeign(p) && p.Left > 0 })
				startAgents(1)
				waitAgents()
				wait(t, clientTimeout)
			}
			checkClientFiles(t, c, filepath.Join(dir, relVersion), readManifest(t, s.Store, relName, relVersion))
			if eg := s.Origin.Egress(); eg.Peer != 0 {
				t.Errorf("origin sent %d bytes as a peer; it runs no seeder", eg.Peer)
			}
			// The last blocks may still be in flight when the client
			// reports itself complete.
			testenv.Poll(5*time.Second, 50*time.Millisecond, func() bool { return uploadedBy(agents)-before >= res.TotalSize })
			up := uploadedBy(agents) - before
			t.Logf("agents uploaded %d bytes to %s (release %d)", up, c.name, res.TotalSize)
			if up < res.TotalSize {
				t.Errorf("agents uploaded %d bytes to %s, release is %d", up, c.name, res.TotalSize)
			}
		})
	}
}

// TestAgentLeechesFromForeign: each client seeds the release and one agent
// downloads it while the origin refuses payload; the agent's bytes by
// source must show the release from peers and nothing from the origin, and
// it must activate the release (signed SHA-256 checked).
func TestAgentLeechesFromForeign(t *testing.T) {
	for _, c := range foreignClients() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			gate := &payloadGate{}
			s := newSwarm(t, localswarm.OriginOptions{WrapHandler: gate.wrap})
			res := publishSample(t, s, true)
			torrent := withoutURLList(t, filepath.Join(s.CatalogDir, filepath.FromSlash(res.TorrentKey)), res.InfoHash)

			// The client seeds a copy of the payload, checked by itself.
			dir := t.TempDir()
			copyTree(t, filepath.Join(s.CatalogDir, "data", relName, relVersion), filepath.Join(dir, relVersion))
			wait := c.start(t, torrent, res.InfoHash, dir, true)
			wait(t, clientTimeout)
			seeder := waitTrackerPeer(t, s, res.InfoHash, c.name+" seeding", clientTimeout,
				func(p tracker.Peer) bool { return isForeign(p) && p.Left == 0 })

			ctx, cancel := context.WithTimeout(context.Background(), agentTimeout)
			defer cancel()
			cfg := s.AgentConfig("agent1", "store-1", "eu", agent.Subscription{Name: relName, Channel: "stable"})
			ra, err := s.StartAgent(ctx, "agent1", cfg)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			// Whom the agent talks to while it downloads: once complete it
			// drops the seeder (two seeds have nothing to exchange).
			seen := map[string]bool{}
			watchCtx, stopWatch := context.WithCancel(context.Background())
			defer stopWatch()
			watched := make(chan struct{})
			go func() {
				defer close(watched)
				for {
					for _, a := range releaseStatusOf(ra).PeerAddrs {
						seen[a] = true
					}
					select {
					case <-watchCtx.Done():
						return
					case <-time.After(100 * time.Millisecond):
					}
				}
			}()
			err = localswarm.WaitActive(ctx, relName, relVersion, ra)
			stopWatch()
			<-watched // seen is ours from here on
			if err != nil {
				logAgents(t, []*localswarm.RunningAgent{ra})
				t.Fatalf("%v; peers while downloading %v", err, seen)
			}
			rel := releaseStatus(t, ra)
			t.Logf("agent active after %v: bytes by source %+v, peers while downloading %v; origin refused %d payload requests",
				time.Since(start).Round(time.Millisecond), rel.Downloaded, seen, gate.refused.Load())
			if rel.Downloaded.Origin != 0 || rel.Downloaded.WebSeed != 0 {
				t.Errorf("agent counts %d bytes from the origin and %d from web seeds; want 0", rel.Downloaded.Origin, rel.Downloaded.WebSeed)
			}
			// Peer bytes are useful payload bytes: the release once, plus
			// at most a few blocks received twice.
			if p := rel.Downloaded.Peer; p < res.TotalSize || p > res.TotalSize+res.TotalSize/20 {
				t.Errorf("agent counts %d bytes from peers, release is %d", p, res.TotalSize)
			}
			if eg := s.Origin.Egress(); eg.WebSeed != 0 || eg.Peer != 0 {
				t.Errorf("origin sent payload: %+v", eg)
			}
			if !seen[seeder.Addr.String()] {
				t.Errorf("the agent never connected to %s at %s; its peers were %v", c.name, seeder.Addr, seen)
			}
			// The agent checked the signed SHA-256 before activating; check
			// what current/ points at once more.
			checkFiles(t, filepath.Join(cfg.CacheDir, "current", relName), readManifest(t, s.Store, relName, relVersion))
		})
	}
}

// payloadGate wraps the origin's handler so that it refuses every payload
// request (data/: the web seed, and the agents' origin shards) and counts
// them; catalog metadata, torrents and the tracker are served as usual.
type payloadGate struct{ refused atomic.Int64 }

func (g *payloadGate) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/data/") {
			g.refused.Add(1)
			http.Error(w, "this test's origin serves no payload", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// uploadedBy sums the bytes the agents uploaded for the test release.
func uploadedBy(agents []*localswarm.RunningAgent) int64 {
	var n int64
	for _, ra := range agents {
		for _, r := range ra.Agent.Status().Releases {
			if r.Name == relName && r.Version == relVersion {
				n += r.Uploaded
			}
		}
	}
	return n
}

// releaseStatus is the agent's status of the test release.
func releaseStatus(t *testing.T, ra *localswarm.RunningAgent) agent.ReleaseStatus {
	t.Helper()
	r := releaseStatusOf(ra)
	if r.Name == "" {
		t.Fatalf("%s has no status for %s@%s", ra.Name, relName, relVersion)
	}
	return r
}

// releaseStatusOf is the agent's status of the test release, zero if it
// has none yet.
func releaseStatusOf(ra *localswarm.RunningAgent) agent.ReleaseStatus {
	for _, r := range ra.Agent.Status().Releases {
		if r.Name == relName && r.Version == relVersion {
			return r
		}
	}
	return agent.ReleaseStatus{}
}

func logAgents(t *testing.T, agents []*localswarm.RunningAgent) {
	t.Helper()
	for _, ra := range agents {
		for _, r := range ra.Agent.Status().Releases {
			t.Logf("%s: %s@%s %s, %d of %d bytes (%+v), peers %v, last error %q",
				ra.Name, r.Name, r.Version, r.Phase, r.Completed, r.Size, r.Downloaded, r.PeerAddrs, r.LastError)
		}
	}
}
