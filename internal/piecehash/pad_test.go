package piecehash

import (
	"bytes"
	"context"
	"crypto/sha1"
	"os"
	"testing"
)

// TestHashPadFiles checks pieces with pad files against SHA-1 over the
// concatenated bytes with the pads' zeros, aligned files on piece
// boundaries, and SHA-256s of the payload files only, for both read paths
// and one or two workers.
func TestHashPadFiles(t *testing.T) {
	const pl = 64 << 10
	dir := t.TempDir()
	files := writeTree(t, dir, []testFile{
		{"a.m3u8", 300}, {"s0.ts", 3*pl + 17}, {"s1.ts", pl}, {"s2.ts", 2<<20 + 5}, {"t.txt", 9}, {"s3.ts", 1},
	})
	aligned, pad := AlignFiles(files, pl, func(i int) bool { return i != 0 && i != 4 })
	var stream []byte
	var off int64
	var pads int
	for _, f := range aligned {
		if f.Pad {
			pads++
			if off%pl == 0 || (off+f.Size)%pl != 0 {
				t.Fatalf("pad of %d at %d does not end a piece", f.Size, off)
			}
			stream = append(stream, make([]byte, f.Size)...)
		} else {
			b, err := os.ReadFile(f.Source)
			if err != nil {
				t.Fatal(err)
			}
			stream = append(stream, b...)
		}
		off += f.Size
	}
	if pads != 3 || pad == 0 { // s2 follows s1 (a whole piece) without one
		t.Fatalf("%d pads (%d bytes), want 3", pads, pad)
	}
	var want []byte
	for i := 0; i < len(stream); i += pl {
		s := sha1.Sum(stream[i:min(i+pl, len(stream))])
		want = append(want, s[:]...)
	}
	for _, mm := range []bool{true, false} {
		setUseMmap(t, mm)
		for _, workers := range []int{1, 2} {
			r, err := Hash(context.Background(), aligned, Options{PieceLength: pl, Workers: workers})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(r.Pieces, want) || r.TotalSize != int64(len(stream)) {
				t.Fatalf("mmap=%v workers=%d: pieces differ from SHA-1 over the padded stream", mm, workers)
			}
			for i, f := range aligned {
				if !f.Pad && r.SHA256[i] != fileSHA256(t, f.Source) {
					t.Fatalf("SHA-256 of %s wrong", f.Source)
				}
			}
		}
	}
	info := BuildInfo("v1", aligned, &Result{PieceLength: pl, Pieces: want})
	for i, f := range info.Files {
		if aligned[i].Pad != (f.Attr == "p") {
			t.Fatalf("file %d attr %q", i, f.Attr)
		}
	}
}
