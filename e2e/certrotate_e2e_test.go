package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

// Rotating a running agent's peer certificate on disk takes effect for new
// connections without a restart: by itself within seconds, at once on
// ReloadCertificates (SIGHUP); a broken renewal keeps the old one.
func TestTLSAgentCertificateRotationWithoutRestart(t *testing.T) {
	pkiDir := t.TempDir()
	id := peertls.Identity{Tenant: "acme", Site: "site-1", Region: "eu"}
	if err := peertlstest.GeneratePKI(pkiDir,
		peertlstest.CertSpec{Name: "old", Identity: id},
		peertlstest.CertSpec{Name: "renewed", Identity: id},
		peertlstest.CertSpec{Name: "again", Identity: id},
		peertlstest.CertSpec{Name: "friend", Identity: peertls.Identity{Tenant: "acme", Site: "site-9"}},
	); err != nil {
		t.Fatal(err)
	}
	live := t.TempDir()
	cfgTLS := peertls.Config{Mode: peertls.ModeRequired, CA: filepath.Join(pkiDir, "ca.pem"), Cert: filepath.Join(live, "agent.pem"), Key: filepath.Join(live, "agent.key")}
	install := func(name string) {
		t.Helper()
		for _, f := range [][2]string{{name + ".pem", cfgTLS.Cert}, {name + ".key", cfgTLS.Key}} {
			b, err := os.ReadFile(filepath.Join(pkiDir, f[0]))
			if err != nil {
				t.Fatal(err)
			}
			// Replaced the way renewal tools do: a new file renamed over.
			tmp := f[1] + ".tmp"
			if err := os.WriteFile(tmp, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, f[1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	install("old")

	sw := newSwarm(t, localswarm.OriginOptions{})
	cfg := sw.AgentConfig("a", "site-1", "eu", agent.Subscription{Name: "app"})
	cfg.Tenant, cfg.PeerTLS = "acme", cfgTLS
	ra, err := sw.StartAgent(context.Background(), "a", cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(ra.Agent.PeerPort()))
	friend, _, err := peertls.Load(peertlstest.Config(pkiDir, "friend"))
	if err != nil {
		t.Fatal(err)
	}
	// presented is the serial of the certificate a new connection to the
	// agent's peer port gets.
	presented := func() (*big.Int, error) {
		c, err := peertls.Dialer{TLS: friend, Timeout: 30 * time.Second}.Dial(context.Background(), addr)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber, nil
	}
	serial := func(name string) *big.Int {
		b, err := os.ReadFile(filepath.Join(pkiDir, name+".pem"))
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c.SerialNumber
	}
	want := func(name string, within time.Duration) {
		t.Helper()
		testenv.Eventually(t, within, 100*time.Millisecond, func() error {
			got, err := presented()
			if err != nil {
				return err
			}
			if got.Cmp(serial(name)) != 0 {
				return fmt.Errorf("new connections get serial %v, want %s's %v", got, name, serial(name))
			}
			return nil
		})
	}
	want("old", 30*time.Second)

	install("renewed")
	want("renewed", 60*time.Second) // by itself: files looked at every few seconds
	t.Logf("renewed certificate served without a restart")

	// A broken renewal (key of another certificate) keeps the one in force.
	b, err := os.ReadFile(filepath.Join(pkiDir, "again.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgTLS.Cert, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ra.Agent.ReloadCertificates(); err == nil {
		t.Fatal("a certificate without its key was loaded")
	}
	want("renewed", 30*time.Second)

	install("again")
	if err := ra.Agent.ReloadCertificates(); err != nil { // SIGHUP
		t.Fatal(err)
	}
	if got, err := presented(); err != nil || got.Cmp(serial("again")) != 0 {
		t.Fatalf("right after ReloadCertificates new connections get %v, %v; want %v", got, err, serial("again"))
	}
	if cs := ra.Agent.Status().Certificates; len(cs) != 1 || cs[0].Use != "peer_tls" || cs[0].Serial != serial("again").String() {
		t.Fatalf("status shows certificates %+v, want the peer_tls one with serial %v", cs, serial("again"))
	}
}
