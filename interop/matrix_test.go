package interop

import (
	"path/filepath"
	"testing"

	"github.com/swarmship/swarmship/internal/localswarm"
)

// The interop matrix: each foreign client of clients_test.go (aria2,
// libtorrent, Transmission, qBittorrent) downloads from swarmship's web
// seed, leeches from swarmship agents, and seeds to a swarmship agent. Each
// subtest runs its own origin, agents and client, in parallel with the
// other clients' subtests; a missing client skips its subtest (fails in CI).

// TestForeignFromWebSeed: each client downloads the release as published
// (url-list on the origin, announce to its tracker, which has no seeder to
// offer), so every byte comes from the web seed.
func TestForeignFromWebSeed(t *testing.T) {
	for _, c := range foreignClients() {
		if c.name == "libtorrent" {
			continue // TestLibtorrentWebSeedDirCatalog, with per-peer checks
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newSwarm(t, localswarm.OriginOptions{})
			res := publish(t, s, true)
			if want := s.OriginURL + "/data/" + relName + "/"; res.WebSeed != want {
				t.Fatalf("web seed %q, want %q", res.WebSeed, want)
			}
			dir := t.TempDir()
			wait := c.start(t, filepath.Join(s.CatalogDir, filepath.FromSlash(res.TorrentKey)), res.InfoHash, dir, false)
			wait(t, clientTimeout)
			checkClientFiles(t, c, filepath.Join(dir, relVersion), readManifest(t, s.Store, relName, relVersion))
			eg := s.Origin.Egress()
			t.Logf("origin sent %d bytes as web seed, %d as a peer (release %d)", eg.WebSeed, eg.Peer, res.TotalSize)
			if eg.Peer != 0 {
				t.Errorf("origin sent %d bytes as a peer; it runs no seeder", eg.Peer)
			}
			if eg.WebSeed < res.TotalSize {
				t.Errorf("origin web seed sent %d bytes, release is %d", eg.WebSeed, res.TotalSize)
			}
		})
	}
}
