package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
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
	// Connections are sampled during the download: once both agents of a
	// tenant are complete they may drop each other (two seeders), so the
	// end state alone can show none.
	connected := map[string]bool{} // "agent>peer-port"
	sample := func() {
		for _, ra := range agents {
			for _, addr := range releaseStatus(ra, "app", "1.0").PeerAddrs {
				_, port, _ := net.SplitHostPort(addr)
				if _, ok := tenantOf[port]; ok {
					connected[ra.Name+">"+port] = true
				}
			}
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for !allActive(agents, "app", "1.0") && time.Now().Before(deadline) {
		sample()
		time.Sleep(20 * time.Millisecond)
	}
	sample()
	waitActive(t, "app", "1.0", time.Second, agents...)
	for _, ra := range agents {
		checkActiveFiles(t, ra, m)
	}
	for pair := range connected {
		name, port, _ := strings.Cut(pair, ">")
		if tenantOf[port] != tenantOf[name] {
			t.Errorf("%s (%s) was connected to an agent of %s", name, tenantOf[name], tenantOf[port])
		}
	}
	var peerBytes int64
	for _, ra := range agents {
		peerBytes += releaseStatus(ra, "app", "1.0").Downloaded.Peer
	}
	if len(connected) == 0 && peerBytes == 0 {
		t.Fatal("no agent connected to or took a byte from any other: the test proves nothing")
	}
	t.Logf("connections seen: %d; bytes between agents: %d", len(connected), peerBytes)
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
