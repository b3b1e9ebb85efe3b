package storetest

import (
	"testing"

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
