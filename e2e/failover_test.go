package e2e

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/internal/failover"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

// brokenMirror serves a copy of the catalog directory over HTTP, or fails
// the way a broken mirror does.
type brokenMirror struct {
	mu     sync.Mutex
	mode   string // "500", "hang", "rollback" or "" (healthy)
	oldTS  []byte // the timestamp served in rollback mode
	stop   chan struct{}
	server *httptest.Server
}

// Each request for a root version adds one to rootAsks.
func newBrokenMirror(t *testing.T, dir string, rootAsks *atomic.Int64) *brokenMirror {
	m := &brokenMirror{stop: make(chan struct{})}
	files := http.FileServer(http.Dir(dir))
	m.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isRootAsk(r) {
			rootAsks.Add(1)
		}
		m.mu.Lock()
		mode, oldTS := m.mode, m.oldTS
		m.mu.Unlock()
		switch {
		case mode == "500":
			http.Error(w, "mirror broken", http.StatusInternalServerError)
		case mode == "hang":
			select {
			case <-r.Context().Done():
			case <-m.stop:
			}
		case mode == "rollback" && r.URL.Path == "/metadata/timestamp.json":
			w.Write(oldTS)
		default:
			files.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(m.server.Close)
	t.Cleanup(func() { close(m.stop) }) // runs first: hung requests end
	return m
}

func isRootAsk(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/metadata/") && strings.HasSuffix(r.URL.Path, ".root.json")
}

func (m *brokenMirror) set(mode string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mode = mode
}

// catalogSource returns the agent's view of the catalog source at url.
func catalogSource(ra *localswarm.RunningAgent, url string) (agent.SourceStatus, bool) {
	for _, s := range ra.Agent.Status().Sources {
		if s.Kind == "catalog" && s.Name == url {
			return s, true
		}
	}
	return agent.SourceStatus{}, false
}

// TestCatalogMirrorFailover: the first catalog mirror returns 500s, then
// hangs, then serves a rolled-back (validly signed, older) timestamp; each
// time the agent takes the catalog from the next mirror within 2 refreshes
// and its status says why the first is skipped.
func TestCatalogMirrorFailover(t *testing.T) {
	// Root asks at either mirror: a refresh asks the mirror it tries for
	// the next root version first, so one refresh adds 1, or 2 when it
	// fails over; and how many there had been when the origin (the second
	// mirror) first served a timestamp since tsServedAt was reset to -1.
	var rootAsks, tsServedAt atomic.Int64
	tsServedAt.Store(-1)
	sw := newSwarm(t, localswarm.OriginOptions{WrapHandler: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case isRootAsk(r):
				rootAsks.Add(1)
			case r.URL.Path == "/metadata/timestamp.json":
				tsServedAt.CompareAndSwap(-1, rootAsks.Load())
			}
			next.ServeHTTP(w, r)
		})
	}})
	m1 := newBrokenMirror(t, sw.CatalogDir, &rootAsks)
	m1.set("500")
	first, second := m1.server.URL+"/", sw.OriginURL+"/"
	publish(t, sw, "app", "1.0", 31, map[string]int64{"a": 1 << 20}, "stable")
	oldTS, err := os.ReadFile(filepath.Join(sw.CatalogDir, "metadata", "timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	m1.oldTS = oldTS

	cfg := sw.AgentConfig("agent-1", "site-0", "eu", agent.Subscription{Name: "app", Channel: "stable"})
	cfg.Catalog.URL, cfg.Catalog.URLs = "", []string{first, second}
	// Short back-off, so that the first mirror is asked again nearly every
	// refresh and each fault below is met.
	cfg.Failover = failover.Config{Timeout: 5 * time.Second, BackoffBase: 200 * time.Millisecond, BackoffMax: time.Second}
	ra, err := sw.StartAgent(t.Context(), "agent-1", cfg)
	if err != nil {
		t.Fatal(err)
	}

	// phase waits until the agent runs version from the second mirror with
	// the first skipped for reason, and checks that the second mirror's
	// new timestamp was taken within 2 refreshes of the change (base): at
	// most 4 root asks, 2 per refresh that fails over. An agent that gave
	// up a refresh at the first mirror instead of trying the second would
	// add refreshes, and asks, until it did.
	phase := func(version string, reason failover.Reason, why string, base int64) {
		t.Helper()
		waitActive(t, "app", version, 90*time.Second, ra)
		at := tsServedAt.Load()
		t.Logf("%s: %d root asks before the second mirror served the timestamp", version, at-base)
		if at < 0 || at-base > 4 {
			t.Errorf("%s: the second mirror served the timestamp after %d root asks, want at most 4 (2 refreshes)", version, at-base)
		}
		var s agent.SourceStatus
		if !testenv.Poll(60*time.Second, 50*time.Millisecond, func() bool {
			s, _ = catalogSource(ra, first)
			return s.Reason == reason
		}) {
			t.Fatalf("%s: first mirror %+v, want %s", version, s, reason)
		}
		if !strings.Contains(s.Why, string(reason)) || !strings.Contains(s.Why, why) {
			t.Errorf("%s: status says %q for the first mirror, want %s and %q", version, s.Why, reason, why)
		}
		// One answer slower than the 5 s timeout on a loaded machine may
		// mark the healthy mirror for a while: wait for it to be clear.
		var s2 agent.SourceStatus
		if !testenv.Poll(30*time.Second, 50*time.Millisecond, func() bool {
			var ok bool
			s2, ok = catalogSource(ra, second)
			return ok && s2.Reason == ""
		}) {
			t.Errorf("%s: second mirror %+v, want healthy", version, s2)
		}
	}
	phase("1.0", failover.Error, "500", 0)

	// A refresh already past its root request when the counter is reset
	// may take the new timestamp: that counts as 0 refreshes.
	m1.set("hang")
	publish(t, sw, "app", "1.1", 32, map[string]int64{"a": 1 << 20}, "stable")
	base := rootAsks.Load()
	tsServedAt.Store(-1)
	phase("1.1", failover.Timeout, "no answer", base)

	m1.set("rollback")
	publish(t, sw, "app", "1.2", 33, map[string]int64{"a": 1 << 20}, "stable")
	base = rootAsks.Load()
	tsServedAt.Store(-1)
	phase("1.2", failover.Stale, "rollback refused", base)

	// The first mirror heals and is preferred again.
	m1.set("")
	if !testenv.Poll(60*time.Second, 50*time.Millisecond, func() bool {
		s, _ := catalogSource(ra, first)
		return s.InUse && s.Reason == ""
	}) {
		s, _ := catalogSource(ra, first)
		t.Fatalf("healed first mirror not used again: %+v", s)
	}
}

// TestTrackerTierFailover: the first tracker tier and the first offload
// source are down, so the agents use the next ones, and status says why.
func TestTrackerTierFailover(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{})
	// Nothing listens on port 1 (a closed test server's port could be
	// taken by another package's test running at the same time).
	const deadBase = "http://127.0.0.1:1"
	deadURL := deadBase + "/announce"
	publish(t, sw, "app", "1.0", 41, map[string]int64{"a": 2 << 20}, "stable")
	agents := startAgents(t, sw, 2, agent.Subscription{Name: "app", Channel: "stable"}, func(c *agent.Config) {
		c.Tracker = ""
		c.Trackers = [][]string{{deadURL}, {sw.OriginURL + "/announce"}}
		c.Offload.Sources = []string{deadBase + "/", sw.OriginURL + "/"}
		c.Failover = failover.Config{Timeout: 2 * time.Second, BackoffBase: time.Second, BackoffMax: 5 * time.Second}
	})
	waitActive(t, "app", "1.0", 90*time.Second, agents...)
	fetched := 0
	for _, ra := range agents {
		var down, up agent.SourceStatus
		ok := testenv.Poll(60*time.Second, 50*time.Millisecond, func() bool {
			for _, s := range ra.Agent.Status().Sources {
				switch {
				case s.Kind == "tracker" && s.Tier == 0:
					down = s
				case s.Kind == "tracker" && s.Tier == 1:
					up = s
				}
			}
			return down.Reason == failover.Error && up.InUse
		})
		if !ok {
			t.Fatalf("%s: trackers %+v and %+v; want the first failing, the second in use", ra.Name, down, up)
		}
		if down.Name != deadURL || !strings.Contains(down.Why, "refused") {
			t.Errorf("%s: first tracker %q: %q, want connection refused", ra.Name, down.Name, down.Why)
		}
		// An agent that fetched from the origin went through the list. An
		// agent that started late may have taken every piece from its peer
		// and never touched the list, so it is not checked.
		if releaseStatus(ra, "app", "1.0").Downloaded.Origin == 0 {
			t.Logf("%s: took nothing from the origin; offload list not checked", ra.Name)
			continue
		}
		fetched++
		var offload []agent.SourceStatus
		for _, s := range ra.Agent.Status().Sources {
			if s.Kind == "offload" {
				offload = append(offload, s)
			}
		}
		if len(offload) != 2 || offload[0].Name != deadBase+"/" || offload[0].Reason != failover.Error || offload[1].LastOK.IsZero() {
			t.Errorf("%s: offload sources %+v; want the first failing, the second used", ra.Name, offload)
		}
	}
	if fetched == 0 {
		t.Error("no agent fetched from the origin through the offload list")
	}
}
