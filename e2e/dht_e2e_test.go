package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
	"github.com/swarmship/swarmship/seeder"
)

// Two agents of one tenant in two sites, with no tracker (its URL points
// at a closed port), find each other through the tenant's private DHT,
// bootstrapped from the origin's node: the first fetches the release
// from the origin, then the origin stops serving payload and the second
// completes from the first alone. An agent of another tenant, pointed
// at the same DHT node, subscribed to the same release, learns no peer
// and gets no byte.
func TestDHTSitesShareWithoutTracker(t *testing.T) {
	dir := t.TempDir()
	secret := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Repeat(name, 32)[:32]), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	acmeSecret, globexSecret := secret("acme"), secret("globex")
	var blockData atomic.Bool
	sw := newSwarm(t, localswarm.OriginOptions{
		Configure: func(c *seeder.Config) {
			c.DHT = []seeder.DHTTenant{{Tenant: "acme", Listen: "127.0.0.1:0", SecretFile: acmeSecret}}
		},
		WrapHandler: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if blockData.Load() && strings.HasPrefix(r.URL.Path, "/data/") {
					http.Error(w, "payload withheld by the test", http.StatusServiceUnavailable)
					return
				}
				h.ServeHTTP(w, r)
			})
		},
	})
	node := sw.Origin.DHTAddrs()["acme"]
	if !node.IsValid() {
		t.Fatal("the origin runs no DHT node for acme")
	}
	m := publish(t, sw, "app", "1.0", 16, map[string]int64{"app.bin": 4 << 20}, "stable")
	deadTracker := fmt.Sprintf("http://127.0.0.1:%d/announce", testenv.FreePort(t))
	start := func(name, tenant, site, secretFile string) *localswarm.RunningAgent {
		cfg := sw.AgentConfig(name, site, "eu", agent.Subscription{Name: "app", Channel: "stable"})
		cfg.Tenant = tenant
		cfg.Tracker = deadTracker
		cfg.Swarm.DHT = agent.DHTOn
		cfg.Swarm.DHTSecretFile = secretFile
		cfg.Swarm.DHTBootstrap = []string{node.String()}
		ra, err := sw.StartAgent(context.Background(), name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ra.Stop() })
		if ra.Agent.DHTStats() == nil {
			t.Fatalf("%s: the DHT is not running", name)
		}
		return ra
	}
	first := start("first", "acme", "berlin", acmeSecret)
	waitActive(t, "app", "1.0", 60*time.Second, first)

	blockData.Store(true)
	stranger := start("stranger", "globex", "paris", globexSecret)
	second := start("second", "acme", "paris", acmeSecret)
	// first's DHT retry may find second before second's lookup returns:
	// either side's connection counts.
	stopWatch := watchSources("app", "1.0", second, first)
	waitActive(t, "app", "1.0", 90*time.Second, second)
	seen := stopWatch()
	sources, firstSources := seen[0], seen[1]
	t.Logf("peer sources seen while second downloaded (samples): second %v, first %v", sources, firstSources)
	if sources["dht"] == 0 && firstSources["dht"] == 0 {
		t.Error("no connection between the sites was found through the DHT")
	}
	for src := range sources {
		if src != "dht" && src != "incoming" {
			t.Errorf("a peer came from %q with no tracker", src)
		}
	}
	checkActiveFiles(t, second, m)
	if got := releaseStatus(second, "app", "1.0").Downloaded; got.Peer < m.TotalSize || got.Origin != 0 {
		t.Errorf("second downloaded %+v, want the release's %d bytes from the other site", got, m.TotalSize)
	}

	// The stranger's datagrams reached the tenant's nodes and opened
	// nowhere; it learned nothing and got nothing.
	testenv.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		if st := stranger.Agent.DHTStats(); st.Lookups == 0 {
			return fmt.Errorf("the stranger has not looked up yet: %+v", *st)
		}
		return nil
	})
	for _, ra := range []*localswarm.RunningAgent{first, second, stranger} {
		t.Logf("%s: dht %+v", ra.Name, *ra.Agent.DHTStats())
	}
	if st := stranger.Agent.DHTStats(); st.Peers != 0 || st.Received != 0 || st.Nodes != 0 || st.Stored != 0 {
		t.Errorf("the other tenant's agent learned something: %+v", *st)
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
