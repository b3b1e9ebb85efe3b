// Package peertlstest writes throwaway certificate authorities and peer
// certificates for tests and demos of peer TLS; an enterprise uses its own
// CA. It is kept out of peertls so that production code cannot reach it.
package peertlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/swarmship/swarmship/internal/peertls"
)

// CertSpec describes a leaf certificate for GeneratePKI.
type CertSpec struct {
	Name     string           // files <Name>.pem and <Name>.key
	Identity peertls.Identity // written as the identity URI SAN; zero: no SAN
	// ExtraURIs are added as further URI SANs (tests of malformed ones).
	ExtraURIs []string
	// NotAfter defaults to a day from now; a past time makes an expired
	// certificate.
	NotAfter time.Time
	// IPs and DNSNames are added as SANs (server certificates for HTTPS).
	IPs      []net.IP
	DNSNames []string
}

// GeneratePKI writes a throwaway CA (ca.pem, ca.key) to dir, or reuses
// the one already there, and a leaf certificate and key for each spec.
// Keys are written with mode 0600. It is for tests and demos: an
// enterprise uses its own CA.
func GeneratePKI(dir string, certs ...CertSpec) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	caCert, caKey, err := loadOrCreateCA(dir)
	if err != nil {
		return err
	}
	for _, s := range certs {
		if s.Name == "" || s.Name == "ca" || filepath.Base(s.Name) != s.Name {
			return fmt.Errorf("cert spec name %q: want a plain file name other than ca", s.Name)
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		notAfter := s.NotAfter
		if notAfter.IsZero() {
			notAfter = time.Now().Add(24 * time.Hour)
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      pkix.Name{CommonName: s.Name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     notAfter,
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		tmpl.IPAddresses, tmpl.DNSNames = s.IPs, s.DNSNames
		if s.Identity != (peertls.Identity{}) {
			tmpl.URIs = append(tmpl.URIs, s.Identity.URI())
		}
		for _, raw := range s.ExtraURIs {
			u, err := url.Parse(raw)
			if err != nil {
				return err
			}
			tmpl.URIs = append(tmpl.URIs, u)
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		if err := writePEM(filepath.Join(dir, s.Name+".pem"), "CERTIFICATE", der, 0o644); err != nil {
			return err
		}
		kb, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(filepath.Join(dir, s.Name+".key"), "PRIVATE KEY", kb, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Config is the peer TLS config (mode required) for a cert GeneratePKI
// wrote to dir.
func Config(dir, name string) peertls.Config {
	return peertls.Config{
		Mode: peertls.ModeRequired,
		CA:   filepath.Join(dir, "ca.pem"),
		Cert: filepath.Join(dir, name+".pem"),
		Key:  filepath.Join(dir, name+".key"),
	}
}

func loadOrCreateCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	if cb, err := os.ReadFile(certPath); err == nil {
		kb, err := os.ReadFile(keyPath)
		if err != nil {
			return nil, nil, err
		}
		cp, _ := pem.Decode(cb)
		kp, _ := pem.Decode(kb)
		if cp == nil || kp == nil {
			return nil, nil, fmt.Errorf("%s: unreadable test CA", dir)
		}
		c, err := x509.ParseCertificate(cp.Bytes)
		if err != nil {
			return nil, nil, err
		}
		k, err := x509.ParsePKCS8PrivateKey(kp.Bytes)
		if err != nil {
			return nil, nil, err
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, nil, errors.New("test CA key is not ECDSA")
		}
		return c, ek, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "swarmship test CA " + filepath.Base(dir)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
		return nil, nil, err
	}
	if err := writePEM(keyPath, "PRIVATE KEY", kb, 0o600); err != nil {
		return nil, nil, err
	}
	return c, key, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err)
	}
	return n
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, b, mode); err != nil {
		return err
	}
	return os.Chmod(path, mode) // WriteFile keeps the mode of an existing file
}
