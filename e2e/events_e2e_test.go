package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

// TestCatalogPushStartsNewVersion: six agents that poll only every ten
// minutes follow the origin's catalog change stream, so a promote reaches
// every one of them (each resolves and starts the new version) in seconds,
// not a refresh interval later. The figure is logged; the assertion is
// only that every agent saw it long before its poll would have.
func TestCatalogPushStartsNewVersion(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{})
	small := map[string]int64{"app.bin": 256 << 10, "VERSION": 10}
	publish(t, sw, "app", "1.0", 21, small, "stable")
	m2 := publish(t, sw, "app", "2.0", 22, small)
	const poll = 10 * time.Minute
	agents := startAgents(t, sw, 6, agent.Subscription{Name: "app", Channel: "stable"}, func(c *agent.Config) {
		c.RefreshInterval = poll
	})
	waitActive(t, "app", "1.0", 90*time.Second, agents...)
	testenv.Eventually(t, 60*time.Second, 50*time.Millisecond, func() error {
		for _, ra := range agents {
			if w := ra.Agent.CatalogWatch(); !strings.HasPrefix(w, "following ") {
				return fmt.Errorf("%s: watch %q", ra.Name, w)
			}
		}
		return nil
	})

	repo, err := sw.Repo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Promote("app", "2.0", "stable"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := repo.Commit(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	// Started: the agent resolved stable to 2.0 and added its download.
	started := make([]time.Duration, len(agents))
	deadline := start.Add(2 * time.Minute) // far below the 10-minute poll
	for pending := len(agents); pending > 0; {
		if time.Now().After(deadline) {
			for _, ra := range agents {
				t.Logf("%s: subscriptions %+v, watch %q", ra.Name, ra.Agent.Status().Subscriptions, ra.Agent.CatalogWatch())
			}
			t.Fatalf("%d agents did not start 2.0 within %v of the promote (their poll is %v)", pending, 2*time.Minute, poll)
		}
		for i, ra := range agents {
			if started[i] == 0 && startedVersion(ra, "app", "2.0") {
				started[i] = time.Since(start)
				pending--
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	slices.Sort(started)
	t.Logf("promote -> agents starting 2.0: median %v, max (p99 of 6) %v", started[len(started)/2].Round(time.Millisecond), started[len(started)-1].Round(time.Millisecond))
	waitActive(t, "app", "2.0", 90*time.Second, agents...)
	for _, ra := range agents {
		checkActiveFiles(t, ra, m2)
	}
}

// startedVersion reports whether the agent targets version and has a
// record of it (its download was added).
func startedVersion(ra *localswarm.RunningAgent, name, version string) bool {
	st := ra.Agent.Status()
	target := false
	for _, s := range st.Subscriptions {
		if s.Name == name && s.Target == version {
			target = true
		}
	}
	if !target {
		return false
	}
	for _, r := range st.Releases {
		if r.Name == name && r.Version == version && r.Phase != "" {
			return true
		}
	}
	return false
}
