package peertls_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
	"github.com/swarmship/swarmship/internal/testenv"
)

// Rotating the certificate, key and CA files of a running peer takes
// effect for new connections, accepted and dialled, without a restart; a
// broken or foreign set keeps the old one in force and is logged.
func TestPeertlsSourceFollowsRotatedFiles(t *testing.T) {
	dir := pki(t,
		peertlstest.CertSpec{Name: "a", Identity: id("acme", "s1")},
		peertlstest.CertSpec{Name: "b", Identity: id("acme", "s1")},
		peertlstest.CertSpec{Name: "peer", Identity: id("acme", "s2")},
		peertlstest.CertSpec{Name: "evil", Identity: id("globex", "s1")}, // same CA, another tenant
	)
	newCA := pki(t, peertlstest.CertSpec{Name: "c", Identity: id("acme", "s1")}, peertlstest.CertSpec{Name: "peer2", Identity: id("acme", "s3")})

	live := t.TempDir()
	cfg := peertls.Config{Mode: peertls.ModeRequired, CA: filepath.Join(live, "ca.pem"), Cert: filepath.Join(live, "peer.pem"), Key: filepath.Join(live, "peer.key")}
	install := func(srcDir, name string) {
		t.Helper()
		copyFile(t, filepath.Join(srcDir, name+".pem"), cfg.Cert)
		copyFile(t, filepath.Join(srcDir, name+".key"), cfg.Key)
	}
	copyFile(t, filepath.Join(dir, "ca.pem"), cfg.CA)
	install(dir, "a")

	var logs testenv.SyncBuffer
	src, err := peertls.Open(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	src.SetCheckEvery(50 * time.Millisecond)
	if src.Identity() != id("acme", "s1") || src.Leaf().SerialNumber.Cmp(serialOf(t, dir, "a")) != 0 {
		t.Fatalf("source starts with %+v, serial %v", src.Identity(), src.Leaf().SerialNumber)
	}

	// The source listens; a fixed peer of the same tenant dials it, and it
	// dials a fixed listener. Both report the certificate src presented.
	ln, err := peertls.Listen("127.0.0.1:0", src.TLS())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// listenPeer runs a fixed peer's listener and reports the serial of
	// each client certificate it sees.
	listenPeer := func(tc *tls.Config) (string, <-chan *big.Int) {
		l, err := peertls.Listen("127.0.0.1:0", tc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		seen := make(chan *big.Int, 16)
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				seen <- c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber
				c.Close()
			}
		}()
		return l.Addr().String(), seen
	}
	peerAddr, peerSeen := listenPeer(load(t, dir, "peer"))
	peer := load(t, dir, "peer")
	accepted := func(tc *tls.Config) (*big.Int, error) {
		c, err := peertls.Dialer{TLS: tc, Timeout: 30 * time.Second}.Dial(context.Background(), ln.Addr().String())
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber, nil
	}
	dialled := func(addr string, seen <-chan *big.Int) *big.Int {
		t.Helper()
		c, err := peertls.Dialer{TLS: src.TLS(), Timeout: 30 * time.Second}.Dial(context.Background(), addr)
		if err != nil {
			t.Fatalf("source dialling: %v", err)
		}
		c.Close()
		select {
		case s := <-seen:
			return s
		case <-time.After(30 * time.Second):
			t.Fatal("the listener saw no connection")
			return nil
		}
	}
	presents := func(want *big.Int) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, 20*time.Millisecond, func() error {
			got, err := accepted(peer)
			if err != nil {
				return err
			}
			if got.Cmp(want) != 0 {
				return fmt.Errorf("accepted connections present serial %v, want %v", got, want)
			}
			return nil
		})
		if got := dialled(peerAddr, peerSeen); got.Cmp(want) != 0 {
			t.Fatalf("dialled connections present serial %v, want %v", got, want)
		}
	}
	presents(serialOf(t, dir, "a"))

	install(dir, "b")
	presents(serialOf(t, dir, "b"))

	// Half-written and foreign sets: b stays, each failure logged.
	if err := os.WriteFile(cfg.Cert, []byte("-----BEGIN CERTIFICATE-----\nhalf"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, 20*time.Millisecond, func() error {
		if _, err := accepted(peer); err != nil {
			return err
		}
		if !strings.Contains(logs.String(), "do not load") {
			return fmt.Errorf("no log of the broken set yet")
		}
		return nil
	})
	if err := src.Reload(); err == nil {
		t.Fatal("Reload of a broken set succeeded")
	}
	install(dir, "evil")
	if err := src.Reload(); err == nil || !strings.Contains(err.Error(), "restart to change tenants") {
		t.Fatalf("Reload of another tenant's certificate: %v", err)
	}
	presents(serialOf(t, dir, "b"))

	// CA rotation: the bundle holds both CAs, then the leaf moves to the
	// new CA; a peer of the new CA is accepted once the bundle is in.
	peer2 := load(t, newCA, "peer2")
	if _, err := accepted(peer2); err == nil {
		t.Fatal("a peer of the new CA was accepted before the CA bundle was")
	}
	old, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	nw, _ := os.ReadFile(filepath.Join(newCA, "ca.pem"))
	if err := os.WriteFile(cfg.CA, append(old, nw...), 0o644); err != nil {
		t.Fatal(err)
	}
	install(newCA, "c")
	if err := src.Reload(); err != nil { // SIGHUP: at once
		t.Fatal(err)
	}
	if got, err := accepted(peer2); err != nil || got.Cmp(serialOf(t, newCA, "c")) != 0 {
		t.Fatalf("after the CA rotation a new-CA peer got %v, %v", got, err)
	}
	if got := dialled(listenPeer(peer2)); got.Cmp(serialOf(t, newCA, "c")) != 0 {
		t.Fatalf("after the CA rotation the source dials with serial %v", got)
	}
	t.Logf("log:\n%s", logs.String())
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	// Written in place (not renamed), as a careless renewal script would.
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func serialOf(t *testing.T, dir, name string) *big.Int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name+".pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s.pem: no PEM", name)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber
}
