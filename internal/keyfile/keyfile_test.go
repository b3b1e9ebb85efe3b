package keyfile

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteReadPrivate(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "k.key")
	if err := WritePrivate(path, priv); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPrivate(path)
	if err != nil || !got.Equal(priv) {
		t.Fatalf("ReadPrivate = %v, %v; want the written key", got, err)
	}
	if err := WritePrivate(path, priv); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second WritePrivate = %v, want it to refuse an existing file", err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPrivate(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("ReadPrivate of a group-readable file = %v, want a refusal naming chmod 600", err)
	}
	if _, err := ReadPrivate(filepath.Join(t.TempDir(), "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadPrivate of a missing file = %v, want fs.ErrNotExist", err)
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, size int, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, make([]byte, size), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if b, err := ReadSecret("x", write("good", 32, 0o600)); err != nil || len(b) != 32 {
		t.Errorf("good secret: %d bytes, %v", len(b), err)
	}
	if _, err := ReadSecret("x", write("open", 32, 0o644)); err == nil || !strings.Contains(err.Error(), "readable by its owner only") {
		t.Errorf("group-readable secret: %v", err)
	}
	if _, err := ReadSecret("x", write("short", 8, 0o600)); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Errorf("short secret: %v", err)
	}
	if _, err := ReadSecret("swarm.dht_secret_file", filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "swarm.dht_secret_file") {
		t.Errorf("missing secret: %v", err)
	}
}
