package agent

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// CertificateStatus is a certificate in force (Status.Certificates: the
// peer_tls one, and the tls client certificate for the origin): after a
// renewal on disk it shows the new serial once the files were reread.
type CertificateStatus struct {
	Use      string    `json:"use"` // peer_tls, or tls (client certificate for the origin)
	Subject  string    `json:"subject"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"not_after"`
}

func (a *Agent) certificateStatus() []CertificateStatus {
	var out []CertificateStatus
	add := func(use string, c *x509.Certificate) {
		if c != nil {
			out = append(out, CertificateStatus{Use: use, Subject: c.Subject.String(), Serial: c.SerialNumber.String(), NotAfter: c.NotAfter})
		}
	}
	add("peer_tls", a.peerCert.Leaf())
	if a.originCert != nil {
		add("tls", a.originCert.Current().Leaf)
	}
	return out
}

// ReloadCertificates rereads the peer TLS CA, certificate and key and the
// client certificate for the origin now (SIGHUP). They are also reread
// when their files change, looked at on new connections at most every few
// seconds. A set that does not load leaves the one in force and is
// returned (and logged). Open connections keep their certificate; idle
// connections to the origin are closed so that the next request presents
// the new client certificate.
func (a *Agent) ReloadCertificates() error {
	var errs []error
	if err := a.peerCert.Reload(); err != nil {
		errs = append(errs, fmt.Errorf("peer_tls: %w", err))
	}
	if a.originCert != nil {
		if err := a.originCert.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("tls: %w", err))
		} else if a.originHTTP != nil {
			a.originHTTP.CloseIdleConnections()
		}
	}
	return errors.Join(errs...)
}
