package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/release"
	"github.com/swarmship/swarmship/internal/streamverify"
)

// skewedFile reads a file with one byte flipped: what a streaming hash
// sees when a piece is rewritten under it.
type skewedFile struct {
	*os.File
	at int64
}

func (f skewedFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	if f.at >= off && f.at < off+int64(n) {
		p[f.at-off] ^= 0xff
	}
	return n, err
}

// verifyComplete takes what the streaming hash verified, hashes again
// from disk what it did not (so a streamed mismatch alone never fails a
// release), and fails on what really differs from the signed SHA-256.
func TestVerifyCompleteRehashesStreamedMismatch(t *testing.T) {
	files := map[string][]byte{"a.bin": bytes.Repeat([]byte("a"), 5000), "dir/b.bin": bytes.Repeat([]byte("b"), 3000), "empty": nil}
	m := &catalog.Manifest{Name: "app", Version: "1.0", PieceLength: 1024}
	for _, p := range []string{"a.bin", "dir/b.bin", "empty"} {
		sum := sha256.Sum256(files[p])
		m.Files = append(m.Files, catalog.ManifestFile{Path: p, Size: int64(len(files[p])), SHA256: hex.EncodeToString(sum[:])})
		m.TotalSize += int64(len(files[p]))
	}
	for _, tc := range []struct {
		name       string
		skewStream bool // the stream reads b.bin with a flipped byte
		badOnDisk  bool // b.bin on disk differs from the manifest
		wantErr    string
	}{
		{name: "streamed mismatch, good on disk", skewStream: true},
		{name: "bad on disk", skewStream: true, badOnDisk: true, wantErr: "verify dir/b.bin: sha256"},
		{name: "all streamed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &Agent{cache: releaseCache{dir: t.TempDir()}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			dir := a.cache.releaseDir(m.Name, m.Version)
			for p, b := range files {
				fp := filepath.Join(dir, filepath.FromSlash(p))
				if err := os.MkdirAll(filepath.Dir(fp), 0o750); err != nil {
					t.Fatal(err)
				}
				if tc.badOnDisk && p == "dir/b.bin" {
					b = bytes.Repeat([]byte("B"), len(b))
				}
				if err := os.WriteFile(fp, b, 0o640); err != nil {
					t.Fatal(err)
				}
			}
			var sf []streamverify.File
			var off int64
			for _, f := range m.Files {
				want, _ := hex.DecodeString(f.SHA256)
				sf = append(sf, streamverify.File{Offset: off, Length: f.Size, Want: want})
				off += f.Size
			}
			v, err := streamverify.New(streamverify.Config{PieceLength: m.PieceLength, Files: sf,
				Open: func(i int) (streamverify.Handle, error) {
					fh, err := os.Open(filepath.Join(dir, filepath.FromSlash(m.Files[i].Path)))
					if err != nil || !tc.skewStream || i != 1 {
						return fh, err
					}
					return skewedFile{fh, 10}, nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			v.Start(ctx)
			t.Cleanup(func() { cancel(); v.Close() })
			d := &download{ref: release.Ref{Name: m.Name, Version: m.Version}, manifest: m, sv: &streamVerify{v: v, cancel: cancel}}
			err = a.verifyComplete(ctx, d)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("verifyComplete: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("verifyComplete: %v, want %q", err, tc.wantErr)
			}
			if r := v.Result(1); tc.skewStream && !errors.Is(r.Err, streamverify.ErrMismatch) {
				t.Errorf("b.bin: stream result %+v, want a mismatch (test setup)", r)
			}
			if r := v.Result(0); !r.Verified {
				t.Errorf("a.bin not verified by the stream: %+v", r)
			}
		})
	}
}
