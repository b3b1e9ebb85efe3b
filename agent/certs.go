package agent

import (
	"errors"
	"fmt"
)

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
