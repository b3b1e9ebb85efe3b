package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
	"github.com/swarmship/swarmship/localswarm"
	"github.com/swarmship/swarmship/seeder"
)

// Real agents against an origin with tokens and a private catalog: the
// release's tenant rolls it out; an agent of another tenant, subscribed
// to the same release, obtains no byte of it.
func TestPrivateCatalogTenantAgents(t *testing.T) {
	ctx := context.Background()
	// Tokens imply peer TLS (an agent with a token and plain peers is
	// refused): every agent gets a certificate naming its tenant and site.
	ts := newTokenSwarm(t, localswarm.OriginOptions{}, func(c *seeder.Config) { c.PrivateCatalog = true },
		[]tokenAgent{{"globex-1", "globex", "g1"}, {"acme-1", "acme", "store-1"}, {"acme-2", "acme", "store-2"}}, "acme private payload\n", 50000)
	sw := ts.sw
	start := func(name, tenant, site string) *localswarm.RunningAgent {
		t.Helper()
		cfg := sw.AgentConfig(name, site, "eu", agent.Subscription{Name: "app", Channel: "stable"})
		cfg.Tenant, cfg.Token = tenant, ts.issue(t, tenant, site)
		cfg.PeerTLS = peertlstest.Config(ts.pki, name)
		ra, err := sw.StartAgent(ctx, name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return ra
	}
	intruder := start("globex-1", "globex", "g1")
	a1, a2 := start("acme-1", "acme", "store-1"), start("acme-2", "acme", "store-2")
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := localswarm.WaitActive(wctx, "app", "1.0", a1, a2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // a few more catalog refreshes for the intruder
	st := intruder.Agent.Status()
	var got int64
	for _, r := range st.Releases {
		got += r.Downloaded.Peer + r.Downloaded.Origin + r.Downloaded.WebSeed + r.Completed
	}
	if localswarm.IsActive(intruder.Agent, "app", "1.0") || got != 0 {
		t.Errorf("globex agent obtained %d bytes of acme's release: %+v", got, st.Releases)
	}
	t.Logf("globex agent: catalog %+v, %d bytes", st.Catalog, got)
}
