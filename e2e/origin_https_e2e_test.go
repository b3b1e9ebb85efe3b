package e2e

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
	"github.com/swarmship/swarmship/seeder"
)

// An agent reaches an HTTPS origin (catalog, web seed, tracker announces,
// reports) and verifies its certificate against the configured CA; an
// agent holding another CA is refused with the x509 error, and gets
// nothing.
func TestOriginHTTPSAgentVerifiesCertificate(t *testing.T) {
	dir := t.TempDir()
	pki, other := filepath.Join(dir, "pki"), filepath.Join(dir, "other")
	if err := peertlstest.GeneratePKI(pki, peertlstest.CertSpec{Name: "origin", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}); err != nil {
		t.Fatal(err)
	}
	if err := peertlstest.GeneratePKI(other, peertlstest.CertSpec{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	sw := newSwarm(t, localswarm.OriginOptions{Seed: true, TLS: seeder.TLSConfig{
		Cert: filepath.Join(pki, "origin.pem"), Key: filepath.Join(pki, "origin.key"),
	}})
	if !strings.HasPrefix(sw.OriginURL, "https://") {
		t.Fatalf("origin URL %s", sw.OriginURL)
	}
	m := publish(t, sw, "app", "1.0", 7, map[string]int64{"a.bin": 3 << 20, "b.txt": 1000})

	cfg := sw.AgentConfig("good", "s1", "eu", agent.Subscription{Name: "app"})
	cfg.TLS.CA = filepath.Join(pki, "ca.pem")
	start := time.Now()
	ra, err := sw.StartAgent(context.Background(), "good", cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitActive(t, "app", "1.0", 60*time.Second, ra)
	checkActiveFiles(t, ra, m)
	t.Logf("active over HTTPS in %v", time.Since(start).Round(time.Millisecond))

	// The announces went over the verified relay: the tracker knows the
	// agent (and the origin's own seeder, which pins its certificate).
	ihb, _ := hex.DecodeString(m.InfoHash)
	var ih [20]byte
	copy(ih[:], ihb)
	testenv.Eventually(t, 20*time.Second, 100*time.Millisecond, func() error {
		var agents, origins int
		for _, p := range sw.Origin.Tracker().Peers(ih) {
			if p.Identity.Role == "origin" {
				origins++
			} else {
				agents++
			}
		}
		if agents < 1 || origins < 1 {
			return fmt.Errorf("tracker has %d agents and %d origins for the release, want both announced over HTTPS", agents, origins)
		}
		return nil
	})

	for _, tc := range []struct{ name, ca string }{
		{"other CA", filepath.Join(other, "ca.pem")},
		{"system roots", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := sw.AgentConfig("bad-"+strings.ReplaceAll(tc.name, " ", "-"), "s2", "eu", agent.Subscription{Name: "app"})
			bad.TLS.CA = tc.ca
			if err := bad.Finish(); err != nil {
				t.Fatal(err)
			}
			a, err := agent.New(context.Background(), bad, agent.Options{Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err = a.Sync(ctx)
			if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") || !strings.Contains(err.Error(), "tls.ca in agent.yaml") {
				t.Fatalf("sync with %s: %v, want a certificate error", tc.name, err)
			}
			t.Logf("refused: %v", err)
			for _, r := range a.Status().Releases {
				if r.Completed > 0 {
					t.Fatalf("agent with %s got %d bytes", tc.name, r.Completed)
				}
			}
		})
	}
}
