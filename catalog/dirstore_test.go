package catalog_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/storetest"
)

func newDirStore(t *testing.T) *catalog.DirStore {
	t.Helper()
	s, err := catalog.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDirStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) catalog.Store { return newDirStore(t) })
}

func TestNewDirStoreErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	if _, err := catalog.NewDirStore(missing); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("NewDirStore(missing) = %v; want a 'does not exist' error", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.NewDirStore(file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("NewDirStore(file) = %v; want a 'not a directory' error", err)
	}
	if _, err := catalog.NewDirStore(""); err == nil {
		t.Error("NewDirStore(\"\") succeeded")
	}
}

func TestDirStoreLayout(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	s := newDirStore(t)
	ctx := t.Context()
	if !filepath.IsAbs(s.Root()) {
		t.Errorf("Root() = %q, not absolute", s.Root())
	}
	data := []byte("payload")
	if err := s.Put(ctx, "data/app/1.0/bin/app", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(s.Root(), "data", "app", "1.0", "bin", "app")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("file mode %v, want 0644", fi.Mode().Perm())
	}
	di, err := os.Stat(filepath.Dir(p))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o755 {
		t.Errorf("dir mode %v, want 0755", di.Mode().Perm())
	}
	if got := s.String(); got != "file://"+filepath.ToSlash(s.Root()) {
		t.Errorf("String() = %q", got)
	}
}

func TestDirStoreSkipsTempFiles(t *testing.T) {
	s := newDirStore(t)
	ctx := t.Context()
	if err := s.Put(ctx, "a/b", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	// A crashed Put leaves a temporary file behind.
	if err := os.WriteFile(filepath.Join(s.Root(), "a", ".swarmship-tmp-123"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Key != "a/b" {
		t.Errorf("List = %+v; want only a/b", list)
	}
	if err := s.Put(ctx, "a/.swarmship-tmp-123", strings.NewReader("x"), 1); err == nil {
		t.Error("Put of a key with the temporary-file prefix succeeded")
	}
	if _, err := s.Get(ctx, "a/.swarmship-tmp-123"); err == nil {
		t.Error("Get of a key with the temporary-file prefix succeeded")
	}
}

func TestDirStoreSymlinks(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newDirStore(t)
	ctx := t.Context()
	root := s.Root()
	if err := os.Symlink(outside, filepath.Join(root, "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "secretlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "in", "f"), []byte("inside"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("in", filepath.Join(root, "inlink")); err != nil {
		t.Fatal(err)
	}

	for _, key := range []string{"out/secret", "secretlink"} {
		if rc, err := s.Get(ctx, key); err == nil {
			rc.Close()
			t.Errorf("Get(%q) through a symlink out of the root succeeded", key)
		}
		if _, err := s.Stat(ctx, key); err == nil {
			t.Errorf("Stat(%q) through a symlink out of the root succeeded", key)
		}
	}
	if err := s.Put(ctx, "out/new", strings.NewReader("x"), 1); err == nil {
		t.Error("Put through a symlink out of the root succeeded")
	}
	if err := s.Put(ctx, "out/sub/new", strings.NewReader("x"), 1); err == nil {
		t.Error("Put (with mkdir) through a symlink out of the root succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "new")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file appeared outside the root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "sub")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a directory appeared outside the root: %v", err)
	}
	if err := s.Delete(ctx, "out/secret"); err == nil {
		t.Error("Delete through a symlink out of the root succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Errorf("file outside the root: %v", err)
	}

	// Links that stay inside are followed.
	fi, err := s.Stat(ctx, "inlink/f")
	if err != nil || fi.Size != int64(len("inside")) {
		t.Errorf("Stat(inlink/f) = %+v, %v; want 6 bytes", fi, err)
	}

	list, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, oi := range list {
		if oi.Key != "in/f" {
			t.Errorf("List returned %q", oi.Key)
		}
	}
}

func TestDirStoreRootIsSymlink(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "catalog")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	s, err := catalog.NewDirStore(link)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "k", strings.NewReader("v"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(real, "k")); err != nil {
		t.Errorf("object not in the real directory: %v", err)
	}
}
