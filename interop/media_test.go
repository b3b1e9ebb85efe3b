package interop

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
	"github.com/swarmship/swarmship/seeder/tracker"
)

const (
	mediaName    = "show"
	mediaVersion = "1"
)

// generateMedia makes the small HLS ladder the media interop tests share.
func generateMedia(t *testing.T) string {
	t.Helper()
	testenv.RequireFFmpeg(t)
	dir := t.TempDir()
	testenv.GenerateHLS(t, dir, testenv.MediaOptions{Seconds: 6, CBR: true, Renditions: []testenv.Rendition{
		{Name: "hi", Width: 480, Height: 270, VideoKbps: 4000},
		{Name: "lo", Width: 320, Height: 180, VideoKbps: 1500},
	}})
	return dir
}

// publishMedia publishes src with --media as show@1 on channel stable and
// checks that the torrent has pad files.
func publishMedia(t *testing.T, s *localswarm.Swarm, src string) *publish.PublishResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.PublishWith(ctx, publish.PublishOptions{Name: mediaName, Version: mediaVersion, Paths: []string{src}, Channels: []string{"stable"}, Media: true})
	if err != nil {
		t.Fatalf("publish --media: %v", err)
	}
	mi, err := metainfo.LoadFromFile(filepath.Join(s.CatalogDir, filepath.FromSlash(res.TorrentKey)))
	if err != nil {
		t.Fatal(err)
	}
	info, err := mi.UnmarshalInfo()
	if err != nil {
		t.Fatal(err)
	}
	pads := 0
	for _, f := range info.Files {
		if f.Attr == "p" {
			pads++
		}
	}
	if pads == 0 || pads != res.Media.PadFiles {
		t.Fatalf("torrent has %d pad files, publish reported %d", pads, res.Media.PadFiles)
	}
	return res
}

// TestMediaForeignFromWebSeed: every foreign client downloads a media
// release (pad files, attr "p") from the origin's web seed alone, checks
// every piece and ends with the signed files. Clients that treat pads as
// files fetch <version>/.pad/<N>, which the web seed answers with zeros.
func TestMediaForeignFromWebSeed(t *testing.T) {
	src := generateMedia(t)
	for _, c := range foreignClients() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newSwarm(t, localswarm.OriginOptions{})
			res := publishMedia(t, s, src)
			dir := t.TempDir()
			wait := c.start(t, filepath.Join(s.CatalogDir, filepath.FromSlash(res.TorrentKey)), res.InfoHash, dir, false)
			wait(t, clientTimeout)
			checkClientFiles(t, c, filepath.Join(dir, mediaVersion), readManifest(t, s.Store, mediaName, mediaVersion))
			eg := s.Origin.Egress()
			t.Logf("%s: origin web seed sent %d bytes (payload %d, pads %d)", c.name, eg.WebSeed, res.TotalSize, res.Media.PadBytes)
			if eg.WebSeed < res.TotalSize {
				t.Errorf("origin web seed sent %d bytes, release is %d", eg.WebSeed, res.TotalSize)
			}
		})
	}
}

// TestMediaForeignLeechesFromAgents: every foreign client downloads a
// media release from swarmship agents only (no url-list, no origin
// seeder): agents serve pad ranges as zeros from storage that holds none.
func TestMediaForeignLeechesFromAgents(t *testing.T) {
	src := generateMedia(t)
	for _, c := range foreignClients() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newSwarm(t, localswarm.OriginOptions{})
			res := publishMedia(t, s, src)
			torrent := withoutURLList(t, filepath.Join(s.CatalogDir, filepath.FromSlash(res.TorrentKey)), res.InfoHash)
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), agentTimeout)
			defer cancel()
			var agents []*localswarm.RunningAgent
			startAgents := func(n int) {
				for i := range n {
					name := "agent" + strconv.Itoa(i+1)
					cfg := s.AgentConfig(name, "store-"+strconv.Itoa(i+1), "eu", agent.Subscription{Name: mediaName, Channel: "stable"})
					ra, err := s.StartAgent(ctx, name, cfg)
					if err != nil {
						t.Fatal(err)
					}
					agents = append(agents, ra)
				}
				if err := localswarm.WaitActive(ctx, mediaName, mediaVersion, agents...); err != nil {
					logAgents(t, agents)
					t.Fatal(err)
				}
			}
			if c.dialsLoopback {
				startAgents(2)
				webBefore := s.Origin.Egress().WebSeed
				c.start(t, torrent, res.InfoHash, dir, false)(t, clientTimeout)
				if d := s.Origin.Egress().WebSeed - webBefore; d != 0 {
					t.Errorf("origin web seed sent %d bytes while the client downloaded", d)
				}
			} else {
				wait := c.start(t, torrent, res.InfoHash, dir, false)
				waitTrackerPeer(t, s, res.InfoHash, c.name+" leeching", clientTimeout,
					func(p tracker.Peer) bool { return isForeign(p) && p.Left > 0 })
				startAgents(1)
				wait(t, clientTimeout)
			}
			checkClientFiles(t, c, filepath.Join(dir, mediaVersion), readManifest(t, s.Store, mediaName, mediaVersion))
			if eg := s.Origin.Egress(); eg.Peer != 0 {
				t.Errorf("origin sent %d bytes as a peer; it runs no seeder", eg.Peer)
			}
		})
	}
}
