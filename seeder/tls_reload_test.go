package seeder

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
)

// A renewed certificate is served without a restart; a broken renewal
// keeps the old one; bad settings are refused at start.
func TestOriginTLSCertificateReload(t *testing.T) {
	dir := t.TempDir()
	if err := peertlstest.GeneratePKI(dir, peertlstest.CertSpec{Name: "a"}, peertlstest.CertSpec{Name: "b"}); err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(dir, "live.pem"), filepath.Join(dir, "live.key")
	install := func(name string) {
		t.Helper()
		for _, f := range [][2]string{{name + ".pem", cert}, {name + ".key", key}} {
			b, err := os.ReadFile(filepath.Join(dir, f[0]))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f[1], b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	install("a")
	tc, err := TLSConfig{Cert: cert, Key: key}.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	served := func() []byte {
		c, err := tc.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.Certificate[0]
	}
	first := served()
	time.Sleep(1100 * time.Millisecond)
	install("b")
	second := served()
	if bytes.Equal(first, second) {
		t.Fatal("renewed certificate not picked up")
	}
	time.Sleep(1100 * time.Millisecond)
	os.WriteFile(cert, []byte("half-written"), 0o644)
	if !bytes.Equal(served(), second) {
		t.Fatal("a broken renewal replaced the working certificate")
	}

	for _, tc := range []struct {
		cfg  TLSConfig
		want string
	}{
		{TLSConfig{Cert: cert}, "cert and key are both required"},
		{TLSConfig{Cert: filepath.Join(dir, "a.pem"), Key: filepath.Join(dir, "a.key"), ClientAuth: "required"}, "client_auth needs client_ca"},
		{TLSConfig{Cert: filepath.Join(dir, "a.pem"), Key: filepath.Join(dir, "a.key"), ClientCA: filepath.Join(dir, "ca.pem"), ClientAuth: "sometimes"}, "want optional or required"},
		{TLSConfig{Cert: filepath.Join(dir, "a.pem"), Key: filepath.Join(dir, "a.key"), ClientCA: filepath.Join(dir, "a.key")}, "no PEM certificate"},
	} {
		if _, err := tc.cfg.ServerConfig(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
