package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

// The torrent storage syncs nothing per piece, so a crash can lose bytes
// of pieces the completion database already records as complete. Such a
// release must be caught by the SHA-256 check and downloaded again, never
// activated. Simulated here: stop an agent mid-download, zero a piece it
// recorded complete (the file keeps its size), restart it.
func TestAgentRedownloadsBytesLostAfterCompletion(t *testing.T) {
	d := stopMidDownload(t, 4)
	m, cfg := d.m, d.cfg

	// Find a piece recorded complete and zero its bytes on disk.
	pc, err := storage.NewBoltPieceCompletion(filepath.Join(cfg.CacheDir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	var ih metainfo.Hash
	if err := ih.FromHexString(m.InfoHash); err != nil {
		t.Fatal(err)
	}
	piece := -1
	for i := 0; int64(i)*m.PieceLength < m.TotalSize; i++ {
		if c, err := pc.Get(metainfo.PieceKey{InfoHash: ih, Index: i}); err == nil && c.Ok && c.Complete {
			piece = i
			break
		}
	}
	pc.Close()
	if piece < 0 {
		t.Fatal("no piece recorded complete")
	}
	off := int64(piece) * m.PieceLength
	dir := filepath.Join(cfg.CacheDir, "releases", "app", "1.0")
	for _, f := range m.Files {
		if off >= f.Size {
			off -= f.Size
			continue
		}
		n := min(m.PieceLength, f.Size-off)
		fh, err := os.OpenFile(filepath.Join(dir, filepath.FromSlash(f.Path)), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fh.WriteAt(make([]byte, n), off); err != nil {
			t.Fatal(err)
		}
		fh.Close()
		break
	}

	d.restart(t, 120*time.Second)
}
