package seeder_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
	"github.com/swarmship/swarmship/seeder"
)

// The origin's seeding client speaks mutual TLS only when peer_tls is
// required: certified peers handshake, plain ones get nothing.
func TestTLSOriginSeederPeerPort(t *testing.T) {
	dir := t.TempDir()
	pki := filepath.Join(dir, "pki")
	if err := peertlstest.GeneratePKI(pki,
		peertlstest.CertSpec{Name: "origin", Identity: peertls.Identity{Tenant: "acme", Site: "origin"}},
		peertlstest.CertSpec{Name: "agent", Identity: peertls.Identity{Tenant: "acme", Site: "s1"}},
	); err != nil {
		t.Fatal(err)
	}
	store, _, root := newTestCatalog(t, dir)
	client, err := catalog.NewClient(store, root, filepath.Join(dir, "tuf"))
	if err != nil {
		t.Fatal(err)
	}
	seed := true
	cfg := seeder.Config{Seed: &seed, PeerHost: "127.0.0.1", CacheDir: filepath.Join(dir, "cache"), PeerTLS: peertlstest.Config(pki, "origin")}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	bad := cfg
	bad.PeerTLS.Mode = "sometimes"
	if _, err := seeder.New(bad, store, client, log); err == nil || !strings.Contains(err.Error(), "peer_tls") {
		t.Fatalf("bad peer_tls mode: %v", err)
	}

	o, err := seeder.New(cfg, store, client, log)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(o.PeerPort()))
	if o.PeerPort() == 0 {
		t.Fatal("no peer port")
	}
	agentTLS, _, err := peertls.Load(peertlstest.Config(pki, "agent"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := peertls.Dialer{TLS: agentTLS}.Dial(context.Background(), addr)
	if err != nil {
		t.Fatalf("certified peer: %v", err)
	}
	c.Close()

	plain, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.Write(append([]byte("\x13BitTorrent protocol"), make([]byte, 48)...))
	plain.SetReadDeadline(time.Now().Add(3 * time.Second))
	got, _ := io.ReadAll(plain)
	if strings.Contains(string(got), "BitTorrent protocol") {
		t.Fatalf("plain peer got a BitTorrent answer: %q", got)
	}
	if err := os.Chmod(cfg.PeerTLS.Key, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := seeder.New(cfg, store, client, log); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("0644 key: %v", err)
	}
}
