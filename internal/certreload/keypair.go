package certreload

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"runtime"
)

// Pair is a certificate (with any intermediates) and its private key.
type Pair struct{ tls.Certificate }

// Describe names the certificate in reload logs.
func (p *Pair) Describe() []any {
	if p.Leaf == nil {
		return nil
	}
	return []any{"subject", p.Leaf.Subject.String(), "serial", p.Leaf.SerialNumber.String(), "not_after", p.Leaf.NotAfter}
}

// OpenKeyPair loads a PEM certificate and key (the key readable by its
// owner only) and keeps them current (see Files).
func OpenKeyPair(what, certFile, keyFile string, log *slog.Logger) (*Files[*Pair], error) {
	return Open(what, []string{certFile, keyFile}, func() (*Pair, error) {
		if err := CheckKeyMode(keyFile); err != nil {
			return nil, err
		}
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		return &Pair{c}, nil
	}, log)
}

// CheckKeyMode refuses a private key file that others than its owner may
// read, naming the fix.
func CheckKeyMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("key: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("key file %s has mode %v: it must be readable by its owner only (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	return nil
}
