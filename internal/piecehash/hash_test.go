package piecehash

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

// testFile describes a file for writeTree: its release path ("a/b") and size.
type testFile struct {
	path string
	size int64
}

// writeTree writes pseudo-random files under dir and returns them as entries
// in the given order.
func writeTree(t testing.TB, dir string, files []testFile) []FileEntry {
	t.Helper()
	rng := rand.NewChaCha8([32]byte{byte(len(files))})
	var entries []FileEntry
	for _, f := range files {
		src := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, f.size)
		rng.Read(data)
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, FileEntry{Path: strings.Split(f.path, "/"), Source: src, Size: f.size})
	}
	return entries
}

// referencePieces hashes entries with the library's single-threaded builder.
func referencePieces(t testing.TB, entries []FileEntry, pieceLength int64) []byte {
	t.Helper()
	info := metainfo.Info{PieceLength: pieceLength}
	for _, e := range entries {
		info.Files = append(info.Files, metainfo.FileInfo{Path: e.Path, Length: e.Size})
	}
	sources := map[string]string{}
	for _, e := range entries {
		sources[strings.Join(e.Path, "/")] = e.Source
	}
	err := info.GeneratePieces(func(fi metainfo.FileInfo) (io.ReadCloser, error) {
		return os.Open(sources[strings.Join(fi.Path, "/")])
	})
	if err != nil {
		t.Fatal(err)
	}
	return info.Pieces
}

func fileSHA256(t testing.TB, path string) [32]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

func TestHashFilesMatchesLibrary(t *testing.T) {
	const kib = 1 << 10
	// Many files of awkward sizes, some empty, crossing piece boundaries in
	// every way: inside one piece, spanning several, ending exactly on one.
	var many []testFile
	sizes := []int64{0, 1, 16*kib - 1, 16 * kib, 16*kib + 1, 0, 40 * kib, 3, 0, 100*kib + 7, 32 * kib, 5, 0}
	for i := range 37 {
		many = append(many, testFile{fmt.Sprintf("d%d/f%02d", i%4, i), sizes[i%len(sizes)]})
	}
	slices.SortFunc(many, func(a, b testFile) int { return strings.Compare(a.path, b.path) })

	tests := []struct {
		name        string
		files       []testFile
		pieceLength int64
	}{
		{"single small file", []testFile{{"a.txt", 1000}}, 16 * kib},
		{"file smaller than a piece", []testFile{{"bin/app", 100 * kib}}, 256 * kib},
		{"exact multiple of piece length", []testFile{{"data", 4 * 16 * kib}}, 16 * kib},
		{"file just over a multiple", []testFile{{"data", 4*16*kib + 1}}, 16 * kib},
		{"pieces larger than a read chunk", []testFile{{"big", 3*1024*kib + 333}, {"z/small", 10}}, 1024 * kib},
		{"many files crossing piece boundaries", many, 16 * kib},
		{"empty files mixed in", []testFile{{"a", 0}, {"b", 20 * kib}, {"c", 0}, {"d", 0}, {"e", 30 * kib}, {"f", 0}}, 16 * kib},
		{"two files exactly one piece each", []testFile{{"a", 16 * kib}, {"b", 16 * kib}}, 16 * kib},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			entries := writeTree(t, t.TempDir(), tc.files)
			want := referencePieces(t, entries, tc.pieceLength)
			for _, run := range []struct {
				workers int
				mmap    bool
			}{{1, true}, {4, true}, {0, true}, {1, false}, {4, false}} {
				t.Run(fmt.Sprintf("workers=%d/mmap=%v", run.workers, run.mmap), func(t *testing.T) {
					setUseMmap(t, run.mmap)
					workers := run.workers
					var calls []int64
					var mu sync.Mutex
					r, err := Hash(context.Background(), entries, Options{PieceLength: tc.pieceLength, Workers: workers, Progress: func(done int64) {
						mu.Lock()
						defer mu.Unlock()
						calls = append(calls, done)
					}})
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(r.Pieces, want) {
						t.Errorf("HashFiles pieces differ from metainfo.GeneratePieces (%d vs %d bytes)", len(r.Pieces), len(want))
					}
					var total int64
					for i, e := range entries {
						total += e.Size
						if got, want := r.SHA256[i], fileSHA256(t, e.Source); got != want {
							t.Errorf("SHA-256 of %s = %x, want %x", e.Source, got, want)
						}
					}
					if r.TotalSize != total || r.PieceLength != tc.pieceLength || len(r.SHA256) != len(entries) {
						t.Errorf("result = {TotalSize %d, PieceLength %d, %d SHA-256s}, want {%d, %d, %d}",
							r.TotalSize, r.PieceLength, len(r.SHA256), total, tc.pieceLength, len(entries))
					}
					if len(calls) == 0 || calls[len(calls)-1] != total || !slices.IsSorted(calls) {
						t.Errorf("progress calls %v: want growing, ending at %d", calls, total)
					}

					pr, err := Hash(context.Background(), entries, Options{PieceLength: tc.pieceLength, Workers: workers, PiecesOnly: true})
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(pr.Pieces, want) {
						t.Errorf("HashPieces differs from metainfo.GeneratePieces")
					}
				})
			}
		})
	}
}

func setUseMmap(t *testing.T, on bool) {
	old := useMmap
	useMmap = on
	t.Cleanup(func() { useMmap = old })
}

// TestHashFilesFileChangesDuringHashing changes a file right after the
// hasher opened (and mapped) it: shrinking must give an error naming the
// file, not wrong hashes and not a crash from the fault on the mapping;
// growing must be noticed too.
func TestHashFilesFileChangesDuringHashing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		newSize int64
		want    string
	}{
		{"shrinks", 1 << 20, "did it change during hashing?"},
		{"grows", 5 << 20, "is 5242880 bytes, listed as 4194304; did it change during hashing?"},
	} {
		for _, mm := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/mmap=%v", tc.name, mm), func(t *testing.T) {
				setUseMmap(t, mm)
				entries := writeTree(t, t.TempDir(), []testFile{{"big", 4 << 20}})
				testHookOpened = func(path string) {
					if err := os.Truncate(path, tc.newSize); err != nil {
						t.Error(err)
					}
				}
				t.Cleanup(func() { testHookOpened = nil })
				_, err := Hash(context.Background(), entries, Options{PieceLength: 256 << 10, Workers: 2})
				t.Logf("HashFiles: %v", err)
				if err == nil || !strings.Contains(err.Error(), entries[0].Source) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("HashFiles error = %v, want one naming %s and containing %q", err, entries[0].Source, tc.want)
				}
				if err := os.Truncate(entries[0].Source, 4<<20); err != nil {
					t.Fatal(err)
				}
				_, err = Hash(context.Background(), entries, Options{PieceLength: 256 << 10, Workers: 2, PiecesOnly: true})
				if err == nil || !strings.Contains(err.Error(), entries[0].Source) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("HashPieces error = %v, want one naming %s and containing %q", err, entries[0].Source, tc.want)
				}
			})
		}
	}
}

func TestBuildInfoSingleFileIsMultiFile(t *testing.T) {
	entries := writeTree(t, t.TempDir(), []testFile{{"only", 100}})
	r, err := Hash(context.Background(), entries, Options{PieceLength: 0, Workers: 0})
	if err != nil {
		t.Fatal(err)
	}
	info := BuildInfo("rel", entries, r)
	if info.Length != 0 || len(info.Files) != 1 || !slices.Equal(info.Files[0].Path, []string{"only"}) || info.Files[0].Length != 100 {
		t.Errorf("info = Length %d, Files %+v; want multi-file form with one file", info.Length, info.Files)
	}
	if info.PieceLength != ChoosePieceLength(100) || info.NumPieces() != 1 {
		t.Errorf("piece length %d, %d pieces", info.PieceLength, info.NumPieces())
	}
	// BuildInfo must not share path slices with the caller's entries.
	info.Files[0].Path[0] = "changed"
	if entries[0].Path[0] != "only" {
		t.Error("BuildInfo aliases the entries' paths")
	}
}

func TestHashFilesErrors(t *testing.T) {
	dir := t.TempDir()
	entries := writeTree(t, dir, []testFile{{"a", 50_000}, {"b", 10}, {"e", 0}})
	ctx := context.Background()
	with := func(f func(es []FileEntry) []FileEntry) []FileEntry {
		es := slices.Clone(entries)
		return f(es)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		name        string
		ctx         context.Context
		files       []FileEntry
		pieceLength int64
		want        string
	}{
		{"no files", ctx, nil, 0, "no files"},
		{"zero-length total", ctx, entries[2:], 0, "all files are empty"},
		{"missing file", ctx, with(func(es []FileEntry) []FileEntry {
			es[1].Source = filepath.Join(dir, "gone")
			return es
		}), 0, filepath.Join(dir, "gone")},
		{"file shorter than listed", ctx, with(func(es []FileEntry) []FileEntry {
			es[0].Size++
			return es
		}), 16 << 10, entries[0].Source},
		{"file longer than listed", ctx, with(func(es []FileEntry) []FileEntry {
			es[0].Size--
			return es
		}), 16 << 10, entries[0].Source},
		{"empty file no longer empty", ctx, with(func(es []FileEntry) []FileEntry {
			es[2].Source = entries[1].Source
			return es
		}), 0, entries[1].Source},
		{"bad piece length", ctx, entries, 1000, "not a power of two"},
		{"piece length too small", ctx, entries, 8 << 10, "below the minimum"},
		{"dot-dot path", ctx, with(func(es []FileEntry) []FileEntry {
			es[0].Path = []string{"..", "etc"}
			return es
		}), 0, `".."`},
		{"duplicate path", ctx, with(func(es []FileEntry) []FileEntry {
			es[1].Path = es[0].Path
			return es
		}), 0, "duplicate path"},
		{"negative size", ctx, with(func(es []FileEntry) []FileEntry {
			es[1].Size = -1
			return es
		}), 0, "negative size"},
		{"canceled", canceled, entries, 0, context.Canceled.Error()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, workers := range []int{1, 4} {
				_, err := Hash(tc.ctx, tc.files, Options{PieceLength: tc.pieceLength, Workers: workers})
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("HashFiles(workers=%d) error = %v, want one containing %q", workers, err, tc.want)
				}
				_, err = Hash(tc.ctx, tc.files, Options{PieceLength: tc.pieceLength, Workers: workers, PiecesOnly: true})
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("HashPieces(workers=%d) error = %v, want one containing %q", workers, err, tc.want)
				}
			}
		})
	}
}

// TestHashFilesCancelMidway cancels from the progress callback and checks
// that hashing stops with the context's error and leaks no goroutine.
func TestHashFilesCancelMidway(t *testing.T) {
	entries := writeTree(t, t.TempDir(), []testFile{{"a", 8 << 20}, {"b", 8 << 20}})
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := Hash(ctx, entries, Options{PieceLength: 16 << 10, Workers: 4, Progress: func(done int64) { cancel() }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
	time.Sleep(10 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("goroutines: %d before, %d after", before, after)
	}
}

func TestParsePieceLength(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"auto", 0, ""},
		{" AUTO ", 0, ""},
		{"262144", 256 << 10, ""},
		{"16KiB", 16 << 10, ""},
		{"16k", 16 << 10, ""},
		{"256K", 256 << 10, ""},
		{"4MiB", 4 << 20, ""},
		{"4M", 4 << 20, ""},
		{"4mb", 0, "not a power of two"},
		{"4 MiB", 4 << 20, ""},
		{"64MiB", 64 << 20, ""},
		{"", 0, "want a number"},
		{"MiB", 0, "want a number"},
		{"-4M", 0, "want a number"},
		{"4.5M", 0, "not a power of two"},
		{"4XB", 0, "unknown unit"},
		{"4TB", 0, "not a power of two"},
		{"1000", 0, "not a power of two"},
		{"3MiB", 0, "not a power of two"},
		{"0", 0, "not a power of two"},
		{"8KiB", 0, "below the minimum of 16 KiB"},
		{"128MiB", 0, "above the maximum of 64 MiB"},
		{"1GiB", 0, "above the maximum"},
		{"99999999999999999999", 0, "out of range"},
		{"9999999999999G", 0, "out of range"},
	}
	for _, tc := range tests {
		got, err := ParsePieceLength(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.in)) {
				t.Errorf("ParsePieceLength(%q) = %d, %v; want error containing %q and the input", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParsePieceLength(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestChoosePieceLength(t *testing.T) {
	const kib, mib, gib = int64(1) << 10, int64(1) << 20, int64(1) << 30
	tests := []struct {
		total, want int64
	}{
		{0, 256 * kib},
		{1, 256 * kib},
		{5*mib + 3, 256 * kib},     // 21 pieces: small releases stay at the floor
		{64 * mib, 256 * kib},      // 256 pieces
		{128 * mib, 256 * kib},     // 512 pieces
		{128*mib + 1, 512 * kib},   // 513 would be too many: 257
		{300*mib + 12345, 1 * mib}, // 301 pieces
		{1 * gib, 2 * mib},         // 512 pieces
		{2*gib - 1, 4 * mib},       // 512 pieces
		{2*gib + 1, 8 * mib},       // 257 pieces
		{3 * gib, 8 * mib},         // 384 pieces
		{8 * gib, 16 * mib},        // 512 pieces
		{12 * gib, 16 * mib},       // 768 pieces: clamped
		{100 * gib, 16 * mib},      // 6400 pieces: clamped
		{(1 << 63) - 1, 16 * mib},  // no overflow at the top
	}
	for _, tc := range tests {
		got := ChoosePieceLength(tc.total)
		if got != tc.want {
			t.Errorf("ChoosePieceLength(%d) = %d, want %d", tc.total, got, tc.want)
		}
		if _, err := ParsePieceLength(fmt.Sprint(got)); err != nil {
			t.Errorf("ChoosePieceLength(%d) = %d, which ParsePieceLength refuses: %v", tc.total, got, err)
		}
	}
}

// requireTool returns the path of an external tool, skipping the test if it
// is missing, unless CI=true, where a missing tool is a broken test machine.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not available: %v", name, err)
	}
	return path
}

// libtorrentCheck loads a .torrent with libtorrent, prints its v1 infohash,
// then rechecks the data in save_path and prints the number of pieces it
// found valid.
const libtorrentCheck = `
import sys, time
import libtorrent as lt
ti = lt.torrent_info(sys.argv[1])
print(str(ti.info_hashes().v1))
print(ti.num_pieces(), ti.total_size(), ti.num_files(), ti.piece_length())
s = lt.session({"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
                "enable_upnp": False, "enable_natpmp": False, "alert_mask": 0})
h = s.add_torrent({"ti": ti, "save_path": sys.argv[2]})
deadline = time.time() + 15
while time.time() < deadline and not h.status().is_seeding:
    time.sleep(0.05)
print(h.status().num_pieces)
`

// TestLibtorrentAcceptsTorrent checks that another implementation reads a
// torrent built by BuildInfo, computes the same infohash, and finds every
// piece of the data valid.
func TestLibtorrentAcceptsTorrent(t *testing.T) {
	python := requireTool(t, "/usr/bin/python3")
	if out, err := exec.Command(python, "-c", "import libtorrent").CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3-libtorrent is required in CI: %v\n%s", err, out)
		}
		t.Skipf("python3-libtorrent not available: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name  string
		files []testFile
	}{
		{"one file", []testFile{{"app.bin", 300_000}}},
		{"several files", []testFile{{"bin/app", 100_000}, {"empty", 0}, {"lib/a.so", 70_000}, {"z", 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			// Multi-file torrents live under <save_path>/<name>/.
			entries := writeTree(t, filepath.Join(dir, "data", "myrelease"), tc.files)
			r, err := Hash(context.Background(), entries, Options{PieceLength: 16 << 10, Workers: 0})
			if err != nil {
				t.Fatal(err)
			}
			info := BuildInfo("myrelease", entries, r)
			infoBytes, err := bencode.Marshal(&info)
			if err != nil {
				t.Fatal(err)
			}
			mi := metainfo.MetaInfo{InfoBytes: infoBytes}
			var buf bytes.Buffer
			if err := mi.Write(&buf); err != nil {
				t.Fatal(err)
			}
			torrentPath := filepath.Join(dir, "x.torrent")
			if err := os.WriteFile(torrentPath, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			script := filepath.Join(dir, "check.py")
			if err := os.WriteFile(script, []byte(libtorrentCheck), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(python, script, torrentPath, filepath.Join(dir, "data")).CombinedOutput()
			if err != nil {
				t.Fatalf("libtorrent: %v\n%s", err, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != 3 {
				t.Fatalf("unexpected output from libtorrent:\n%s", out)
			}
			if want := mi.HashInfoBytes().HexString(); lines[0] != want {
				t.Errorf("libtorrent infohash %s, ours %s", lines[0], want)
			}
			var total int64
			for _, e := range entries {
				total += e.Size
			}
			if want := fmt.Sprint(info.NumPieces(), total, len(entries), info.PieceLength); lines[1] != want {
				t.Errorf("libtorrent sees pieces/size/files/piece length %s, want %s", lines[1], want)
			}
			if want := fmt.Sprint(info.NumPieces()); lines[2] != want {
				t.Errorf("libtorrent found %s valid pieces, want %s", lines[2], want)
			}
		})
	}
}

// observedFile collects one file's observed bytes; Observe promises no
// overlapping writes per file, and the race detector checks that promise.
type observedFile struct{ bytes.Buffer }

// TestHashObserve checks that Observe sees every byte of every non-empty
// file once, in order, whichever path (mapped, pread, inline) carried it.
func TestHashObserve(t *testing.T) {
	for _, mm := range []bool{true, false} {
		t.Run(fmt.Sprintf("mmap=%v", mm), func(t *testing.T) {
			setUseMmap(t, mm)
			entries := writeTree(t, t.TempDir(), []testFile{
				{"a", 3 << 20}, {"b", 100}, {"c", 0}, {"d/e", 70 << 10}, {"f", 2<<20 + 5},
			})
			var mu sync.Mutex
			got := map[int]*observedFile{}
			_, err := Hash(context.Background(), entries, Options{PieceLength: 64 << 10, Workers: 3, Observe: func(i int) io.Writer {
				mu.Lock()
				defer mu.Unlock()
				o := &observedFile{}
				got[i] = o
				return o
			}})
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range entries {
				want, err := os.ReadFile(e.Source)
				if err != nil {
					t.Fatal(err)
				}
				o := got[i]
				if e.Size == 0 {
					if o != nil && o.Len() != 0 {
						t.Errorf("empty file %s observed %d bytes", e.Source, o.Len())
					}
					continue
				}
				if o == nil || !bytes.Equal(o.Bytes(), want) {
					t.Errorf("file %s: observed bytes differ from its content", e.Source)
				}
			}
		})
	}
	if _, err := Hash(context.Background(), nil, Options{PiecesOnly: true, Observe: func(int) io.Writer { return nil }}); err == nil {
		t.Error("Observe with PiecesOnly accepted")
	}
}
