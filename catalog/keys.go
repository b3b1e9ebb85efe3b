package catalog

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Roles are the TUF top-level roles, in the order keys are generated.
var Roles = []string{"root", "targets", "snapshot", "timestamp"}

// Keys are the catalog's private signing keys, one ed25519 key per role.
// A role's key may be nil when the caller loaded only the roles it needs.
type Keys map[string]ed25519.PrivateKey

// ErrKeysExist is returned when GenerateKeys would overwrite a key.
var ErrKeysExist = errors.New("keys already exist")

func keyFile(dir, role string) string { return filepath.Join(dir, role+".key") }

// GenerateKeys creates a fresh key per role in dir (created 0700), each
// file written 0600. It refuses to overwrite any existing key file.
func GenerateKeys(dir string) (Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create keys directory: %w", err)
	}
	for _, role := range Roles {
		if _, err := os.Lstat(keyFile(dir, role)); err == nil {
			return nil, fmt.Errorf("%w: %s (remove it first if you really mean to replace the catalog's keys)", ErrKeysExist, keyFile(dir, role))
		}
	}
	keys := Keys{}
	for _, role := range Roles {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		if err := WritePrivateKeyFile(keyFile(dir, role), priv); err != nil {
			return nil, fmt.Errorf("write %s key: %w", role, err)
		}
		keys[role] = priv
	}
	return keys, nil
}

// LoadKeys reads the keys of the given roles from dir. A key file that
// group or others can read is refused: a leaked targets key lets anyone
// publish to every site.
func LoadKeys(dir string, roles ...string) (Keys, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("keys directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("keys directory %s is not a directory", dir)
	}
	keys := Keys{}
	for _, role := range roles {
		name := keyFile(dir, role)
		priv, err := ReadPrivateKeyFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("keys directory %s has no %s key (%s): is it the right directory?", dir, role, filepath.Base(name))
		}
		if err != nil {
			return nil, err
		}
		keys[role] = priv
	}
	return keys, nil
}

// WritePrivateKeyFile writes key as PEM PKCS#8 to a new file of mode 0600,
// refusing to replace an existing file, and syncs it.
func WritePrivateKeyFile(path string, key ed25519.PrivateKey) error {
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

// ReadPrivateKeyFile reads an ed25519 key written by WritePrivateKeyFile.
// A file that group or others can read is refused: a leaked signing key
// lets anyone publish to, or join, every site. A missing file wraps
// fs.ErrNotExist.
func ReadPrivateKeyFile(path string) (ed25519.PrivateKey, error) {
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
