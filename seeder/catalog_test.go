package seeder_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
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
