package cmd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
	"github.com/swarmship/swarmship/internal/testenv"
)

// `swarmship origin` rereads its HTTPS certificate on SIGHUP and keeps
// running: new connections get the renewed certificate.
func TestOriginSIGHUPReloadsCertificate(t *testing.T) {
	// Should the origin's handler be missing, SIGHUP must fail the test,
	// not end the test binary.
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)

	catalogDir, keysDir := initCatalog(t)
	pki := filepath.Join(t.TempDir(), "pki")
	ip := []net.IP{net.IPv4(127, 0, 0, 1)}
	if err := peertlstest.GeneratePKI(pki, peertlstest.CertSpec{Name: "old", IPs: ip}, peertlstest.CertSpec{Name: "new", IPs: ip}); err != nil {
		t.Fatal(err)
	}
	live := t.TempDir()
	cert, key := filepath.Join(live, "origin.pem"), filepath.Join(live, "origin.key")
	install := func(name string) {
		t.Helper()
		for _, f := range [][2]string{{name + ".pem", cert}, {name + ".key", key}} {
			b, err := os.ReadFile(filepath.Join(pki, f[0]))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f[1], b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	install("old")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	args := []string{"origin", "--catalog", catalogDir, "--root", filepath.Join(keysDir, "root.json"), "--listen", addr,
		"--tls-cert", cert, "--tls-key", key, "--log-format", "text"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errOut testenv.SyncBuffer
	go func() { done <- Run(ctx, args, &bytes.Buffer{}, &errOut) }()
	defer func() { cancel(); <-done }()

	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	// A new connection per request: each one shows the certificate in force.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
	served := func() (*big.Int, error) {
		resp, err := client.Get("https://" + addr + "/healthz")
		if err != nil {
			return nil, fmt.Errorf("%v; stderr: %s", err, errOut.String())
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber, nil
	}
	serial := func(name string) *big.Int {
		b, _ := os.ReadFile(filepath.Join(pki, name+".pem"))
		blk, _ := pem.Decode(b)
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c.SerialNumber
	}
	wantServed := func(name string) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
			got, err := served()
			if err != nil {
				return err
			}
			if got.Cmp(serial(name)) != 0 {
				return fmt.Errorf("served serial %v, want %s's %v", got, name, serial(name))
			}
			return nil
		})
	}
	wantServed("old")

	install("new")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wantServed("new")
	testenv.Eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		if !strings.Contains(errOut.String(), "SIGHUP: revocation list and certificates reread") {
			return fmt.Errorf("no SIGHUP line in the origin's log:\n%s", errOut.String())
		}
		return nil
	})
	select {
	case code := <-done:
		done <- code // for the deferred wait
		t.Fatalf("the origin exited (%d) after SIGHUP", code)
	default:
	}
}
