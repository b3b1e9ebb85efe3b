package piecehash

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmship/swarmship/internal/bytesize"
)

// Benchmarks over one generated file. SWARMSHIP_BENCH_SIZE sets its size
// (default 256MiB; units as ParsePieceLength takes them, e.g. 1GiB) and
// SWARMSHIP_BENCH_DIR where it is written (default: a temporary directory,
// removed afterwards; a file left there by an earlier run of the same size is
// reused, so page-cache-warm runs need no regeneration). For the comparison
// with mktorrent on 1 GiB, see scripts/bench/hash.
//
//	go test -run '^$' -bench 'Hash' -benchtime 5x ./internal/piecehash/

func BenchmarkHashPieces(b *testing.B) {
	entries := benchFile(b)
	for _, mode := range []string{"mmap", "pread"} {
		for _, workers := range benchWorkers() {
			b.Run(fmt.Sprintf("pl=4MiB/%s/workers=%d", mode, workers), func(b *testing.B) {
				benchUseMmap(b, mode == "mmap")
				b.SetBytes(entries[0].Size)
				for b.Loop() {
					if _, err := Hash(context.Background(), entries, Options{PieceLength: 4 << 20, Workers: workers, PiecesOnly: true}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
	// The library's single-threaded builder, for reference.
	b.Run("pl=4MiB/library", func(b *testing.B) {
		b.SetBytes(entries[0].Size)
		for b.Loop() {
			info := metainfo.Info{PieceLength: 4 << 20, Files: []metainfo.FileInfo{{Path: entries[0].Path, Length: entries[0].Size}}}
			err := info.GeneratePieces(func(metainfo.FileInfo) (io.ReadCloser, error) { return os.Open(entries[0].Source) })
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkHashFiles(b *testing.B) {
	entries := benchFile(b)
	for _, pl := range []int64{1 << 20, 4 << 20, 16 << 20} {
		for _, mode := range []string{"mmap", "pread"} {
			for _, workers := range benchWorkers() {
				b.Run(fmt.Sprintf("pl=%dMiB/%s/workers=%d", pl>>20, mode, workers), func(b *testing.B) {
					benchUseMmap(b, mode == "mmap")
					b.SetBytes(entries[0].Size)
					for b.Loop() {
						if _, err := Hash(context.Background(), entries, Options{PieceLength: pl, Workers: workers}); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// benchUseMmap picks how big files are read (see mmapMinSize).
func benchUseMmap(b *testing.B, on bool) {
	old := useMmap
	useMmap = on
	b.Cleanup(func() { useMmap = old })
}

func benchWorkers() []int {
	if n := runtime.NumCPU(); n > 1 {
		return []int{1, n}
	}
	return []int{1}
}

// benchFile returns the benchmark input, writing it if needed. It is called
// from the top-level benchmark, which (having sub-benchmarks) runs once, so
// the file is written once per top-level benchmark.
func benchFile(b *testing.B) []FileEntry {
	b.Helper()
	size := int64(256 << 20)
	if s := os.Getenv("SWARMSHIP_BENCH_SIZE"); s != "" {
		n, err := bytesize.Parse(s)
		if err != nil || n <= 0 {
			b.Fatalf("SWARMSHIP_BENCH_SIZE=%q: want a size such as 256MiB or 1GiB", s)
		}
		size = int64(n)
	}
	dir := os.Getenv("SWARMSHIP_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("swarmship-bench-%d.bin", size))
	if fi, err := os.Stat(path); err != nil || fi.Size() != size {
		if err := writeRandomFile(path, size); err != nil {
			b.Fatal(err)
		}
	}
	// Read it once so that every run, the first included, hashes from the
	// page cache: the benchmark measures hashing, not the disk.
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	_, err = io.Copy(io.Discard, f)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	return []FileEntry{{Path: []string{filepath.Base(path)}, Source: path, Size: size}}
}

func writeRandomFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	_, err = io.CopyN(w, rand.NewChaCha8([32]byte{}), size)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
