package publish

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmship/swarmship/internal/piecehash"
)

// testFile describes a file for writeTree: its release path ("a/b") and size.
type testFile struct {
	path string
	size int64
}

// writeTree writes files of the given sizes under dir (byte i of each file
// is i mod 251, so pieces differ).
func writeTree(t testing.TB, dir string, files []testFile) {
	t.Helper()
	for _, f := range files {
		src := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, f.size)
		for i := range data {
			data[i] = byte(i % 251)
		}
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// treeOfRel is a setup for the refusal cases: it writes files (paths
// under rel/) and publishes the directory rel.
func treeOfRel(files ...testFile) func(t *testing.T, dir string) []string {
	return func(t *testing.T, dir string) []string {
		writeTree(t, dir, files)
		return []string{filepath.Join(dir, "rel")}
	}
}

// TestCollectThenHashMatchesBuildFromFilePath runs the whole path a publish
// takes against the library's own builder for a directory.
func TestCollectThenHashMatchesBuildFromFilePath(t *testing.T) {
	root := filepath.Join(t.TempDir(), "release")
	writeTree(t, root, []testFile{
		{"bin/app", 70_000}, {"bin/helper", 5}, {"empty", 0}, {"lib/x/y/z.so", 200_000}, {"readme", 1234},
	})
	var want metainfo.Info
	want.PieceLength = 32 << 10
	if err := want.BuildFromFilePath(root); err != nil {
		t.Fatal(err)
	}
	files, err := CollectFiles([]string{root})
	if err != nil {
		t.Fatal(err)
	}
	r, err := piecehash.Hash(context.Background(), files, piecehash.Options{PieceLength: want.PieceLength, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	got := piecehash.BuildInfo("release", files, r)
	gotBytes, err := bencode.Marshal(&got)
	if err != nil {
		t.Fatal(err)
	}
	wantBytes, err := bencode.Marshal(&want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotBytes, wantBytes) {
		t.Errorf("info differs from BuildFromFilePath:\n got %q\nwant %q", gotBytes[:min(200, len(gotBytes))], wantBytes[:min(200, len(wantBytes))])
	}
}

func TestCollectFiles(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, []testFile{
		{"rel/bin/app", 10}, {"rel/a.txt", 3}, {"rel/empty", 0}, {"rel/z/deep/x", 1}, {"single.bin", 7},
	})
	got, err := CollectFiles([]string{filepath.Join(dir, "rel") + "/", filepath.Join(dir, "single.bin")})
	if err != nil {
		t.Fatal(err)
	}
	want := []piecehash.FileEntry{
		{Path: []string{"a.txt"}, Source: filepath.Join(dir, "rel/a.txt"), Size: 3},
		{Path: []string{"bin", "app"}, Source: filepath.Join(dir, "rel/bin/app"), Size: 10},
		{Path: []string{"empty"}, Source: filepath.Join(dir, "rel/empty"), Size: 0},
		{Path: []string{"single.bin"}, Source: filepath.Join(dir, "single.bin"), Size: 7},
		{Path: []string{"z", "deep", "x"}, Source: filepath.Join(dir, "rel/z/deep/x"), Size: 1},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("CollectFiles =\n%v\nwant\n%v", got, want)
	}
}

func TestCollectFilesSortsByComponent(t *testing.T) {
	// "a-b" < "a/b" as strings but a directory's files stay together when
	// sorting by component, as a BEP 52 file tree orders them.
	dir := t.TempDir()
	writeTree(t, dir, []testFile{{"a-b", 1}, {"a/b", 1}, {"a/c", 1}})
	got, err := CollectFiles([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range got {
		paths = append(paths, strings.Join(e.Path, "/"))
	}
	if want := []string{"a/b", "a/c", "a-b"}; !slices.Equal(paths, want) {
		t.Errorf("paths %q, want %q", paths, want)
	}
}

func TestCollectFilesErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) []string // returns the arguments
		want  string
	}{
		{"empty path list", func(t *testing.T, dir string) []string { return nil }, "no files or directories"},
		{"empty string", func(t *testing.T, dir string) []string { return []string{""} }, "empty path"},
		{"missing path", func(t *testing.T, dir string) []string {
			return []string{filepath.Join(dir, "nope")}
		}, "nope: no such file"},
		{"symlink argument", func(t *testing.T, dir string) []string {
			writeTree(t, dir, []testFile{{"target", 1}})
			symlink(t, "target", filepath.Join(dir, "link"))
			return []string{filepath.Join(dir, "link")}
		}, "link: is a symlink; symlinks are not published"},
		{"symlink inside directory", func(t *testing.T, dir string) []string {
			writeTree(t, dir, []testFile{{"rel/target", 1}})
			symlink(t, "target", filepath.Join(dir, "rel/link"))
			return []string{filepath.Join(dir, "rel")}
		}, "rel/link: is a symlink"},
		{"symlink to directory", func(t *testing.T, dir string) []string {
			writeTree(t, dir, []testFile{{"rel/sub/x", 1}})
			symlink(t, "sub", filepath.Join(dir, "rel/alias"))
			return []string{filepath.Join(dir, "rel")}
		}, "rel/alias: is a symlink"},
		{"symlink loop", func(t *testing.T, dir string) []string {
			os.Mkdir(filepath.Join(dir, "rel"), 0o755)
			symlink(t, "b", filepath.Join(dir, "rel/a"))
			symlink(t, "a", filepath.Join(dir, "rel/b"))
			return []string{filepath.Join(dir, "rel")}
		}, "rel/a: symlink loop"},
		{"symlink loop argument", func(t *testing.T, dir string) []string {
			symlink(t, "self", filepath.Join(dir, "self"))
			return []string{filepath.Join(dir, "self")}
		}, "self: symlink loop"},
		{"empty directory", func(t *testing.T, dir string) []string {
			os.MkdirAll(filepath.Join(dir, "rel/sub/subsub"), 0o755)
			return []string{filepath.Join(dir, "rel")}
		}, "rel: directory contains no files"},
		{"fifo", func(t *testing.T, dir string) []string {
			writeTree(t, dir, []testFile{{"rel/x", 1}})
			if err := syscall.Mkfifo(filepath.Join(dir, "rel/pipe"), 0o644); err != nil {
				t.Skip("mkfifo:", err)
			}
			return []string{filepath.Join(dir, "rel")}
		}, "rel/pipe: not a regular file"},
		{"unreadable file", func(t *testing.T, dir string) []string {
			if os.Geteuid() == 0 {
				t.Skip("root can read files without permission")
			}
			writeTree(t, dir, []testFile{{"rel/secret", 1}})
			os.Chmod(filepath.Join(dir, "rel/secret"), 0)
			return []string{filepath.Join(dir, "rel")}
		}, "rel/secret: permission denied"},
		{"unreadable directory", func(t *testing.T, dir string) []string {
			if os.Geteuid() == 0 {
				t.Skip("root can read directories without permission")
			}
			writeTree(t, dir, []testFile{{"rel/sub/x", 1}})
			os.Chmod(filepath.Join(dir, "rel/sub"), 0)
			t.Cleanup(func() { os.Chmod(filepath.Join(dir, "rel/sub"), 0o755) })
			return []string{filepath.Join(dir, "rel")}
		}, "rel/sub: permission denied"},
		{"backslash in name", treeOfRel(testFile{`rel/a\b`, 1}), "slash or backslash"},
		{"control character in name", treeOfRel(testFile{"rel/a\nb", 1}), "control character"},
		{"control character in directory name", treeOfRel(testFile{"rel/d\x7f/x", 1}), "control character"},
		{"invalid UTF-8 name", treeOfRel(testFile{"rel/\xff", 1}), "not valid UTF-8"},
		// Publish and the web seed share release.ValidatePathComponent: what
		// the web seed would refuse must not be signed.
		{"NFD name", treeOfRel(testFile{"rel/cafe\u0301.txt", 1}), "not in Unicode NFC form"},
		{"NFC and NFD twins", treeOfRel(testFile{"rel/caf\u00e9.txt", 1}, testFile{"rel/cafe\u0301.txt", 1}), "not in Unicode NFC form"},
		{"NFD directory name", treeOfRel(testFile{"rel/re\u0301sume\u0301/x", 1}), "not in Unicode NFC form"},
		{"dotfile", treeOfRel(testFile{"rel/x", 1}, testFile{"rel/.env", 1}), `".env" starts with '.'`},
		{"dot-directory", treeOfRel(testFile{"rel/x", 1}, testFile{"rel/.git/config", 1}), `".git" starts with '.'`},
		{"dotfile argument", func(t *testing.T, dir string) []string {
			writeTree(t, dir, []testFile{{".signing.key", 1}})
			return []string{filepath.Join(dir, ".signing.key")}
		}, `".signing.key" starts with '.'`},
		{"names differing only in case", func(t *testing.T, dir string) []string {
			writeTree(t, dir, []testFile{{"one/Readme", 1}, {"two/README", 1}})
			return []string{filepath.Join(dir, "one"), filepath.Join(dir, "two")}
		}, "differ only in case"},
		{"duplicate path from two directories", func(t *testing.T, dir string) []string {
			writeTree(t, dir, []testFile{{"one/x", 1}, {"two/x", 1}})
			return []string{filepath.Join(dir, "one"), filepath.Join(dir, "two")}
		}, `duplicate path "x"`},
		{"same file twice", func(t *testing.T, dir string) []string {
			writeTree(t, dir, []testFile{{"x", 1}})
			return []string{filepath.Join(dir, "x"), filepath.Join(dir, "x")}
		}, `duplicate path "x"`},
		{"file and directory with one name", func(t *testing.T, dir string) []string {
			writeTree(t, dir, []testFile{{"one/x/y", 1}, {"two/x", 1}})
			return []string{filepath.Join(dir, "one"), filepath.Join(dir, "two/x")}
		}, `"x" in release is both a file`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := tc.setup(t, dir)
			files, err := CollectFiles(args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CollectFiles(%q) = %v, %v; want error containing %q", args, files, err, tc.want)
			}
		})
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
