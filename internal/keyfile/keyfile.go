// Package keyfile reads and writes ed25519 private keys as PEM PKCS#8 files
// that only their owner may read (the catalog's signing keys and the token
// signing key), and reads the tenants' shared secret files.
package keyfile

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"runtime"
)

// WritePrivate writes key as PEM PKCS#8 to a new file of mode 0600,
// refusing to replace an existing file, and syncs it.
func WritePrivate(path string, key ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadPrivate reads an ed25519 key written by WritePrivate.
// A file that group or others can read is refused: a leaked signing key
// lets anyone publish to, or join, every site. A missing file wraps
// fs.ErrNotExist.
func ReadPrivate(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %v: it must be readable by its owner only (chmod 600)", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("key file %s is not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key file %s is not an ed25519 key", path)
	}
	return priv, nil
}

// ReadSecret reads a tenant secret file (the LSD and DHT secrets):
// readable by its owner only, at least 16 bytes. field names the config
// key in errors.
func ReadSecret(field, path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s %s has mode %v: it must be readable by its owner only (chmod 600 %s)", field, path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	if len(b) < 16 {
		return nil, fmt.Errorf("%s %s holds %d bytes: want at least 16 (e.g. head -c 32 /dev/urandom | base64)", field, path, len(b))
	}
	return b, nil
}
