package catalog_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/storetest"
)

// blindStore claims a create-only write but replaces objects anyway, as an
// S3 server that ignores If-None-Match would.
type blindStore struct{ *catalog.DirStore }

func (b blindStore) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	return b.Put(ctx, key, r, size)
}

// readOnlyish has no create-only write at all.
type readOnlyish struct{ catalog.Store }

func TestUpdateRefusesStoresWithoutCreateOnly(t *testing.T) {
	dir, err := catalog.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, keys, _ := storetest.InitCatalog(t, dir)
	for name, s := range map[string]catalog.Store{"ignores the condition": blindStore{dir}, "has none": readOnlyish{dir}} {
		_, err := catalog.Update(t.Context(), s, keys, catalog.UpdateOptions{}, func(r *catalog.Repo) error { r.RenewSignatures(); return nil })
		if !errors.Is(err, catalog.ErrNoConditionalWrite) {
			t.Errorf("%s: Update = %v; want ErrNoConditionalWrite", name, err)
		}
	}
	if _, err := catalog.Update(t.Context(), dir, keys, catalog.UpdateOptions{}, func(r *catalog.Repo) error { r.RenewSignatures(); return nil }); err != nil {
		t.Errorf("Update of the directory store: %v", err)
	}
}

// A writer that dies after its commit point leaves timestamp.json behind
// the newest snapshot: the next Update, even one with nothing to change,
// brings it forward, and a commit started from the old timestamp's view
// does not overwrite the committed change.
func TestUpdateAfterWriterDiedAfterCommitPoint(t *testing.T) {
	dir, err := catalog.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, keys, _ := storetest.InitCatalog(t, dir)
	ts := func() []byte {
		b, err := catalog.ReadAll(t.Context(), dir, "metadata/timestamp.json", 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	old := ts()
	r, err := catalog.OpenRepo(t.Context(), dir, keys, catalog.DefaultExpiry)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Resign(t.Context(), time.Now()); err != nil {
		t.Fatal(err)
	}
	// Put the old timestamp back: as if the writer died before writing it.
	if err := dir.Put(t.Context(), "metadata/timestamp.json", bytes.NewReader(old), int64(len(old))); err != nil {
		t.Fatal(err)
	}
	r2, err := catalog.OpenRepo(t.Context(), dir, keys, catalog.DefaultExpiry)
	if err != nil {
		t.Fatal(err)
	}
	if behind, err := r2.TimestampBehind(t.Context()); err != nil || !behind {
		t.Fatalf("TimestampBehind = %v, %v; want true", behind, err)
	}
	if _, err := catalog.Update(t.Context(), dir, keys, catalog.UpdateOptions{}, func(*catalog.Repo) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if behind, err := r2.TimestampBehind(t.Context()); err != nil || behind {
		t.Fatalf("after Update: TimestampBehind = %v, %v; want false", behind, err)
	}
}
