package interop

import (
	"context"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

// TestAria2ViaOriginTrackerAndWebSeed has aria2 download a release the way
// a foreign client would: from the .torrent as published, announcing to
// the origin's tracker (which hands out the origin's seeder) with the
// origin's web seed in the url-list. Either source will do (on loopback
// the web seed usually wins); the files must match the signed manifest.
func TestAria2ViaOriginTrackerAndWebSeed(t *testing.T) {
	aria2 := testenv.RequireTool(t, "aria2c")
	s := newSwarm(t, localswarm.OriginOptions{Seed: true})
	res := publishSample(t, s, true)
	if !strings.HasPrefix(res.WebSeed, s.OriginURL+"/") {
		t.Fatalf("web seed %q is not on the origin %s", res.WebSeed, s.OriginURL)
	}
	waitOriginAnnounced(t, s, res)
	dir := t.TempDir()
	runAria2(t, aria2, filepath.Join(s.CatalogDir, filepath.FromSlash(res.TorrentKey)), dir)
	eg := s.Origin.Egress()
	t.Logf("origin sent %d bytes as web seed and %d as a peer (release %d)", eg.WebSeed, eg.Peer, res.TotalSize)
	if eg.Total() < res.TotalSize {
		t.Errorf("origin sent %d payload bytes, release is %d", eg.Total(), res.TotalSize)
	}
	checkFiles(t, filepath.Join(dir, relVersion), readManifest(t, s.Store, relName, relVersion))
}

// TestAria2FromOriginSeeder takes the url-list out of the .torrent, so
// that aria2 can only get the release from the origin's seeder, which it
// finds through the origin's tracker.
func TestAria2FromOriginSeeder(t *testing.T) {
	aria2 := testenv.RequireTool(t, "aria2c")
	for _, tc := range []struct {
		name      string
		withEmpty bool
	}{{"plain", false}, {"zero-length-file", true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSwarm(t, localswarm.OriginOptions{Seed: true})
			res := publishSample(t, s, tc.withEmpty)
			waitOriginAnnounced(t, s, res)

			torrentPath := withoutURLList(t, filepath.Join(s.CatalogDir, filepath.FromSlash(res.TorrentKey)), res.InfoHash)

			dir := t.TempDir()
			runAria2(t, aria2, torrentPath, dir)
			eg := s.Origin.Egress()
			t.Logf("origin sent %d bytes as a peer and %d as web seed (release %d)", eg.Peer, eg.WebSeed, res.TotalSize)
			if eg.WebSeed != 0 {
				t.Errorf("origin web seed sent %d bytes; the torrent had no url-list", eg.WebSeed)
			}
			if eg.Peer < res.TotalSize {
				t.Errorf("origin seeder sent %d bytes, release is %d", eg.Peer, res.TotalSize)
			}
			checkFiles(t, filepath.Join(dir, relVersion), readManifest(t, s.Store, relName, relVersion))
		})
	}
}

// waitOriginAnnounced waits until the origin's seeder has announced the
// release to its tracker, so that a client announcing next is told of it.
func waitOriginAnnounced(t *testing.T, s *localswarm.Swarm, res *publish.PublishResult) {
	t.Helper()
	var ih [20]byte
	if b, err := hex.DecodeString(res.InfoHash); err != nil || len(b) != 20 {
		t.Fatalf("infohash %q: %v", res.InfoHash, err)
	} else {
		copy(ih[:], b)
	}
	const wait = 15 * time.Second
	deadline := time.Now().Add(wait)
	for len(s.Origin.Tracker().Peers(ih)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the origin did not announce %s within %v", res.InfoHash, wait)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("origin seeds on port %d", s.Origin.PeerPort())
}

// runAria2 downloads torrentPath into dir with aria2c on loopback only,
// without DHT, LPD or PEX, and fails the test unless it completes.
func runAria2(t *testing.T, aria2, torrentPath, dir string) {
	t.Helper()
	logFile := filepath.Join(t.TempDir(), "aria2.log")
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, aria2,
		"--no-conf",
		"--enable-dht=false", "--enable-dht6=false",
		"--bt-enable-lpd=false", "--enable-peer-exchange=false",
		"--seed-time=0",
		"--interface=127.0.0.1", "--disable-ipv6=true",
		"--dir", dir,
		"--bt-tracker-connect-timeout=5",
		"--summary-interval=0",
		"--file-allocation=none",
		"--log", logFile, "--log-level=info",
		torrentPath)
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	elapsed := time.Since(start)
	showLog := func() {
		log, _ := os.ReadFile(logFile)
		t.Logf("aria2c output:\n%s\nlog (tail):\n%s", out, tail(log, 32<<10))
	}
	if err != nil {
		showLog()
		t.Fatalf("aria2c failed after %v: %v", elapsed.Round(time.Millisecond), err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			showLog()
		}
	})
	t.Logf("aria2c finished in %v", elapsed.Round(time.Millisecond))
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
