package publish_test

// Publish must refuse bad input with a clear error before writing anything,
// never change a published release, and leave the previous catalog intact
// when it fails part way. Cases that touch a store run against a directory
// store and an S3 store (versitygw).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/catalog/storetest"
	"github.com/swarmship/swarmship/internal/testenv"
)

func pubS3Config(gw *testenv.VersityGW, bucket string) catalog.S3Config {
	return catalog.S3Config{
		Endpoint: gw.Endpoint, Bucket: bucket, Prefix: "cat",
		AccessKey: gw.AccessKey, SecretKey: gw.SecretKey,
	}
}

type pubCatalog struct {
	store catalog.Store
	keys  catalog.Keys
	root  []byte
}

func newPubCatalog(t *testing.T, s catalog.Store) *pubCatalog {
	t.Helper()
	_, keys, root := storetest.InitCatalog(t, s)
	return &pubCatalog{store: s, keys: keys, root: root}
}

// client returns a client of the catalog refreshed with a fresh state.
func (c *pubCatalog) client(t *testing.T) *catalog.Client {
	t.Helper()
	return storetest.Client(t, c.store, c.root, t.TempDir())
}

func (c *pubCatalog) publish(t *testing.T, opts publish.PublishOptions) *publish.PublishResult {
	t.Helper()
	res, err := publish.Publish(t.Context(), c.store, c.keys, opts)
	if err != nil {
		t.Fatalf("publish %s@%s: %v", opts.Name, opts.Version, err)
	}
	return res
}

func sameContents(t *testing.T, s catalog.Store, before map[string]string) {
	t.Helper()
	if after := storetest.Contents(t, s); !maps.Equal(before, after) {
		var added, changed, removed []string
		for k, v := range after {
			if old, ok := before[k]; !ok {
				added = append(added, k)
			} else if old != v {
				changed = append(changed, k)
			}
		}
		for k := range before {
			if _, ok := after[k]; !ok {
				removed = append(removed, k)
			}
		}
		t.Errorf("store changed: added %v, changed %v, removed %v", added, changed, removed)
	}
}

func wantErrContains(t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded; want an error containing %q", what, want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("%s error = %q; want it to contain %q", what, err, want)
	}
}

func releaseNames(t *testing.T, cl *catalog.Client) []string {
	t.Helper()
	rels, err := cl.Releases()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rels {
		out = append(out, r.String())
	}
	return out
}

func TestPublishRefusesBadInput(t *testing.T) {
	gw := storetest.Gateway(t)
	type env struct {
		c    *pubCatalog
		good string // a directory with a valid payload
		tmp  string // a scratch directory for the case
	}
	opts := func(name, version string, paths ...string) publish.PublishOptions {
		return publish.PublishOptions{Name: name, Version: version, Paths: paths}
	}
	mkfifo := func(t *testing.T, p string) {
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
	}
	symlink := func(t *testing.T, target, link string) {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		skipRoot bool // root reads any file, so permission cases do not fail
		setup    func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions)
		want     string
		wantIs   error
	}{
		{name: "no paths", want: "no files or directories given to publish",
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				return e.c.keys, opts("app", "2.0")
			}},
		{name: "empty path", want: "empty path given to publish",
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				return e.c.keys, opts("app", "2.0", e.good, "")
			}},
		{name: "nonexistent path", want: "no such file or directory",
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				return e.c.keys, opts("app", "2.0", e.good, filepath.Join(e.tmp, "missing"))
			}},
		// We run as root, where chmod 000 does not stop a read; a FIFO or a
		// device is refused as a non-regular file for every user (and is
		// never opened, which would block on a FIFO).
		{name: "fifo given as a file", want: "not a regular file",
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				p := filepath.Join(e.tmp, "fifo")
				mkfifo(t, p)
				return e.c.keys, opts("app", "2.0", p)
			}},
		{name: "fifo inside a directory", want: "not a regular file",
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				if err := os.WriteFile(filepath.Join(e.tmp, "ok"), []byte("ok"), 0o644); err != nil {
					t.Fatal(err)
				}
				mkfifo(t, filepath.Join(e.tmp, "pipe"))
				return e.c.keys, opts("app", "2.0", e.tmp)
			}},
		{name: "device node", want: "not a regular file",
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				return e.c.keys, opts("app", "2.0", "/dev/null")
			}},
		{name: "unreadable file", skipRoot: true, want: "permission denied",
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				p := filepath.Join(e.tmp, "secret")
				if err := os.WriteFile(p, []byte("x"), 0o000); err != nil {
					t.Fatal(err)
				}
				return e.c.keys, opts("app", "2.0", p)
			}},
		{name: "symlink loop", want: "symlink loop",
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				p := filepath.Join(e.tmp, "loop")
				symlink(t, "loop", p)
				return e.c.keys, opts("app", "2.0", p)
			}},
		{name: "symlink loop inside a directory", want: "symlink loop",
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				if err := os.WriteFile(filepath.Join(e.tmp, "ok"), []byte("ok"), 0o644); err != nil {
					t.Fatal(err)
				}
				symlink(t, "b", filepath.Join(e.tmp, "a"))
				symlink(t, "a", filepath.Join(e.tmp, "b"))
				return e.c.keys, opts("app", "2.0", e.tmp)
			}},
		{name: "symlink to a file", want: "is a symlink",
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				if err := os.WriteFile(filepath.Join(e.tmp, "real"), []byte("ok"), 0o644); err != nil {
					t.Fatal(err)
				}
				symlink(t, "real", filepath.Join(e.tmp, "link"))
				return e.c.keys, opts("app", "2.0", e.tmp)
			}},
		{name: "empty directory", want: "directory contains no files",
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				return e.c.keys, opts("app", "2.0", e.tmp)
			}},
		{name: "file name with a control character", want: "control character",
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				if err := os.WriteFile(filepath.Join(e.tmp, "bad\x1bname"), []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
				return e.c.keys, opts("app", "2.0", e.tmp)
			}},
		{name: "file name with a backslash", want: "slash or backslash",
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				if err := os.WriteFile(filepath.Join(e.tmp, `..\evil`), []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
				return e.c.keys, opts("app", "2.0", e.tmp)
			}},
		{name: "same path from two arguments", want: `duplicate path "bin"`,
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				a, b := filepath.Join(e.tmp, "a", "bin"), filepath.Join(e.tmp, "b", "bin")
				for _, p := range []string{a, b} {
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				return e.c.keys, opts("app", "2.0", a, b)
			}},
		{name: "name with a slash", want: `name "a/b" contains '/'`,
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				return e.c.keys, opts("a/b", "2.0", e.good)
			}},
		{name: "name ..", want: `name ".." must not start with '.'`,
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				return e.c.keys, opts("..", "2.0", e.good)
			}},
		{name: "name with a leading dot", want: `name ".app" must not start with '.'`,
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				return e.c.keys, opts(".app", "2.0", e.good)
			}},
		{name: "name with a leading dash", want: `must not start with '.' or '-'`,
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				return e.c.keys, opts("-rf", "2.0", e.good)
			}},
		{name: "name with a newline", want: `contains '\n'`,
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				return e.c.keys, opts("app\nx", "2.0", e.good)
			}},
		{name: "empty name", want: "name is empty",
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				return e.c.keys, opts("", "2.0", e.good)
			}},
		{name: "version with a slash", want: `version "2/0" contains '/'`,
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				return e.c.keys, opts("app", "2/0", e.good)
			}},
		{name: "version ..", want: `version ".." must not start with '.'`,
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				return e.c.keys, opts("app", "..", e.good)
			}},
		{name: "version with a leading dot", want: `version ".2" must not start with '.'`,
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				return e.c.keys, opts("app", ".2", e.good)
			}},
		{name: "version with NUL", want: `contains '\x00'`,
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				return e.c.keys, opts("app", "2.0\x00", e.good)
			}},
		{name: "version with a control character", want: `contains '\x7f'`,
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				return e.c.keys, opts("app", "2.0\x7f", e.good)
			}},
		{name: "version too long", want: "longer than 128 bytes",
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				return e.c.keys, opts("app", strings.Repeat("9", 129), e.good)
			}},
		{name: "bad channel", want: `channel "stable/eu" contains '/'`,
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				o := opts("app", "2.0", e.good)
				o.Channels = []string{"stable/eu"}
				return e.c.keys, o
			}},
		{name: "bad region", want: `region ".." must not start with '.'`,
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				o := opts("app", "2.0", e.good)
				o.Regions = []string{".."}
				return e.c.keys, o
			}},
		{name: "label value with a control character", want: "control character",
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				o := opts("app", "2.0", e.good)
				o.Labels = map[string]string{"owner": "a\nb"}
				return e.c.keys, o
			}},
		{name: "bad piece length", want: "not a power of two",
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				o := opts("app", "2.0", e.good)
				o.PieceLength = 1000
				return e.c.keys, o
			}},
		{name: "wrong keys directory", want: "wrong keys directory",
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				other, err := catalog.GenerateKeys(filepath.Join(e.tmp, "keys"))
				if err != nil {
					t.Fatal(err)
				}
				return other, opts("app", "2.0", e.good)
			}},
		{name: "no signing keys loaded", want: "no targets key",
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				return catalog.Keys{"root": e.c.keys["root"]}, opts("app", "2.0", e.good)
			}},
		{name: "existing release with other content", wantIs: catalog.ErrReleaseExists, want: "releases are immutable",
			setup: func(t *testing.T, e env) (catalog.Keys, publish.PublishOptions) {
				return e.c.keys, opts("app", "1.0", storetest.WritePayload(t, map[string]string{"bin/app": "other"}))
			}},
	}
	// One catalog per store serves every case: each refusal must leave it
	// exactly as it was, which is what each case checks.
	storetest.EachStore(t, gw, func(t *testing.T, s catalog.Store) {
		c := newPubCatalog(t, s)
		good := storetest.WritePayload(t, map[string]string{"bin/app": "payload", "README": "read me"})
		c.publish(t, publish.PublishOptions{Name: "app", Version: "1.0", Paths: []string{good}, Channels: []string{"stable"}})
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if tc.skipRoot && os.Geteuid() == 0 {
					t.Skip("running as root: permissions do not stop reads (the FIFO and device cases cover unreadable input)")
				}
				before := storetest.Contents(t, s)
				keys, o := tc.setup(t, env{c: c, good: good, tmp: t.TempDir()})
				res, err := publish.Publish(t.Context(), s, keys, o)
				if err == nil {
					t.Fatalf("Publish succeeded: %+v", res)
				}
				if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
					t.Errorf("Publish error %v does not wrap %v", err, tc.wantIs)
				}
				wantErrContains(t, "Publish", err, tc.want)
				sameContents(t, s, before)
				if got := releaseNames(t, c.client(t)); !reflect.DeepEqual(got, []string{"app@1.0"}) {
					t.Errorf("catalog lists %v after a refused publish; want [app@1.0]", got)
				}
			})
		}
	})
}

func TestPublishUninitialized(t *testing.T) {
	s, err := catalog.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := catalog.GenerateKeys(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = publish.Publish(t.Context(), s, keys, publish.PublishOptions{
		Name: "app", Version: "1.0", Paths: []string{storetest.WritePayload(t, map[string]string{"a": "b"})},
	})
	if !errors.Is(err, catalog.ErrNotInitialized) {
		t.Fatalf("Publish to an empty store = %v; want ErrNotInitialized", err)
	}
	if list, err := s.List(t.Context(), ""); err != nil || len(list) != 0 {
		t.Fatalf("store after a refused publish: %v, %v", list, err)
	}
}

func TestPublishSameVersion(t *testing.T) {
	gw := storetest.Gateway(t)
	storetest.EachStore(t, gw, func(t *testing.T, s catalog.Store) {
		ctx := t.Context()
		c := newPubCatalog(t, s)
		files := map[string]string{"bin/app": "payload v1", "README": "read me", "doc/a.txt": "a"}
		first := c.publish(t, publish.PublishOptions{Name: "app", Version: "1.0", Paths: []string{storetest.WritePayload(t, files)}, Channels: []string{"stable"}})
		cl := c.client(t)
		m1, err := cl.Manifest(ctx, "app", "1.0")
		if err != nil {
			t.Fatal(err)
		}
		t1, err := cl.Torrent(ctx, "app", "1.0")
		if err != nil {
			t.Fatal(err)
		}
		before := storetest.Contents(t, s)
		intact := func(t *testing.T) {
			t.Helper()
			cl := c.client(t)
			m, err := cl.Manifest(ctx, "app", "1.0")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, m1) {
				t.Errorf("manifest changed:\n%+v\nwant\n%+v", m, m1)
			}
			if tb, err := cl.Torrent(ctx, "app", "1.0"); err != nil || !bytes.Equal(tb, t1) {
				t.Errorf("torrent changed (err %v)", err)
			}
			problems, _, err := publish.VerifyCatalog(ctx, cl)
			if err != nil || len(problems) != 0 {
				t.Errorf("VerifyCatalog = %+v, %v", problems, err)
			}
		}

		for _, tc := range []struct {
			name  string
			files map[string]string
		}{
			{"other bytes", map[string]string{"bin/app": "payload v2", "README": "read me", "doc/a.txt": "a"}},
			{"same size other bytes", map[string]string{"bin/app": "payload v9", "README": "read me", "doc/a.txt": "a"}},
			{"extra file", map[string]string{"bin/app": "payload v1", "README": "read me", "doc/a.txt": "a", "x": "x"}},
			{"missing file", map[string]string{"bin/app": "payload v1", "README": "read me"}},
			{"renamed file", map[string]string{"bin/app": "payload v1", "README.md": "read me", "doc/a.txt": "a"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := publish.Publish(ctx, s, c.keys, publish.PublishOptions{
					Name: "app", Version: "1.0", Paths: []string{storetest.WritePayload(t, tc.files)}, Channels: []string{"beta"},
				})
				if !errors.Is(err, catalog.ErrReleaseExists) {
					t.Fatalf("Publish of app@1.0 with other content = %v; want ErrReleaseExists", err)
				}
				wantErrContains(t, "Publish", err, "app@1.0")
				sameContents(t, s, before)
				intact(t)
			})
		}

		t.Run("same bytes", func(t *testing.T) {
			// Later, from another directory: same content, so nothing to do.
			res, err := publish.Publish(ctx, s, c.keys, publish.PublishOptions{
				Name: "app", Version: "1.0", Paths: []string{storetest.WritePayload(t, files)}, Channels: []string{"stable"},
				Now: func() time.Time { return time.Now().Add(time.Hour) },
			})
			if err != nil {
				t.Fatal(err)
			}
			if !res.AlreadyPublished || res.InfoHash != first.InfoHash {
				t.Errorf("result = %+v; want AlreadyPublished with infohash %s", res, first.InfoHash)
			}
			sameContents(t, s, before) // in particular no new targets version
			intact(t)
		})

		t.Run("same bytes with a new channel", func(t *testing.T) {
			res, err := publish.Publish(ctx, s, c.keys, publish.PublishOptions{
				Name: "app", Version: "1.0", Paths: []string{storetest.WritePayload(t, files)}, Channels: []string{"beta"},
			})
			if err != nil {
				t.Fatal(err)
			}
			if !res.AlreadyPublished {
				t.Errorf("result = %+v; want AlreadyPublished", res)
			}
			e, err := c.client(t).Entry("app", "1.0")
			if err != nil || !reflect.DeepEqual(e.Channels, []string{"beta", "stable"}) {
				t.Errorf("entry = %+v, %v; want channels beta and stable", e, err)
			}
			intact(t)
			before = storetest.Contents(t, s)
		})

		t.Run("same bytes repairs a lost payload object", func(t *testing.T) {
			key := catalog.DataPrefix("app", "1.0") + "doc/a.txt"
			if err := s.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
			res, err := publish.Publish(ctx, s, c.keys, publish.PublishOptions{
				Name: "app", Version: "1.0", Paths: []string{storetest.WritePayload(t, files)},
			})
			if err != nil {
				t.Fatal(err)
			}
			if !res.AlreadyPublished {
				t.Errorf("result = %+v; want AlreadyPublished", res)
			}
			sameContents(t, s, before)
			intact(t)
		})
	})
}

// failingStore fails every Put of a key with the given prefix, as a crash
// or a lost connection at that point of a publish would.
type failingStore struct {
	catalog.Store
	failPrefix, failSuffix string
	failed                 int
}

func (f *failingStore) fail(key string) error {
	if strings.HasPrefix(key, f.failPrefix) && strings.HasSuffix(key, f.failSuffix) {
		f.failed++
		return fmt.Errorf("injected failure writing %s", key)
	}
	return nil
}

func (f *failingStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := f.fail(key); err != nil {
		return err
	}
	return f.Store.Put(ctx, key, r, size)
}

func (f *failingStore) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := f.fail(key); err != nil {
		return err
	}
	return catalog.PutIfAbsent(ctx, f.Store, key, r, size)
}

func (f *failingStore) Copy(ctx context.Context, src, dst string) error {
	if err := f.fail(dst); err != nil {
		return err
	}
	return catalog.CopyObject(ctx, f.Store, src, dst)
}

// ObjectURL keeps the web seed URL the same as the real store's.
func (f *failingStore) ObjectURL(key string) string {
	if u, ok := f.Store.(catalog.URLer); ok {
		return u.ObjectURL(key)
	}
	return ""
}

func TestPublishCrashBeforeSigning(t *testing.T) {
	gw := storetest.Gateway(t)
	for _, tc := range []struct {
		name, failPrefix, failSuffix string
		committed                    bool // the failure comes after the commit point
	}{
		{"before the payload", "staging/", "", false},
		{"before the torrent", "staging/", "/release.torrent", false},
		{"before the manifest", "staging/", "/release.json", false},
		{"before any metadata", "metadata/", "", false},
		{"before the snapshot", "metadata/3.snapshot.json", "", false}, // Init signs 1, the first publish 2
		{"before the timestamp", "metadata/timestamp.json", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.EachStore(t, gw, func(t *testing.T, s catalog.Store) {
				ctx := t.Context()
				c := newPubCatalog(t, s)
				c.publish(t, publish.PublishOptions{Name: "app", Version: "1.0", Channels: []string{"stable"},
					Paths: []string{storetest.WritePayload(t, map[string]string{"bin/app": "one"})}})
				state := t.TempDir()
				agent, err := catalog.NewClient(s, c.root, state)
				if err != nil {
					t.Fatal(err)
				}
				if err := agent.Refresh(ctx); err != nil {
					t.Fatal(err)
				}

				opts := publish.PublishOptions{Name: "app", Version: "2.0", Channels: []string{"stable"},
					Paths: []string{storetest.WritePayload(t, map[string]string{"bin/app": "two", "README": "new"})}}
				fs := &failingStore{Store: s, failPrefix: tc.failPrefix, failSuffix: tc.failSuffix}
				_, err = publish.Publish(ctx, fs, c.keys, opts)
				wantErrContains(t, "Publish with a failing store", err, "injected failure writing "+tc.failPrefix)
				wantErrContains(t, "Publish with a failing store", err, tc.failSuffix)
				if fs.failed != 1 {
					t.Errorf("%d writes failed; want Publish to stop at the first", fs.failed)
				}

				// Agents, old and new, still see the previous catalog.
				for _, cl := range []*catalog.Client{agent, c.client(t)} {
					if err := cl.Refresh(ctx); err != nil {
						t.Fatalf("Refresh after a failed publish: %v", err)
					}
					if got := releaseNames(t, cl); !reflect.DeepEqual(got, []string{"app@1.0"}) {
						t.Fatalf("catalog lists %v after a failed publish; want [app@1.0]", got)
					}
					if r, err := cl.Resolve("app", "stable", ""); err != nil || r.Version != "1.0" {
						t.Fatalf("stable = %+v, %v; want 1.0", r, err)
					}
					if _, err := cl.Manifest(ctx, "app", "2.0"); !errors.Is(err, catalog.ErrNotFound) {
						t.Fatalf("Manifest of the unsigned release = %v; want ErrNotFound", err)
					}
				}
				if _, err := catalog.OpenRepo(ctx, s, c.keys, catalog.DefaultExpiry); err != nil {
					t.Fatalf("OpenRepo after a failed publish: %v", err)
				}

				// Running it again completes the publish.
				res, err := publish.Publish(ctx, s, c.keys, opts)
				if err != nil {
					t.Fatalf("Publish again: %v", err)
				}
				if res.AlreadyPublished != tc.committed {
					t.Errorf("retry says AlreadyPublished=%v; the first attempt committed: %v", res.AlreadyPublished, tc.committed)
				}
				if err := agent.Refresh(ctx); err != nil {
					t.Fatalf("Refresh after the retry: %v", err)
				}
				if got := releaseNames(t, agent); !reflect.DeepEqual(got, []string{"app@1.0", "app@2.0"}) {
					t.Fatalf("catalog lists %v after the retry", got)
				}
				if r, err := agent.Resolve("app", "stable", ""); err != nil || r.Version != "2.0" {
					t.Fatalf("stable = %+v, %v; want 2.0", r, err)
				}
				m, err := agent.Manifest(ctx, "app", "2.0")
				if err != nil || m.InfoHash != res.InfoHash {
					t.Fatalf("Manifest = %+v, %v", m, err)
				}
				problems, n, err := publish.VerifyCatalog(ctx, agent)
				if err != nil || n != 2 || len(problems) != 0 {
					t.Fatalf("VerifyCatalog = %+v, %d, %v", problems, n, err)
				}
			})
		})
	}
}

func TestPublishS3Unreachable(t *testing.T) {
	start := time.Now()
	_, err := catalog.OpenStore(t.Context(), "s3://releases/catalog", catalog.S3Config{
		Endpoint: "http://127.0.0.1:1", AccessKey: "a", SecretKey: "s",
	})
	wantErrContains(t, "OpenStore of an unreachable endpoint", err, "http://127.0.0.1:1")
	wantErrContains(t, "OpenStore of an unreachable endpoint", err, "unreachable")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v to give up on a refused connection", d)
	}
}

func TestPublishS3Credentials(t *testing.T) {
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"} {
		t.Setenv(k, "")
	}
	t.Run("missing", func(t *testing.T) {
		_, err := catalog.OpenStore(t.Context(), "s3://releases/catalog", catalog.S3Config{Endpoint: "http://127.0.0.1:1"})
		wantErrContains(t, "OpenStore without credentials", err, "no S3 credentials")
		wantErrContains(t, "OpenStore without credentials", err, "AWS_ACCESS_KEY_ID")
	})
	t.Run("only an access key", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
		_, err := catalog.OpenStore(t.Context(), "s3://releases/catalog", catalog.S3Config{Endpoint: "http://127.0.0.1:1"})
		wantErrContains(t, "OpenStore without a secret key", err, "credentials")
	})
	t.Run("refused", func(t *testing.T) {
		gw := storetest.Gateway(t)
		if gw == nil {
			testenv.RequireTool(t, "versitygw")
		}
		bucket := gw.NewBucket(t)
		s, err := catalog.NewS3Store(t.Context(), pubS3Config(gw, bucket))
		if err != nil {
			t.Fatal(err)
		}
		newPubCatalog(t, s)
		before := storetest.Contents(t, s)
		cfg := pubS3Config(gw, bucket)
		cfg.SecretKey = "wrong"
		_, err = catalog.OpenStore(t.Context(), "s3://"+bucket+"/cat", cfg)
		wantErrContains(t, "OpenStore with a wrong secret", err, "credentials refused")
		wantErrContains(t, "OpenStore with a wrong secret", err, gw.Endpoint)
		sameContents(t, s, before)
	})
}
