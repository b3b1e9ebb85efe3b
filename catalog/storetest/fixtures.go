package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/testenv"
)

// Gateway starts versitygw for the calling test, or returns nil if it is
// not installed (the S3 subtests of EachStore then skip, or fail in CI).
func Gateway(t *testing.T) *testenv.VersityGW {
	if testenv.FindTool("versitygw") == "" {
		return nil
	}
	return testenv.StartVersityGW(t)
}

// The helpers below serve tests of code above the Store interface.

// EachStore runs fn against a fresh directory store and a fresh S3 store
// (a new bucket on gw, under a prefix), for tests of code above the Store
// interface that must hold on both.
func EachStore(t *testing.T, gw *testenv.VersityGW, fn func(t *testing.T, s catalog.Store)) {
	t.Run("dir", func(t *testing.T) {
		s, err := catalog.NewDirStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		fn(t, s)
	})
	t.Run("s3", func(t *testing.T) {
		if gw == nil {
			testenv.RequireTool(t, "versitygw")
		}
		s, err := catalog.NewS3Store(t.Context(), catalog.S3Config{
			Endpoint:  gw.Endpoint,
			Bucket:    gw.NewBucket(t),
			Prefix:    "catalogs/test",
			AccessKey: gw.AccessKey,
			SecretKey: gw.SecretKey,
		})
		if err != nil {
			t.Fatal(err)
		}
		fn(t, s)
	})
}

// InitCatalog initializes a catalog in s with fresh keys in a temporary
// directory, and returns that directory, the keys and the root.json to pin.
func InitCatalog(t *testing.T, s catalog.Store) (keysDir string, keys catalog.Keys, root []byte) {
	t.Helper()
	keysDir = filepath.Join(t.TempDir(), "keys")
	keys, err := catalog.GenerateKeys(keysDir)
	if err != nil {
		t.Fatal(err)
	}
	root, err = catalog.Init(t.Context(), s, keys, catalog.DefaultExpiry, time.Now())
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return keysDir, keys, root
}

// Client returns a client of the catalog in s pinned to root, with its
// state in stateDir, refreshed.
func Client(t *testing.T, s catalog.Store, root []byte, stateDir string) *catalog.Client {
	t.Helper()
	cl, err := catalog.NewClient(s, root, stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Refresh(t.Context()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	return cl
}

// WritePayload writes files (release path → content) into a new directory,
// ready to publish, and returns the directory.
func WritePayload(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Contents returns every object of s, key → hex SHA-256 of its bytes, to
// compare a store before and after an operation.
func Contents(t *testing.T, s catalog.Store) map[string]string {
	t.Helper()
	list, err := s.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string, len(list))
	for _, o := range list {
		b, err := catalog.ReadAll(t.Context(), s, o.Key, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		out[o.Key] = hex.EncodeToString(sum[:])
	}
	return out
}
