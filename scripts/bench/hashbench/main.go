// Command hashbench times piecehash.Hash (pieces only, and with SHA-256) on one file,
// for scripts/bench/hash. It can also write a pseudo-random test file quickly.
//
//	hashbench -gen 1GiB FILE             write FILE
//	hashbench -mode pieces|files PATH    hash PATH (a file, or a directory as a
//	                                     release) -runs times, print seconds
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/internal/bytesize"
	"github.com/swarmship/swarmship/internal/piecehash"
)

func main() {
	gen := flag.String("gen", "", "write a pseudo-random file of this `size` (e.g. 1GiB) to FILE and exit")
	mode := flag.String("mode", "pieces", "what to time: pieces (SHA-1 only) or files (SHA-1 + SHA-256)")
	pieceLength := flag.String("l", "4MiB", "piece `length` (4MiB is mktorrent -l 22)")
	workers := flag.Int("workers", 0, "hashing goroutines (0: one per CPU)")
	runs := flag.Int("runs", 5, "timed runs; the best and the median are printed")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: hashbench [flags] FILE|DIR\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	path := flag.Arg(0)
	if err := run(path, *gen, *mode, *pieceLength, *workers, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "hashbench:", err)
		os.Exit(1)
	}
}

func run(path, gen, mode, pieceLength string, workers, runs int) error {
	if gen != "" {
		return generate(path, gen)
	}
	pl, err := piecehash.ParsePieceLength(pieceLength)
	if err != nil {
		return err
	}
	// A directory is hashed as a release of all its files, as publish would.
	files, err := publish.CollectFiles([]string{path})
	if err != nil {
		return err
	}
	ctx := context.Background()
	var times []float64
	for range max(runs, 1) {
		start := time.Now()
		switch mode {
		case "pieces":
			_, err = piecehash.Hash(ctx, files, piecehash.Options{PieceLength: pl, Workers: workers, PiecesOnly: true})
		case "files":
			_, err = piecehash.Hash(ctx, files, piecehash.Options{PieceLength: pl, Workers: workers})
		default:
			return fmt.Errorf("unknown mode %q (want pieces or files)", mode)
		}
		if err != nil {
			return err
		}
		times = append(times, time.Since(start).Seconds())
	}
	slices.Sort(times)
	fmt.Printf("best %.3f median %.3f\n", times[0], times[len(times)/2])
	return nil
}

// generate writes size bytes from a ChaCha8 stream: several times faster
// than /dev/urandom, and incompressible as far as any filesystem cares.
func generate(path, size string) error {
	size64, err := bytesize.Parse(size)
	if err != nil {
		return err
	}
	n := int64(size64)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.NewChaCha8([32]byte{'s', 'w', 'a', 'r', 'm'})
	buf := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, int64(len(buf)))
		rng.Read(buf[:k])
		if _, err := w.Write(buf[:k]); err != nil {
			f.Close()
			return err
		}
		n -= k
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
