package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	catalogpublish "github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
	"github.com/swarmship/swarmship/internal/token"
	"github.com/swarmship/swarmship/localswarm"
	"github.com/swarmship/swarmship/seeder"
)

// tokenAgent is an agent identity of a tokenSwarm: its certificate is
// named name and says tenant and site.
type tokenAgent struct{ name, tenant, site string }

// tokenSwarm is an origin with agent tokens and peer TLS (tokens imply
// it), and acme's release app 1.0 of the payload line repeated n times.
type tokenSwarm struct {
	sw  *localswarm.Swarm
	pki string
	key string // the token key directory
}

func newTokenSwarm(t *testing.T, opts localswarm.OriginOptions, configure func(*seeder.Config), agents []tokenAgent, line string, n int) *tokenSwarm {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	ts := &tokenSwarm{pki: filepath.Join(dir, "pki"), key: filepath.Join(dir, "tokens")}
	if err := token.GenerateKey(ts.key); err != nil {
		t.Fatal(err)
	}
	specs := []peertlstest.CertSpec{{Name: "origin", Identity: peertls.Identity{Tenant: "acme", Site: "origin"}}}
	for _, a := range agents {
		specs = append(specs, peertlstest.CertSpec{Name: a.name, Identity: peertls.Identity{Tenant: a.tenant, Site: a.site, Region: "eu"}})
	}
	if err := peertlstest.GeneratePKI(ts.pki, specs...); err != nil {
		t.Fatal(err)
	}
	opts.Configure = func(c *seeder.Config) {
		c.TokenPublicKey = filepath.Join(ts.key, token.PublicKeyFile)
		c.PeerTLS = peertlstest.Config(ts.pki, "origin")
		configure(c)
	}
	sw, err := localswarm.New(ctx, filepath.Join(dir, "swarm"), opts, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	ts.sw = sw
	payload := filepath.Join(dir, "payload")
	if err := os.MkdirAll(payload, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(payload, "app.bin"), []byte(strings.Repeat(line, n)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sw.PublishWith(ctx, catalogpublish.PublishOptions{Name: "app", Version: "1.0", Paths: []string{payload}, Channels: []string{"stable"}, Tenant: "acme"}); err != nil {
		t.Fatal(err)
	}
	return ts
}

// issue is an agent token of tenant and site, valid for an hour.
func (ts *tokenSwarm) issue(t *testing.T, tenant, site string) string {
	t.Helper()
	key, err := token.LoadPrivateKey(ts.key)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := token.Issue(key, token.Claims{Tenant: tenant, Site: site, IssuedAt: time.Now(), Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
