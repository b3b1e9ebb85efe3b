package seeder

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/swarmship/swarmship/internal/certreload"
)

// TLSConfig is the origin's HTTPS listener (tracker, web seed, catalog,
// reports, dashboard, metrics: everything on Listen).
type TLSConfig struct {
	Cert string `yaml:"cert"` // PEM: the server certificate (+ intermediates)
	Key  string `yaml:"key"`  // PEM: its private key, mode 0600
	// ClientCA (PEM) makes the origin verify client certificates against
	// it: with ClientAuth "optional" (the default) a client may present
	// none, but one it presents must verify; with "required" every client
	// must present one.
	ClientCA   string `yaml:"client_ca"`
	ClientAuth string `yaml:"client_auth"`
}

// Enabled reports whether the origin serves HTTPS.
func (c TLSConfig) Enabled() bool { return c.Cert != "" || c.Key != "" }

// ServerConfig loads the certificate and returns the listener's TLS
// config. The certificate and key are read again when either file
// changes (looked at on new connections, at most every
// certreload.CheckEvery), so a renewal needs no restart; a renewal that
// does not load keeps the old pair and is logged.
func (c TLSConfig) ServerConfig() (*tls.Config, error) {
	tc, _, err := c.serverConfig(nil)
	return tc, err
}

// serverConfig is ServerConfig with the reloading pair, for SIGHUP, and a
// logger for reloads (nil: slog.Default).
func (c TLSConfig) serverConfig(log *slog.Logger) (*tls.Config, *certreload.Files[*certreload.Pair], error) {
	if c.Cert == "" || c.Key == "" {
		return nil, nil, errors.New("tls: cert and key are both required")
	}
	pair, err := certreload.OpenKeyPair("origin HTTPS certificate", c.Cert, c.Key, log)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return &pair.Current().Certificate, nil
	}}
	switch c.ClientAuth {
	case "", "optional":
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	case "required":
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		return nil, nil, fmt.Errorf("tls: client_auth %q: want optional or required", c.ClientAuth)
	}
	if c.ClientCA == "" {
		if c.ClientAuth != "" {
			return nil, nil, errors.New("tls: client_auth needs client_ca")
		}
		tc.ClientAuth = tls.NoClientCert
		return tc, pair, nil
	}
	b, err := os.ReadFile(c.ClientCA)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: client_ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, nil, fmt.Errorf("tls: client_ca %s holds no PEM certificate", c.ClientCA)
	}
	tc.ClientCAs = pool
	return tc, pair, nil
}

// ReloadCertificates rereads the HTTPS certificate and key and the peer
// TLS files now (SIGHUP). They are also reread when their files change,
// looked at on new connections at most every certreload.CheckEvery. A set
// that does not load leaves the one in force and is returned (and logged);
// open connections keep their certificate.
func (o *Origin) ReloadCertificates() error {
	var errs []error
	for _, reload := range o.certs {
		if err := reload(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func wrapReload(section string, reload func() error) func() error {
	return func() error {
		if err := reload(); err != nil {
			return fmt.Errorf("%s: %w", section, err)
		}
		return nil
	}
}

// selfTrackerTLS is how the origin's own seeder checks the tracker it
// announces to: usually itself at 127.0.0.1, a name its certificate need
// not carry, so its own certificate is pinned; any other tracker (an
// announce_url naming another origin) must verify against the system
// roots. It presents the origin's certificate when a client certificate
// is asked for (client_auth required).
func selfTrackerTLS(server *tls.Config) *tls.Config {
	own := func() *tls.Certificate {
		c, err := server.GetCertificate(nil)
		if err != nil {
			return nil
		}
		return c
	}
	return &tls.Config{
		// Replaced by VerifyConnection: the pin, else normal verification.
		InsecureSkipVerify: true, //nolint:gosec
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tracker presented no certificate")
			}
			if c := own(); c != nil && len(c.Certificate) > 0 && bytes.Equal(c.Certificate[0], cs.PeerCertificates[0].Raw) {
				return nil
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: cs.ServerName, Intermediates: inter})
			return err
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c := own(); c != nil {
				return c, nil
			}
			return &tls.Certificate{}, nil
		},
	}
}
