package e2e

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/localswarm"
)

// Two tenants fetch the very same torrent through one origin and tracker:
// the tracker keeps their swarms apart, so no agent of one tenant ever
// connects to, or exchanges a byte with, an agent of the other.
func TestTenantsNeverShareSwarms(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{})
	m := publish(t, sw, "app", "1.0", 95, map[string]int64{"app.bin": 6 << 20}, "stable")
	tenantOf := map[string]string{}
	var agents []*localswarm.RunningAgent
	for i := range 4 {
		tenant := []string{"acme", "globex"}[i%2]
		name := fmt.Sprintf("%s-%d", tenant, i/2+1)
		cfg := sw.AgentConfig(name, "shared-site", "eu", agent.Subscription{Name: "app", Channel: "stable"})
		cfg.Tenant = tenant
		ra, err := sw.StartAgent(context.Background(), name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		agents = append(agents, ra)
		tenantOf[fmt.Sprint(ra.Agent.PeerPort())] = tenant
		tenantOf[ra.Name] = tenant
	}
	waitActive(t, "app", "1.0", 60*time.Second, agents...)
	connections := 0
	for _, ra := range agents {
		checkActiveFiles(t, ra, m)
		for _, addr := range releaseStatus(ra, "app", "1.0").PeerAddrs {
			_, port, _ := net.SplitHostPort(addr)
			if other, ok := tenantOf[port]; ok {
				connections++
				if other != tenantOf[ra.Name] {
					t.Errorf("%s (%s) is connected to an agent of %s", ra.Name, tenantOf[ra.Name], other)
				}
			}
		}
	}
	if connections == 0 {
		t.Fatal("no agent connected to any other: the test proves nothing")
	}
	for _, p := range sw.Origin.Tracker().Peers(hexHash(t, m.InfoHash)) {
		if p.Identity.Tenant != "acme" && p.Identity.Tenant != "globex" {
			t.Errorf("tracker peer with tenant %q", p.Identity.Tenant)
		}
	}
	// Each tenant's swarm took its own copy from the origin.
	copies := float64(sw.Origin.Egress().Total()) / float64(m.TotalSize)
	t.Logf("origin egress %.2f copies for two tenants", copies)
	if copies < 1.9 {
		t.Errorf("origin sent %.2f copies: two isolated tenants need about two", copies)
	}
}
