package btclient

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

// TestFileStoragePadFiles: BEP 47 pad files read as zeros whatever a
// peer wrote there, are never created on disk, and do not keep a piece
// from counting as on disk.
func TestFileStoragePadFiles(t *testing.T) {
	const pl = 16 << 10
	layout := []struct {
		path string
		size int
		pad  bool
	}{{"a.m3u8", 100, false}, {"", pl - 100, true}, {"s0.ts", pl + 5, false}, {"", pl - 5, true}, {"s1.ts", 10, false}}
	info := &metainfo.Info{Name: "v1", PieceLength: pl}
	var zeroed, dirty []byte
	for _, f := range layout {
		b := make([]byte, f.size)
		rand.Read(b)
		dirty = append(dirty, b...)
		if f.pad {
			// Peers may send anything here; the pieces hash zeros.
			zeroed = append(zeroed, make([]byte, f.size)...)
			info.Files = append(info.Files, metainfo.FileInfo{Path: []string{".pad", fmt.Sprint(f.size)}, Length: int64(f.size),
				ExtendedFileAttrs: metainfo.ExtendedFileAttrs{Attr: "p"}})
			continue
		}
		zeroed = append(zeroed, b...)
		info.Files = append(info.Files, metainfo.FileInfo{Path: []string{f.path}, Length: int64(f.size)})
	}
	for i := 0; i < len(zeroed); i += pl {
		s := sha1.Sum(zeroed[i:min(i+pl, len(zeroed))])
		info.Pieces = append(info.Pieces, s[:]...)
	}
	dir := t.TempDir()
	cl, ti := openTorrent(t, dir, info, storage.NewMapPieceCompletion())
	defer cl.Close()
	writeAll(t, ti, info, dirty, 4<<10)
	checkPieces(t, ti, info, zeroed)
	if _, err := os.Stat(filepath.Join(dir, "v1", ".pad")); !os.IsNotExist(err) {
		t.Fatalf("a .pad directory was created: %v", err)
	}
	var off int
	for _, f := range layout {
		if !f.pad {
			b, err := os.ReadFile(filepath.Join(dir, "v1", f.path))
			if err != nil || !bytes.Equal(b, zeroed[off:off+f.size]) {
				t.Fatalf("%s on disk differs: %v", f.path, err)
			}
		}
		off += f.size
	}
	for i := range info.NumPieces() {
		p := ti.Piece(info.Piece(i))
		if err := p.MarkComplete(); err != nil {
			t.Fatal(err)
		}
		if c := p.Completion(); !c.Ok || !c.Complete {
			t.Fatalf("piece %d: completion %+v after MarkComplete", i, c)
		}
	}
}
