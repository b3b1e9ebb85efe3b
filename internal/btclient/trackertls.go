package btclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"time"
)

// trackerTLS makes the library's HTTPS announces verify the tracker.
//
// anacrolix/torrent v1.59.1 builds its HTTP tracker client with
// InsecureSkipVerify and offers no way to set the TLS config or the HTTP
// client; it does let us supply the dial function. So the dial does the
// real, verified TLS handshake to the tracker (with this agent's client
// certificate if any) and hands the library one end of an in-memory pipe,
// on whose other end a throwaway in-process TLS server terminates the
// library's unverified handshake and relays the plain HTTP into the
// verified connection. An attacker in the path meets the verified
// handshake; the unverified one never leaves the process.
//
// It is installed only for https tracker URLs: the library would send a
// plain http announce as plain text into the pipe.
type trackerTLS struct {
	client *tls.Config // verifies the tracker (RootCAs, ServerName, client cert)
	local  *tls.Config // the in-process end
	log    *slog.Logger
	dialer net.Dialer
}

func newTrackerTLS(client *tls.Config, log *slog.Logger) (*trackerTLS, error) {
	cert, err := throwawayCert()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &trackerTLS{
		client: client,
		local:  &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		log:    log,
		dialer: net.Dialer{Timeout: 15 * time.Second},
	}, nil
}

// DialContext is torrent.ClientConfig.TrackerDialContext.
func (d *trackerTLS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	cfg := d.client.Clone()
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		cfg.ServerName = host
	}
	cfg.NextProtos = []string{"http/1.1"}
	up, err := (&tls.Dialer{NetDialer: &d.dialer, Config: cfg}).DialContext(ctx, network, addr)
	if err != nil {
		// The library logs announce errors quietly; a tracker whose
		// certificate does not verify is worth a warning.
		d.log.Warn("tracker TLS refused", "tracker", addr, "err", err)
		return nil, fmt.Errorf("tracker %s: %w", addr, err)
	}
	inner, outer := net.Pipe()
	go d.relay(ctx, tls.Server(outer, d.local), up)
	return inner, nil
}

func (d *trackerTLS) relay(ctx context.Context, local *tls.Conn, up net.Conn) {
	defer up.Close()
	defer local.Close()
	hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err := local.HandshakeContext(hctx)
	cancel()
	if err != nil {
		return
	}
	var once sync.Once
	closeBoth := func() { once.Do(func() { local.Close(); up.Close() }) }
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(up, local)
		closeBoth()
	}()
	io.Copy(local, up)
	closeBoth()
	<-done
}

// throwawayCert is the in-process end's certificate; nobody verifies it.
func throwawayCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "swarmship tracker relay"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(100 * 365 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
