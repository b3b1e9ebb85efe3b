package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

// The torrent storage syncs nothing per piece, so a crash can lose bytes
// of pieces the completion database already records as complete. Such a
// release must be caught by the SHA-256 check and downloaded again, never
// activated. Simulated here: stop an agent mid-download, zero a piece it
// recorded complete (the file keeps its size), restart it.
func TestAgentRedownloadsBytesLostAfterCompletion(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{WrapHandler: slowPayload(40 * time.Millisecond)})
	m := publish(t, sw, "app", "1.0", 4, release24MiB, "stable")
	sub := agent.Subscription{Name: "app", Channel: "stable"}
	cfg := sw.AgentConfig("solo", "site-1", "eu", sub)
	cfg.Offload.StartupGrace = 10 * time.Millisecond
	ra, err := sw.StartAgent(context.Background(), "solo", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !testenv.Poll(60*time.Second, 5*time.Millisecond, func() bool { return releaseStatus(ra, "app", "1.0").Completed >= m.TotalSize/3 }) {
		t.Fatal("download made no progress")
	}
	if err := ra.Stop(); err != nil {
		t.Fatal(err)
	}

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

	cfg2 := sw.AgentConfig("solo", "site-1", "eu", sub) // same cache dir
	cfg2.Offload.StartupGrace = 10 * time.Millisecond
	ra2, err := sw.StartAgent(context.Background(), "solo-restarted", cfg2)
	if err != nil {
		t.Fatal(err)
	}
	waitActive(t, "app", "1.0", 120*time.Second, ra2)
	checkActiveFiles(t, ra2, m)
}
