package seeder_test

import (
	"crypto/ed25519"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/token"
)

// newTestCatalog creates an empty signed catalog in dir/catalog with its
// keys in dir/keys, and returns the store, the keys and the root.json to pin.
func newTestCatalog(t *testing.T, dir string) (*catalog.DirStore, catalog.Keys, []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "catalog"), 0o755); err != nil {
		t.Fatal(err)
	}
	store, err := catalog.NewDirStore(filepath.Join(dir, "catalog"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := catalog.GenerateKeys(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := catalog.Init(t.Context(), store, keys, catalog.DefaultExpiry, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return store, keys, root
}

// newTokenKey creates the token signing key in dir and returns it.
func newTokenKey(t *testing.T, dir string) ed25519.PrivateKey {
	t.Helper()
	if err := token.GenerateKey(dir); err != nil {
		t.Fatal(err)
	}
	key, err := token.LoadPrivateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// do sends req and returns the response with its body read.
func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}
