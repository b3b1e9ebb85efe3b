package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	catalogpublish "github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
	"github.com/swarmship/swarmship/internal/token"
	"github.com/swarmship/swarmship/localswarm"
	"github.com/swarmship/swarmship/seeder"
)

// Real agents against an origin with tokens and a private catalog: the
// release's tenant rolls it out; an agent of another tenant, subscribed
// to the same release, obtains no byte of it.
func TestPrivateCatalogTenantAgents(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys := filepath.Join(dir, "tokens")
	if err := token.GenerateKey(keys); err != nil {
		t.Fatal(err)
	}
	// Tokens imply peer TLS (an agent with a token and plain peers is
	// refused): every agent gets a certificate naming its tenant and site.
	pki := filepath.Join(dir, "pki")
	specs := []peertlstest.CertSpec{{Name: "origin", Identity: peertls.Identity{Tenant: "acme", Site: "origin"}}}
	for _, a := range []struct{ name, tenant, site string }{{"globex-1", "globex", "g1"}, {"acme-1", "acme", "store-1"}, {"acme-2", "acme", "store-2"}} {
		specs = append(specs, peertlstest.CertSpec{Name: a.name, Identity: peertls.Identity{Tenant: a.tenant, Site: a.site, Region: "eu"}})
	}
	if err := peertlstest.GeneratePKI(pki, specs...); err != nil {
		t.Fatal(err)
	}
	sw, err := localswarm.New(ctx, filepath.Join(dir, "swarm"), localswarm.OriginOptions{Configure: func(c *seeder.Config) {
		c.TokenPublicKey, c.PrivateCatalog = filepath.Join(keys, token.PublicKeyFile), true
		c.PeerTLS = peertlstest.Config(pki, "origin")
	}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	payload := filepath.Join(dir, "payload")
	os.MkdirAll(payload, 0o755)
	os.WriteFile(filepath.Join(payload, "app.bin"), []byte(strings.Repeat("acme private payload\n", 50000)), 0o644)
	if _, err := sw.PublishWith(ctx, catalogpublish.PublishOptions{Name: "app", Version: "1.0", Paths: []string{payload}, Channels: []string{"stable"}, Tenant: "acme"}); err != nil {
		t.Fatal(err)
	}
	key, err := token.LoadPrivateKey(keys)
	if err != nil {
		t.Fatal(err)
	}
	start := func(name, tenant, site string) *localswarm.RunningAgent {
		t.Helper()
		tok, err := token.Issue(key, token.Claims{Tenant: tenant, Site: site, IssuedAt: time.Now(), Expires: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		cfg := sw.AgentConfig(name, site, "eu", agent.Subscription{Name: "app", Channel: "stable"})
		cfg.Tenant, cfg.Token = tenant, tok
		cfg.PeerTLS = peertlstest.Config(pki, name)
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
