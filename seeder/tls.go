package seeder

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
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
// changes (checked at most once a second), so a renewal needs no restart;
// a renewal that does not load keeps the old pair and is logged by the
// handshake error.
func (c TLSConfig) ServerConfig() (*tls.Config, error) {
	if c.Cert == "" || c.Key == "" {
		return nil, errors.New("tls: cert and key are both required")
	}
	r := &certReloader{cert: c.Cert, key: c.Key}
	if err := r.load(); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.get}
	switch c.ClientAuth {
	case "", "optional":
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	case "required":
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		return nil, fmt.Errorf("tls: client_auth %q: want optional or required", c.ClientAuth)
	}
	if c.ClientCA == "" {
		if c.ClientAuth != "" {
			return nil, errors.New("tls: client_auth needs client_ca")
		}
		tc.ClientAuth = tls.NoClientCert
		return tc, nil
	}
	b, err := os.ReadFile(c.ClientCA)
	if err != nil {
		return nil, fmt.Errorf("tls: client_ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("tls: client_ca %s holds no PEM certificate", c.ClientCA)
	}
	tc.ClientCAs = pool
	return tc, nil
}

// certReloader serves the current certificate, re-reading it when its
// files change.
type certReloader struct {
	cert, key string

	mu      sync.Mutex
	current *tls.Certificate
	stamp   []byte // sizes and modification times of both files
	checked time.Time
}

func (r *certReloader) fileStamp() ([]byte, error) {
	var b bytes.Buffer
	for _, p := range []string{r.cert, r.key} {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return b.Bytes(), nil
}

func (r *certReloader) load() error {
	fi, err := os.Stat(r.key)
	if err != nil {
		return fmt.Errorf("key: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("key file %s has mode %v: it must be readable by its owner only (chmod 600 %s)", r.key, fi.Mode().Perm(), r.key)
	}
	stamp, err := r.fileStamp()
	if err != nil {
		return err
	}
	pair, err := tls.LoadX509KeyPair(r.cert, r.key)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.current, r.stamp, r.checked = &pair, stamp, time.Now()
	r.mu.Unlock()
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	due := time.Since(r.checked) >= time.Second
	if due {
		r.checked = time.Now()
	}
	cur, stamp := r.current, r.stamp
	r.mu.Unlock()
	if due {
		if s, err := r.fileStamp(); err == nil && !bytes.Equal(s, stamp) {
			if err := r.load(); err != nil {
				// Keep serving the old pair: a half-written renewal must
				// not take the origin down.
				return cur, nil
			}
			r.mu.Lock()
			cur = r.current
			r.mu.Unlock()
		}
	}
	return cur, nil
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
