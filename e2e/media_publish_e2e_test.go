package e2e

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	pub "github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

// A media release (HLS ladder, segments on piece boundaries with pad
// files) reaches three agents through the origin and each other; every
// agent activates it with the signed SHA-256s and no pad file lands in
// any cache.
func TestMediaReleaseAgentsCompleteAndActivate(t *testing.T) {
	src := t.TempDir()
	testenv.GenerateHLS(t, src, testenv.MediaOptions{Seconds: 6, CBR: true, Renditions: []testenv.Rendition{
		{Name: "hi", Width: 480, Height: 270, VideoKbps: 4000},
		{Name: "lo", Width: 320, Height: 180, VideoKbps: 1500},
	}})
	sw := newSwarm(t, localswarm.OriginOptions{})
	res, err := sw.PublishWith(context.Background(), pub.PublishOptions{Name: "show", Version: "1", Paths: []string{src}, Channels: []string{"stable"}, Media: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Media == nil || res.Media.PadFiles == 0 {
		t.Fatalf("no pads in the layout: %+v", res.Media)
	}
	b, err := catalog.ReadAll(context.Background(), sw.Store, catalog.ManifestKey("show", "1"), catalog.MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	m, err := catalog.ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	agents := startAgents(t, sw, 3, agent.Subscription{Name: "show", Channel: "stable"}, nil)
	waitActive(t, "show", "1", 90*time.Second, agents...)
	for _, ra := range agents {
		checkActiveFiles(t, ra, m)
		filepath.WalkDir(ra.Config.CacheDir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.Contains(p, string(filepath.Separator)+".pad") {
				t.Errorf("%s: pad path %s in the cache", ra.Name, p)
			}
			return nil
		})
		if rs := releaseStatus(ra, "show", "1"); rs.Phase != agent.PhaseActive {
			t.Errorf("%s: state %s, want active", ra.Name, rs.Phase)
		}
	}
	t.Logf("%d bytes, %d pad bytes, origin egress %d bytes", m.TotalSize, res.Media.PadBytes, sw.Origin.Egress().Total())
}

// A media release in a private S3 bucket behind the origin: agents
// complete it through the origin (payload redirected to presigned URLs,
// pads answered by the origin itself as zeros).
func TestMediaS3BehindOrigin(t *testing.T) {
	src := t.TempDir()
	testenv.GenerateHLS(t, src, testenv.MediaOptions{Seconds: 4, CBR: true, FMP4: true})
	v := testenv.StartVersityGW(t)
	store := s3Store(t, v)
	sw := newSwarm(t, localswarm.OriginOptions{Store: store})
	if _, err := sw.PublishWith(context.Background(), pub.PublishOptions{Name: "show", Version: "1", Paths: []string{src}, Channels: []string{"stable"}, Media: true}); err != nil {
		t.Fatal(err)
	}
	b, err := catalog.ReadAll(context.Background(), store, catalog.ManifestKey("show", "1"), catalog.MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	m, err := catalog.ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	n := m.PadSizes()[0]
	resp, err := http.Get(sw.OriginURL + "/" + catalog.PadKey("show", "1", n))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || int64(len(body)) != n || len(bytes.Trim(body, "\x00")) != 0 {
		t.Fatalf("origin pad %d: %s, %d bytes", n, resp.Status, len(body))
	}
	agents := startAgents(t, sw, 2, agent.Subscription{Name: "show", Channel: "stable"}, nil)
	waitActive(t, "show", "1", 90*time.Second, agents...)
	for _, ra := range agents {
		checkActiveFiles(t, ra, m)
	}
}
