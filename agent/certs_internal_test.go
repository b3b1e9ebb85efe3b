package agent

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
	"github.com/swarmship/swarmship/internal/testenv"
)

// The agent's client certificate for the origin follows its files: after a
// renewal on disk, new connections to an origin that requires client
// certificates present the new one, without a restart.
func TestOriginClientCertificateRotation(t *testing.T) {
	pki := t.TempDir()
	if err := peertlstest.GeneratePKI(pki,
		peertlstest.CertSpec{Name: "origin", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}},
		peertlstest.CertSpec{Name: "c1"}, peertlstest.CertSpec{Name: "c2"}, peertlstest.CertSpec{Name: "c3"},
	); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	srvCert, err := tls.LoadX509KeyPair(filepath.Join(pki, "origin.pem"), filepath.Join(pki, "origin.key"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	live := t.TempDir()
	cfg := OriginTLSConfig{CA: filepath.Join(pki, "ca.pem"), Cert: filepath.Join(live, "c.pem"), Key: filepath.Join(live, "c.key")}
	install := func(name string) {
		t.Helper()
		for _, f := range [][2]string{{name + ".pem", cfg.Cert}, {name + ".key", cfg.Key}} {
			b, err := os.ReadFile(filepath.Join(pki, f[0]))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f[1], b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	install("c1")
	tc, cert, err := cfg.clientConfig(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{originCert: cert, originHTTP: originTransport(tc)}
	client := &http.Client{Transport: a.originHTTP, Timeout: 30 * time.Second}
	presented := func() (string, error) {
		resp, err := client.Get(srv.URL)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if got, err := presented(); err != nil || got != "c1" {
		t.Fatalf("first request presented %q, %v", got, err)
	}

	install("c2")
	testenv.Eventually(t, 60*time.Second, 100*time.Millisecond, func() error {
		a.originHTTP.CloseIdleConnections() // a new connection each try
		if got, err := presented(); err != nil || got != "c2" {
			return fmt.Errorf("presented %q, %v; want c2", got, err)
		}
		return nil
	})

	install("c3")
	if err := a.ReloadCertificates(); err != nil { // SIGHUP
		t.Fatal(err)
	}
	if got, err := presented(); err != nil || got != "c3" {
		t.Fatalf("right after ReloadCertificates: %q, %v; want c3", got, err)
	}
	if cs := a.certificateStatus(); len(cs) != 1 || cs[0].Use != "tls" || cs[0].Subject != "CN=c3" {
		t.Fatalf("status shows %+v, want the tls client certificate c3", cs)
	}
}
