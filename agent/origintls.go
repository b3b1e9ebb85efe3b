package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/swarmship/swarmship/internal/certreload"
	"github.com/swarmship/swarmship/internal/fielderr"
)

// OriginTLSConfig is how the agent checks the origin's HTTPS certificate
// (catalog, tracker announces, swarm views, reports, origin offload). It
// applies to https URLs only; without it those are verified against the
// system roots.
type OriginTLSConfig struct {
	// CA (PEM) replaces the system roots: only certificates chaining to
	// it are accepted. A private CA is the usual case; note that S3
	// presigned redirects then need a certificate from it too, or
	// SystemRoots.
	CA string `yaml:"ca"`
	// SystemRoots adds the system roots to CA (for a public S3 endpoint
	// behind the origin's redirects).
	SystemRoots bool `yaml:"system_roots"`
	// Cert and Key (PEM, key mode 0600) are the client certificate for an
	// origin with client_ca set.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

func (c OriginTLSConfig) validate() error {
	if (c.Cert == "") != (c.Key == "") {
		return fielderr.New("cert", "cert and key go together")
	}
	return nil
}

// clientConfig builds the TLS config for requests to the origin. The
// client certificate follows its files (internal/certreload): new
// connections present a renewed one without a restart; cert is nil
// without one.
func (c OriginTLSConfig) clientConfig(log *slog.Logger) (tc *tls.Config, cert *certreload.Files[*certreload.Pair], err error) {
	tc = &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CA != "" {
		b, err := os.ReadFile(c.CA)
		if err != nil {
			return nil, nil, fmt.Errorf("tls.ca: %w", err)
		}
		pool := x509.NewCertPool()
		if c.SystemRoots {
			if sys, err := x509.SystemCertPool(); err == nil {
				pool = sys
			}
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, nil, fmt.Errorf("tls.ca: %s holds no PEM certificate", c.CA)
		}
		tc.RootCAs = pool
	}
	if (c.Cert == "") != (c.Key == "") {
		return nil, nil, fmt.Errorf("tls: cert and key go together")
	}
	if c.Cert != "" {
		if cert, err = certreload.OpenKeyPair("origin client certificate", c.Cert, c.Key, log); err != nil {
			return nil, nil, fmt.Errorf("tls: %w", err)
		}
		tc.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c := &cert.Current().Certificate
			if cri.SupportsCertificate(c) != nil {
				// As with Certificates: none rather than one the origin
				// says it does not accept.
				return &tls.Certificate{}, nil
			}
			return c, nil
		}
	}
	return tc, cert, nil
}

// originTransport is the HTTP transport for every request to the origin.
func originTransport(tc *tls.Config) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = tc
	t.TLSHandshakeTimeout = 10 * time.Second
	return t
}

// tlsHint says what to do when the origin's certificate did not verify.
// The TUF updater does not always keep the error chain, hence the text
// match as well.
func tlsHint(err error) error {
	var verr *tls.CertificateVerificationError
	if err == nil || !(errors.As(err, &verr) || strings.Contains(err.Error(), "x509: ")) {
		return err
	}
	return fmt.Errorf("%w (the origin's HTTPS certificate did not verify: tls.ca in agent.yaml must name the CA that signed it)", err)
}
