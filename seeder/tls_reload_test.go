package seeder

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
	"github.com/swarmship/swarmship/internal/testenv"
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
	var logs testenv.SyncBuffer
	tc, pair, err := TLSConfig{Cert: cert, Key: key}.serverConfig(slog.New(slog.NewTextHandler(&logs, nil)))
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
	install("b")
	// Looked at every few seconds, on new connections.
	testenv.Eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		if bytes.Equal(first, served()) {
			return errors.New("renewed certificate not picked up")
		}
		return nil
	})
	second := served()
	os.WriteFile(cert, []byte("half-written"), 0o644)
	testenv.Eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		if !bytes.Equal(served(), second) {
			t.Fatal("a broken renewal replaced the working certificate")
		}
		if !strings.Contains(logs.String(), "do not load") {
			return errors.New("the broken renewal is not logged")
		}
		return nil
	})
	if err := pair.Reload(); err == nil {
		t.Fatal("SIGHUP reload of a broken renewal succeeded")
	}
	install("a")
	if err := pair.Reload(); err != nil || !bytes.Equal(served(), first) {
		t.Fatalf("SIGHUP reload: %v; served the first certificate again: %v", err, bytes.Equal(served(), first))
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
