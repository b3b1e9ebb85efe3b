package catalog

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/swarmship/swarmship/internal/keyfile"
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
		if err := keyfile.WritePrivate(keyFile(dir, role), priv); err != nil {
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
		priv, err := keyfile.ReadPrivate(name)
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
