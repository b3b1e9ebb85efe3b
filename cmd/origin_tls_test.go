package cmd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
	"github.com/swarmship/swarmship/internal/testenv"
)

// `swarmship origin --tls-cert --tls-key` serves HTTPS: a client holding
// the CA gets /healthz, a plain HTTP client gets no answer from the
// origin's handler, and a key readable by others is refused at start.
func TestOriginServesHTTPS(t *testing.T) {
	catalogDir, keysDir := initCatalog(t)
	pki := filepath.Join(t.TempDir(), "pki")
	if err := peertlstest.GeneratePKI(pki, peertlstest.CertSpec{Name: "origin", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	args := []string{"origin", "--catalog", catalogDir, "--root", filepath.Join(keysDir, "root.json"), "--listen", addr,
		"--tls-cert", filepath.Join(pki, "origin.pem"), "--tls-key", filepath.Join(pki, "origin.key")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	var errOut testenv.SyncBuffer // read by the health poll while the origin writes
	go func() { done <- Run(ctx, args, &bytes.Buffer{}, &errOut) }()
	defer func() { cancel(); <-done }()

	ca, err := os.ReadFile(filepath.Join(pki, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	testenv.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		resp, err := client.Get("https://" + addr + "/healthz")
		if err != nil {
			return fmt.Errorf("HTTPS origin not healthy: %v; stderr: %s", err, errOut.String())
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTPS origin not healthy: %s; stderr: %s", resp.Status, errOut.String())
		}
		return nil
	})
	resp, err := http.Get("http://" + addr + "/healthz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP to the HTTPS origin: %s, want Go's 400 for HTTP on a TLS port", resp.Status)
		}
	}

	if err := os.Chmod(filepath.Join(pki, "origin.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := swarmship(t, append(args[:len(args):len(args)], "--listen", "127.0.0.1:0")...)
	if code == 0 || !strings.Contains(stderr, "chmod 600") {
		t.Fatalf("0644 key: exit %d, %s", code, stderr)
	}
}
