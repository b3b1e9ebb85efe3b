package publish_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/catalog/storetest"
	"github.com/swarmship/swarmship/internal/deltapair"
)

// countingStore counts the bytes written through it; copies pass through
// to the real store's server-side copy.
type countingStore struct {
	catalog.Store
	written, copies atomic.Int64
}

func (c *countingStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	c.written.Add(size)
	return c.Store.Put(ctx, key, r, size)
}

func (c *countingStore) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	c.written.Add(size)
	return catalog.PutIfAbsent(ctx, c.Store, key, r, size)
}

// Compose passes through to the real store's Composer, counting the
// bytes that come from readers.
func (c *countingStore) Compose(ctx context.Context, dst string, parts []catalog.Part) error {
	for _, p := range parts {
		if p.R != nil {
			c.written.Add(p.Len)
		}
	}
	return c.Store.(catalog.Composer).Compose(ctx, dst, parts)
}

func (c *countingStore) MinPartSize() int64 { return c.Store.(catalog.Composer).MinPartSize() }

func (c *countingStore) Copy(ctx context.Context, src, dst string) error {
	c.copies.Add(1)
	return c.Store.(catalog.Copier).Copy(ctx, src, dst)
}

// TestPublishReusesUnchangedFiles: v2 of a realistic pair uploads only the
// files that are not in v1 (at most 1.1 times their bytes, signed metadata
// included) and copies the others server-side, on a directory and on S3; the
// release verifies, and republishing it uploads nothing.
func TestPublishReusesUnchangedFiles(t *testing.T) {
	gw := storetest.Gateway(t)
	pair, err := deltapair.Generate(t.TempDir(), deltapair.Spec{Size: 6 << 20, Files: 40})
	if err != nil {
		t.Fatal(err)
	}
	storetest.EachStore(t, gw, func(t *testing.T, s catalog.Store) {
		c := newPubCatalog(t, s)
		cs := &countingStore{Store: s}
		r1, err := publish.Publish(t.Context(), cs, c.keys, publish.PublishOptions{Name: "app", Version: "1.0", Paths: []string{pair.V1}})
		if err != nil {
			t.Fatal(err)
		}
		if r1.UploadedBytes != pair.V1Size || r1.ReusedBytes != 0 {
			t.Errorf("v1: uploaded %d, reused %d; want %d, 0", r1.UploadedBytes, r1.ReusedBytes, pair.V1Size)
		}
		cs.written.Store(0)
		r2, err := publish.Publish(t.Context(), cs, c.keys, publish.PublishOptions{Name: "app", Version: "2.0", Paths: []string{pair.V2}, Channels: []string{"stable"}})
		if err != nil {
			t.Fatal(err)
		}
		if r2.UploadedBytes != pair.ChangedFileBytes || r2.ReusedBytes != pair.V2Size-pair.ChangedFileBytes || r2.ReusedFiles != pair.V2Files-14 {
			t.Errorf("v2: uploaded %d, reused %d in %d files; want %d, %d in %d", r2.UploadedBytes, r2.ReusedBytes, r2.ReusedFiles,
				pair.ChangedFileBytes, pair.V2Size-pair.ChangedFileBytes, pair.V2Files-14)
		}
		written := cs.written.Load()
		t.Logf("v2: %d bytes written to the store for %d bytes of changed files (%.3fx; %d changed bytes)", written, pair.ChangedFileBytes,
			float64(written)/float64(pair.ChangedFileBytes), pair.ChangedBytes)
		if float64(written) > 1.1*float64(pair.ChangedFileBytes) {
			t.Errorf("v2 wrote %d bytes to the store; want at most 1.1 x %d", written, pair.ChangedFileBytes)
		}
		cl := c.client(t)
		if probs := publish.VerifyRelease(t.Context(), cl, "app", "2.0"); len(probs) > 0 {
			t.Errorf("v2 does not verify: %+v", probs)
		}
		// v1 is untouched by the copies of its files.
		if probs := publish.VerifyRelease(t.Context(), cl, "app", "1.0"); len(probs) > 0 {
			t.Errorf("v1 does not verify: %+v", probs)
		}
		// Publishing v2 again finds everything in place.
		r3, err := publish.Publish(t.Context(), cs, c.keys, publish.PublishOptions{Name: "app", Version: "2.0", Paths: []string{pair.V2}, VerifyReused: true})
		if err != nil {
			t.Fatal(err)
		}
		if !r3.AlreadyPublished || r3.UploadedBytes != 0 {
			t.Errorf("republish: %+v", r3)
		}
		// Without reuse every byte goes up.
		r4, err := publish.Publish(t.Context(), cs, c.keys, publish.PublishOptions{Name: "app", Version: "3.0", Paths: []string{pair.V2}, NoReuse: true})
		if err != nil {
			t.Fatal(err)
		}
		if r4.UploadedBytes != pair.V2Size || r4.ReusedBytes != 0 {
			t.Errorf("--no-reuse: uploaded %d, reused %d; want %d, 0", r4.UploadedBytes, r4.ReusedBytes, pair.V2Size)
		}
	})
}

// copyFailingStore fails every server-side copy into staging/.
type copyFailingStore struct {
	countingStore
	failed atomic.Int64
}

func (c *copyFailingStore) Copy(ctx context.Context, src, dst string) error {
	if strings.HasPrefix(dst, catalog.StagingPrefix) {
		c.failed.Add(1)
		return errors.New("injected copy failure")
	}
	return c.countingStore.Copy(ctx, src, dst)
}

// TestPublishReuseFallsBackToUpload: when the server-side copy fails, the
// file is uploaded and the release is complete and correct.
func TestPublishReuseFallsBackToUpload(t *testing.T) {
	gw := storetest.Gateway(t)
	storetest.EachStore(t, gw, func(t *testing.T, s catalog.Store) {
		c := newPubCatalog(t, s)
		v1 := storetest.WritePayload(t, map[string]string{"bin/app": "same bytes", "README": "one"})
		v2 := storetest.WritePayload(t, map[string]string{"bin/app": "same bytes", "README": "two"})
		c.publish(t, publish.PublishOptions{Name: "app", Version: "1.0", Paths: []string{v1}})
		fs := &copyFailingStore{countingStore: countingStore{Store: s}}
		res, err := publish.Publish(t.Context(), fs, c.keys, publish.PublishOptions{Name: "app", Version: "2.0", Paths: []string{v2}})
		if err != nil {
			t.Fatal(err)
		}
		if fs.failed.Load() != 1 || res.ReusedFiles != 0 || res.UploadedBytes != int64(len("same bytes")+len("two")) {
			t.Errorf("%d copies failed; result %+v; want 1, nothing reused, everything uploaded", fs.failed.Load(), res)
		}
		if probs := publish.VerifyRelease(t.Context(), c.client(t), "app", "2.0"); len(probs) > 0 {
			t.Errorf("v2 does not verify: %+v", probs)
		}
	})
}

// TestPublishComposesFromHints: with delta hints against the base, a
// changed file is built in the store from the base's objects plus the bytes
// the hints do not cover; on a directory only the changed bytes go up.
func TestPublishComposesFromHints(t *testing.T) {
	gw := storetest.Gateway(t)
	pair, err := deltapair.Generate(t.TempDir(), deltapair.Spec{Size: 6 << 20, Files: 40})
	if err != nil {
		t.Fatal(err)
	}
	storetest.EachStore(t, gw, func(t *testing.T, s catalog.Store) {
		c := newPubCatalog(t, s)
		c.publish(t, publish.PublishOptions{Name: "app", Version: "1.0", Paths: []string{pair.V1}})
		cs := &countingStore{Store: s}
		// With delta hints against 1.0 (publish --base), changed files are
		// built from 1.0's objects plus the bytes the hints do not cover.
		res, err := publish.Publish(t.Context(), cs, c.keys, publish.PublishOptions{Name: "app", Version: "2.0", Paths: []string{pair.V2}, Base: "1.0"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Delta == nil || res.Delta.Base != "1.0" {
			t.Fatalf("no hints against 1.0: %+v", res.Delta)
		}
		written := cs.written.Load()
		t.Logf("v2.0 with hints: %d bytes written to the store for %d changed bytes (%.3fx); %d composed, %d copied whole", written, pair.ChangedBytes,
			float64(written)/float64(pair.ChangedBytes), res.ComposedFiles, res.ReusedFiles)
		if res.UploadedBytes+res.ReusedBytes != pair.V2Size || res.ReusedFiles != pair.V2Files-14 {
			t.Errorf("v2.0: %+v", res)
		}
		if _, isDir := s.(*catalog.DirStore); isDir {
			// A directory takes parts of any size: only the changed bytes go.
			if res.UploadedBytes != res.Delta.NewBytes || res.ComposedFiles != 4 {
				t.Errorf("v2.0 on a directory: uploaded %d in %d composed files; want the %d bytes the hints leave (%d changed) in 4", res.UploadedBytes, res.ComposedFiles, res.Delta.NewBytes, pair.ChangedBytes)
			}
			if float64(written) > 1.1*float64(pair.ChangedBytes) {
				t.Errorf("v2.0 wrote %d bytes to the store; want at most 1.1 x %d", written, pair.ChangedBytes)
			}
		} else if res.UploadedBytes > pair.ChangedFileBytes {
			// S3 parts are 5 MiB or more: files this small mostly go whole.
			t.Errorf("v2.0 on S3 uploaded %d bytes; want at most the %d of the changed files", res.UploadedBytes, pair.ChangedFileBytes)
		}
		if probs := publish.VerifyRelease(t.Context(), c.client(t), "app", "2.0"); len(probs) > 0 {
			t.Errorf("v2.0 does not verify: %+v", probs)
		}

	})
}

// TestPublishComposesLargeFile: 100 bytes changed in the middle of an
// 11 MiB file go up alone to a directory and as one 5 MiB part (S3's
// minimum) to S3; the rest is copied from the base in the store.
func TestPublishComposesLargeFile(t *testing.T) {
	gw := storetest.Gateway(t)
	const size, at, n = 11 << 20, 11 << 19, 100
	old := make([]byte, size)
	for i := range old {
		old[i] = byte(i*31 + i>>9)
	}
	changed := bytes.Clone(old)
	copy(changed[at:], bytes.Repeat([]byte{'x'}, n))
	v1 := t.TempDir()
	v2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(v1, "image.bin"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v2, "image.bin"), changed, 0o644); err != nil {
		t.Fatal(err)
	}
	storetest.EachStore(t, gw, func(t *testing.T, s catalog.Store) {
		c := newPubCatalog(t, s)
		c.publish(t, publish.PublishOptions{Name: "img", Version: "1", Paths: []string{v1}})
		res := c.publish(t, publish.PublishOptions{Name: "img", Version: "2", Paths: []string{v2}, Base: "1"})
		want := int64(n)
		if s.(catalog.Composer).MinPartSize() > 1 {
			want = s.(catalog.Composer).MinPartSize()
		}
		if res.ComposedFiles != 1 || res.UploadedBytes != want || res.ReusedBytes != size-want {
			t.Errorf("result %+v; want 1 composed file, %d bytes uploaded", res, want)
		}
		if probs := publish.VerifyRelease(t.Context(), c.client(t), "img", "2"); len(probs) > 0 {
			t.Errorf("v2 does not verify: %+v", probs)
		}
	})
}
