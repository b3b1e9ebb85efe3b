package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	catalogpublish "github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/internal/mediaserve"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
	"github.com/swarmship/swarmship/policy"
)

// makeHLS writes a generated HLS stream (lavfi test pattern and a sine
// tone, H.264 + AAC in .ts segments of 2 s) of the given length into a new
// directory and returns it. Small frames keep it a few hundred KiB.
func makeHLS(t *testing.T, seconds int) string {
	t.Helper()
	ffmpeg := testenv.RequireTool(t, "ffmpeg")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc=size=320x180:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440",
		"-t", fmt.Sprint(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "50",
		"-c:a", "aac", "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod",
		"-hls_segment_filename", filepath.Join(dir, "seg%03d.ts"), filepath.Join(dir, "index.m3u8"))
	testenv.DieWithParent(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	return dir
}

// publishDir publishes every file of dir as name@version on channel.
func publishDir(t *testing.T, sw *localswarm.Swarm, dir, name, version, channel string) *catalog.Manifest {
	t.Helper()
	return publishDirPieces(t, sw, dir, name, version, channel, 0)
}

// publishDirPieces is publishDir with a piece length (0: publish chooses).
func publishDirPieces(t *testing.T, sw *localswarm.Swarm, dir, name, version, channel string, pieceLength int64) *catalog.Manifest {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range entries {
		paths = append(paths, filepath.Join(dir, e.Name()))
	}
	if _, err := sw.PublishWith(context.Background(), catalogpublish.PublishOptions{Name: name, Version: version, Paths: paths, Channels: []string{channel}, PieceLength: pieceLength}); err != nil {
		t.Fatal(err)
	}
	b, err := catalog.ReadAll(context.Background(), sw.Store, catalog.ManifestKey(name, version), catalog.MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	m, err := catalog.ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mediaGet(t *testing.T, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	client := &http.Client{Timeout: 90 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// An agent with media.listen serves its active HLS release to a site's
// player: a headless Chromium page with hls.js, loaded from another origin
// (CORS), plays the stream from the agent's stable URL and its playback
// advances; the agent answers with the headers players and caches rely on.
func TestMediaPlayedFromAgentInBrowser(t *testing.T) {
	chromium := testenv.RequireTool(t, "chromium")
	modules := testenv.RequireNPMPackages(t, filepath.Join("testdata", "hlsjs"))
	hlsJS, err := os.ReadFile(filepath.Join(modules, "hls.js", "dist", "hls.min.js"))
	if err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(filepath.Join("testdata", "hlsjs", "player.html"))
	if err != nil {
		t.Fatal(err)
	}
	sw := newSwarm(t, localswarm.OriginOptions{})
	m := publishDir(t, sw, makeHLS(t, 20), "show", "1", "signage")

	results := make(chan playResult, 64)
	page := httptest.NewServer(playerPage(html, hlsJS, results))
	t.Cleanup(page.Close)

	// A software release the agent also holds: no playlist, not served.
	app := publish(t, sw, "app", "1.0", 7, map[string]int64{"app.bin": 100 << 10}, "stable")
	cfg := sw.AgentConfig("player-site", "store-1", "eu", agent.Subscription{Name: "show", Channel: "signage"}, agent.Subscription{Name: "app", Channel: "stable"})
	cfg.Media = mediaserve.Config{Listen: "127.0.0.1:0", AllowOrigins: []string{page.URL}}
	ra, err := sw.StartAgent(context.Background(), "player-site", cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitActive(t, "show", "1", 60*time.Second, ra)
	waitActive(t, "app", "1.0", 60*time.Second, ra)
	var base string
	for deadline := time.Now().Add(30 * time.Second); base == ""; time.Sleep(20 * time.Millisecond) {
		if addr := ra.Agent.MediaAddr(); addr != "" {
			base = "http://" + addr
		} else if time.Now().After(deadline) {
			t.Fatal("media server not listening")
		}
	}

	t.Run("headers", func(t *testing.T) {
		noRedirect := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noRedirect.Get(base + "/media/show/index.m3u8")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/media/show@1/index.m3u8" {
			t.Fatalf("stable URL: %s -> %q", resp.Status, resp.Header.Get("Location"))
		}
		var seg catalog.ManifestFile
		for _, f := range m.Files {
			if strings.HasSuffix(f.Path, ".ts") {
				seg = f
				break
			}
		}
		resp, body := mediaGet(t, base+"/media/show/"+seg.Path, nil)
		if resp.StatusCode != 200 || sha256Hex(body) != seg.SHA256 {
			t.Fatalf("segment: %s, %d bytes", resp.Status, len(body))
		}
		for k, want := range map[string]string{"Content-Type": "video/mp2t", "ETag": `"sha256-` + seg.SHA256 + `"`, "Cache-Control": "public, max-age=31536000, immutable"} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s: %q, want %q", k, got, want)
			}
		}
		resp, body = mediaGet(t, base+"/media/show@1/"+seg.Path, map[string]string{"Range": "bytes=188-375"})
		if resp.StatusCode != http.StatusPartialContent || len(body) != 188 || body[0] != 0x47 {
			t.Errorf("Range of a segment: %s, %d bytes", resp.Status, len(body))
		}
		resp, _ = mediaGet(t, base+"/media/show@1/index.m3u8", nil)
		if got := resp.Header.Get("Content-Type"); got != "application/vnd.apple.mpegurl" {
			t.Errorf("playlist Content-Type %q", got)
		}
		resp, _ = mediaGet(t, base+"/media/show@1/../../state/agent.db", nil)
		if resp.StatusCode == 200 {
			t.Error("a path out of the release was served")
		}
		for _, u := range []string{"/media/app@1.0/" + app.Files[0].Path, "/media/app/" + app.Files[0].Path} {
			if resp, _ := mediaGet(t, base+u, nil); resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s (a release without a playlist): %s", u, resp.Status)
			}
		}
	})

	t.Run("chromium", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		src := base + "/media/show/index.m3u8"
		cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu",
			"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
			"--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required", "--mute-audio",
			"--user-data-dir="+t.TempDir(), page.URL+"/?src="+src)
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) } // lets it end its children
		cmd.WaitDelay = 10 * time.Second
		stderr := &testenv.SyncBuffer{}
		cmd.Stderr = stderr
		testenv.DieWithParent(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		defer func() {
			cancel()
			<-exited
		}()
		var last playResult
		timeout := time.After(2 * time.Minute)
		for {
			select {
			case r := <-results:
				last = r
				if r.Fatal != "" {
					t.Fatalf("player error: %s (log %v)", r.Fatal, r.Log)
				}
				if r.Time >= 4 {
					served := ra.Agent.MediaStats().Served.Load()
					t.Logf("playback at %.2fs after %.1fs, %d media files served, player log %v", r.Time, r.Elapsed, served, r.Log)
					if served < 3 {
						t.Errorf("the agent served %d files: the player did not play from it", served)
					}
					return
				}
			case err := <-exited:
				exited <- err
				t.Fatalf("chromium exited: %v (last report %+v)\n%s", err, last, truncate(stderr.String(), 3000))
			case <-timeout:
				t.Fatalf("playback did not advance: last report %+v", last)
			}
		}
	})
}

// playResult is what the player page reports.
type playResult struct {
	Time    float64  `json:"t"`
	Elapsed float64  `json:"elapsed"`
	Fatal   string   `json:"fatal"`
	Log     []string `json:"log"`
}

// playerPage serves the player (testdata/hlsjs/player.html: it plays ?src=
// with hls.js and POSTs its playback time to /result every half second).
func playerPage(html, hlsJS []byte, results chan<- playResult) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hls.min.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		w.Write(hlsJS)
	})
	mux.HandleFunc("POST /result", func(w http.ResponseWriter, r *http.Request) {
		var res playResult
		if json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&res) == nil {
			select {
			case results <- res:
			default:
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(html)
	})
	return mux
}

// A player asking for a segment of a release still downloading waits for
// that segment's pieces (raised to the highest priority) and gets the
// verified segment. The agent's download is rate limited and the origin
// seeds over BitTorrent, where priorities decide; whether the segment
// came before the release completed is logged, not asserted: the library
// keeps many requests in flight to a peer, which answers them in order,
// so on a loaded machine a raised piece may wait behind them (the test
// below asserts it on the origin path).
func TestMediaSegmentServedWhileDownloading(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{Seed: true})
	m := publishDirPieces(t, sw, makeHLS(t, 20), "show", "1", "signage", 16<<10)
	// The whole release takes about TotalSize/rate seconds; the last
	// segment (and the pieces it shares with its neighbour) a fraction.
	const rate = 64 << 10
	if m.TotalSize < 8*rate {
		t.Fatalf("release of %d bytes is too small for this test", m.TotalSize)
	}
	cfg := sw.AgentConfig("player-site", "store-1", "eu", agent.Subscription{Name: "show", Channel: "signage"})
	cfg.Media = mediaserve.Config{Listen: "127.0.0.1:0", WaitTimeout: 2 * time.Minute}
	cfg.Rates = agent.RatesConfig{Profiles: []policy.RateProfile{{Name: "slow", Down: rate}}, Default: "slow"}
	lastSegmentBeforeRelease(t, sw, m, cfg, false)
}

// With no peer that has the segment (an agent alone, the origin not
// seeding) and the offloader fetching its shard in piece order from a slow
// origin, a waiting player's pieces are fetched from the origin at once.
func TestMediaSegmentFetchedFromOriginForWaitingPlayer(t *testing.T) {
	// Every payload request takes 600 ms and the offloader keeps one
	// open: the release takes pieces x 0.6 s (about 23 s) in order; the
	// last segment's 5 pieces about 3 s after the 3 s grace.
	sw := newSwarm(t, localswarm.OriginOptions{WrapHandler: slowPayload(600 * time.Millisecond)})
	m := publishDirPieces(t, sw, makeHLS(t, 20), "show", "1", "signage", 16<<10)
	if pieces := (m.TotalSize + m.PieceLength - 1) / m.PieceLength; pieces < 24 {
		t.Fatalf("release has %d pieces, too few for this test", pieces)
	}
	cfg := sw.AgentConfig("player-site", "store-1", "eu", agent.Subscription{Name: "show", Channel: "signage"})
	cfg.Media = mediaserve.Config{Listen: "127.0.0.1:0", WaitTimeout: 2 * time.Minute}
	cfg.Offload.Parallel = 1
	lastSegmentBeforeRelease(t, sw, m, cfg, true)
}

// lastSegmentBeforeRelease starts an agent with cfg, asks it for the last
// segment of m as soon as the stable URL leads to m, and checks that the
// verified segment came (with before, while the release was still
// downloading).
func lastSegmentBeforeRelease(t *testing.T, sw *localswarm.Swarm, m *catalog.Manifest, cfg *agent.Config, before bool) {
	t.Helper()
	var files []catalog.ManifestFile
	for _, f := range m.Files {
		if strings.HasSuffix(f.Path, ".ts") {
			files = append(files, f)
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	last := files[len(files)-1]
	ra, err := sw.StartAgent(context.Background(), "player-site", cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := ra.Agent.MediaHandler()
	// Until the release is known the stable URL has nowhere to go.
	var target string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/media/show/"+last.Path, nil)
		req.RemoteAddr = "127.0.0.1:40000"
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusFound {
			target = rec.Header().Get("Location")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stable URL never redirected: %d %s", rec.Code, rec.Body.String())
		}
	}
	if target != "/media/show@1/"+last.Path {
		t.Fatalf("stable URL -> %q while nothing is active", target)
	}
	start := time.Now()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", target, nil)
	req.RemoteAddr = "127.0.0.1:40000"
	h.ServeHTTP(rec, req)
	took := time.Since(start)
	st := releaseStatus(ra, "show", "1")
	t.Logf("last segment (%d bytes) served in %v; release then %s, %d of %d bytes", last.Size, took.Round(time.Millisecond), st.Phase, st.Completed, m.TotalSize)
	if rec.Code != 200 || sha256Hex(rec.Body.Bytes()) != last.SHA256 {
		t.Fatalf("segment while downloading: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	if before && (st.Phase != agent.PhaseDownloading || st.Completed >= m.TotalSize) {
		t.Errorf("the segment came only once the release was complete (%s, %d of %d bytes)", st.Phase, st.Completed, m.TotalSize)
	}
	if ra.Agent.MediaStats().Waited.Load() < 1 {
		t.Error("the request did not wait for pieces")
	}
}
