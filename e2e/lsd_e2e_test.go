package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

// Two agents of one site find each other on the LAN with no tracker (its
// URL points at a closed port): the first fetches the release from the
// origin; then the origin stops serving payload and the second completes
// from the first alone, found through BEP 14 multicast. An agent of
// another tenant on the same LAN, subscribed to the same release, hears
// their announces but learns no peer and gets no byte.
//
// Runs in a private network namespace (its loopback carries multicast),
// so the real multicast path is exercised; needs root (CI runs as root).
func TestLSDSiteSharesWithoutTracker(t *testing.T) {
	if !testenv.InPrivateNetwork(t, 3*time.Minute) {
		return
	}
	var blockData atomic.Bool
	sw := newSwarm(t, localswarm.OriginOptions{WrapHandler: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if blockData.Load() && strings.HasPrefix(r.URL.Path, "/data/") {
				http.Error(w, "payload withheld by the test", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	}})
	m := publish(t, sw, "app", "1.0", 14, map[string]int64{"app.bin": 6 << 20, "lib.so": 1 << 20}, "stable")
	deadTracker := fmt.Sprintf("http://127.0.0.1:%d/announce", testenv.FreePort(t))
	start := func(name, tenant string) *localswarm.RunningAgent {
		cfg := sw.AgentConfig(name, "berlin", "eu", agent.Subscription{Name: "app", Channel: "stable"})
		cfg.Tenant = tenant
		cfg.Tracker = deadTracker
		cfg.Swarm.LSD = agent.LSDOn
		ra, err := sw.StartAgent(context.Background(), name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ra.Stop() })
		if ra.Agent.LSDStats() == nil {
			t.Fatalf("%s: local service discovery is not running", name)
		}
		return ra
	}
	first := start("first", "acme")
	waitActive(t, "app", "1.0", 60*time.Second, first)

	blockData.Store(true)
	stranger := start("stranger", "globex")
	second := start("second", "acme")
	// Watch where the connected peers came from while second downloads.
	stopWatch := watchSources("app", "1.0", first, second)
	waitActive(t, "app", "1.0", 90*time.Second, second)
	sources := map[string]int{}
	for _, seen := range stopWatch() {
		for src, n := range seen {
			sources[src] += n
		}
	}
	t.Logf("peer sources seen while second downloaded (samples): %v", sources)
	for src := range sources {
		if src != "lsd" && src != "incoming" {
			t.Errorf("a peer came from %q with no tracker", src)
		}
	}
	if len(sources) > 0 && sources["lsd"] == 0 {
		t.Error("connected peers were seen, none marked as found by lsd")
	}
	checkActiveFiles(t, second, m)
	if got := releaseStatus(second, "app", "1.0").Downloaded; got.Peer < m.TotalSize || got.Origin != 0 {
		t.Errorf("second downloaded %+v, want the release's %d bytes from its neighbour", got, m.TotalSize)
	}

	// The stranger heard announces it could not use; nobody learned it.
	testenv.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		if n := stranger.Agent.LSDStats().Foreign; n == 0 {
			return fmt.Errorf("the stranger heard no foreign announce yet")
		}
		return nil
	})
	for _, ra := range []*localswarm.RunningAgent{first, second, stranger} {
		st := ra.Agent.LSDStats()
		t.Logf("%s: lsd %+v, peer sources %v", ra.Name, *st, releaseStatus(ra, "app", "1.0").PeerSources)
	}
	if n := stranger.Agent.LSDStats().Peers; n != 0 {
		t.Errorf("the other tenant's agent learned %d peers", n)
	}
	if n := first.Agent.LSDStats().Peers + second.Agent.LSDStats().Peers; n == 0 {
		t.Error("no peer was learned over LSD")
	}
	ss := releaseStatus(stranger, "app", "1.0")
	if ss.Downloaded.Total() != 0 || ss.Completed != 0 {
		t.Errorf("the other tenant's agent got %d bytes (%d complete)", ss.Downloaded.Total(), ss.Completed)
	}
	strangerPort := fmt.Sprint(stranger.Agent.PeerPort())
	for _, ra := range []*localswarm.RunningAgent{first, second} {
		for _, addr := range releaseStatus(ra, "app", "1.0").PeerAddrs {
			if strings.HasSuffix(addr, ":"+strangerPort) {
				t.Errorf("%s is connected to the other tenant's agent", ra.Name)
			}
		}
	}
}

// The WAN-down case: the site's link to everything outside (catalog,
// tracker, payload) is cut while one agent waits for a release that
// another agent of the site holds. The holder restarts with the WAN down,
// seeds from its cache, and the waiting agent completes from it via LSD.
func TestLSDSiteCompletesWithWANDown(t *testing.T) {
	if !testenv.InPrivateNetwork(t, 3*time.Minute) {
		return
	}
	var wanDown, blockData atomic.Bool
	sw := newSwarm(t, localswarm.OriginOptions{WrapHandler: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if wanDown.Load() || blockData.Load() && strings.HasPrefix(r.URL.Path, "/data/") {
				http.Error(w, "unreachable (test)", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	}})
	m := publish(t, sw, "app", "1.0", 15, map[string]int64{"app.bin": 5 << 20}, "stable")
	config := func(name string) *agent.Config {
		cfg := sw.AgentConfig(name, "berlin", "eu", agent.Subscription{Name: "app", Channel: "stable"})
		cfg.Tenant = "acme"
		cfg.Swarm.LSD = agent.LSDOn
		return cfg
	}
	start := func(name string, cfg *agent.Config) *localswarm.RunningAgent {
		ra, err := sw.StartAgent(context.Background(), name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ra.Stop() })
		return ra
	}
	holderCfg := config("holder")
	holder := start("holder", holderCfg)
	waitActive(t, "app", "1.0", 60*time.Second, holder)
	if err := holder.Stop(); err != nil {
		t.Fatal(err)
	}

	// The waiting agent learns of the release, but no byte reaches it.
	blockData.Store(true)
	waiting := start("waiting", config("waiting"))
	testenv.Eventually(t, 60*time.Second, 100*time.Millisecond, func() error {
		if rs := releaseStatus(waiting, "app", "1.0"); rs.InfoHash == "" {
			return fmt.Errorf("the release is not added yet")
		}
		return nil
	})
	wanDown.Store(true)
	holder = start("holder", holderCfg)
	waitActive(t, "app", "1.0", 90*time.Second, waiting)
	checkActiveFiles(t, waiting, m)
	if got := releaseStatus(waiting, "app", "1.0").Downloaded; got.Peer < m.TotalSize || got.Origin != 0 {
		t.Errorf("waiting downloaded %+v, want the release's %d bytes from its neighbour", got, m.TotalSize)
	}
	if holder.Agent.LSDStats().Peers+waiting.Agent.LSDStats().Peers == 0 {
		t.Error("no peer was learned over LSD")
	}
	t.Logf("holder lsd %+v; waiting lsd %+v", *holder.Agent.LSDStats(), *waiting.Agent.LSDStats())
}
