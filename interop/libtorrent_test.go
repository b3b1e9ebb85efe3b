// Package interop checks swarmship against other BitTorrent clients —
// aria2, libtorrent, Transmission and qBittorrent — in each direction the
// client allows:
//
//   - they download releases published by swarmship from the web seed of a
//     directory catalog (served by the origin) or an S3 bucket, and from the
//     origin's seeder found through its tracker;
//   - they download from swarmship agents as plain peers, found through the
//     origin's tracker (or handed to libtorrent directly), with no web seed
//     and no origin seeder to fall back on;
//   - a swarmship agent downloads a release from each of them seeding it,
//     with the origin refusing every payload request, and activates it.
//
// Every file a client downloads is checked against the SHA-256 in the
// signed manifest, and the bytes are accounted for on swarmship's side
// (origin egress, agents' bytes by source and uploads). The matrix of all
// four clients is in matrix_test.go, the clients and their limits in
// clients_test.go (Transmission 3.00 creates no zero-length files and
// ignores loopback peers from trackers, so agents dial it).
//
// The clients are real programs. When one is missing the test skips on a
// developer machine and fails in CI (CI=true); see internal/testenv. All
// traffic stays on 127.0.0.1: the clients listen there, with DHT, local
// peer discovery, peer exchange and port mapping off.
package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

// systemPython is Debian's interpreter, the one python3-libtorrent is built
// for; the python3 on $PATH may be another build that cannot import it.
const systemPython = "/usr/bin/python3"

const (
	relName    = "interop-app"
	relVersion = "1.4.2"
)

// makeRelease writes a small release whose files cross piece boundaries
// (odd sizes, one over 6 MiB), with a nested directory and a name that
// needs URL escaping; withEmpty adds a zero-length file between two others.
// It returns the release directory.
func makeRelease(t *testing.T, withEmpty bool) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "release")
	files := map[string]int{
		"big.bin":            6<<20 + 12345,
		"README.txt":         1000,
		"lib/core.so":        300_007,
		"lib/deep/tiny.cfg":  17,
		"media/intro 01.mp4": 262_145, // one byte over a 256 KiB piece
	}
	if withEmpty {
		// Sorted between big.bin and lib/, inside a piece and a 16 KiB block.
		files["empty.dat"] = 0
	}
	for p, size := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, size)
		rand.Read(b)
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// readManifest reads the release manifest from the catalog.
func readManifest(t *testing.T, store catalog.Store, name, version string) *catalog.Manifest {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := catalog.ReadAll(ctx, store, catalog.ManifestKey(name, version), catalog.MaxManifestSize)
	if err != nil {
		t.Fatalf("read manifest: %v", err)
	}
	m, err := catalog.ParseManifest(b)
	if err != nil {
		t.Fatalf("parse manifest: %v", err)
	}
	return m
}

// checkFiles checks every file of m under root (root/<path>) for size and
// SHA-256.
func checkFiles(t *testing.T, root string, m *catalog.Manifest) {
	t.Helper()
	if len(m.Files) == 0 {
		t.Fatal("manifest lists no files")
	}
	for _, f := range m.Files {
		p := filepath.Join(root, filepath.FromSlash(f.Path))
		fh, err := os.Open(p)
		if err != nil {
			t.Errorf("%s: %v", f.Path, err)
			continue
		}
		h := sha256.New()
		n, err := io.Copy(h, fh)
		fh.Close()
		if err != nil {
			t.Errorf("%s: %v", f.Path, err)
			continue
		}
		if n != f.Size {
			t.Errorf("%s: %d bytes, manifest says %d", f.Path, n, f.Size)
			continue
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
			t.Errorf("%s: sha256 %s, manifest says %s", f.Path, got, f.SHA256)
		}
	}
}

// requireLibtorrent returns the interpreter that can import libtorrent; it
// skips the test when there is none, or fails it in CI.
func requireLibtorrent(t *testing.T) string {
	t.Helper()
	msg := ""
	if _, err := os.Stat(systemPython); err != nil {
		msg = systemPython + " not found"
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, systemPython, "-c", "import libtorrent; print(libtorrent.__version__)").CombinedOutput()
		if err != nil {
			msg = systemPython + " cannot import libtorrent (install python3-libtorrent): " + strings.TrimSpace(string(out))
		}
	}
	if msg == "" {
		return systemPython
	}
	if testenv.InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// ltReport is what testdata/lt_download.py prints.
type ltReport struct {
	OK                   bool     `json:"ok"`
	Error                string   `json:"error"`
	Libtorrent           string   `json:"libtorrent"`
	InfoHash             string   `json:"infohash"`
	Name                 string   `json:"name"`
	NumPieces            int      `json:"num_pieces"`
	TotalSize            int64    `json:"total_size"`
	WebSeeds             []string `json:"web_seeds"`
	Trackers             []string `json:"trackers"`
	URLListInFile        []string `json:"url_list_in_file"`
	HandleURLSeeds       []string `json:"handle_url_seeds"`
	TotalPayloadDownload int64    `json:"total_payload_download"`
	RecheckPiecesHave    int      `json:"recheck_pieces_have"`
	RecheckNumPieces     int      `json:"recheck_num_pieces"`
	DownloadSeconds      float64  `json:"download_seconds"`
	Alerts               []string `json:"alerts"`
	Peers                map[string]struct {
		Downloaded int64  `json:"downloaded"`
		WebSeed    bool   `json:"web_seed"`
		Client     string `json:"client"`
	} `json:"peers"`
}

type ltOptions struct {
	torrent, infoHash, save string
	peers                   []string // host:port
	noWebSeed, noTracker    bool
	utp                     bool // dial over uTP only (outgoing TCP off)
}

// runLibtorrent downloads with the Python helper and returns its report;
// the test fails unless the download completed and every piece passed a
// recheck.
func runLibtorrent(t *testing.T, python string, o ltOptions) ltReport {
	t.Helper()
	const timeout = 20 * time.Second
	args := []string{filepath.Join("testdata", "lt_download.py"),
		"--torrent", o.torrent, "--infohash", o.infoHash, "--save", o.save,
		"--timeout", strconv.Itoa(int(timeout / time.Second))}
	for _, p := range o.peers {
		args = append(args, "--peer", p)
	}
	if o.noWebSeed {
		args = append(args, "--no-webseed")
	}
	if o.noTracker {
		args = append(args, "--no-tracker")
	}
	if o.utp {
		args = append(args, "--utp")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	t.Logf("libtorrent helper ran %v", time.Since(start).Round(time.Millisecond))
	var rep ltReport
	jerr := json.Unmarshal(lastLine(stdout.Bytes()), &rep)
	if err != nil || jerr != nil || !rep.OK {
		t.Fatalf("libtorrent download failed: exit %v, report error %q (json: %v)\nstdout:\n%s\nstderr:\n%s",
			err, rep.Error, jerr, stdout.String(), stderr.String())
	}
	if len(rep.Alerts) > 0 {
		t.Logf("libtorrent error alerts: %q", rep.Alerts)
	}
	if rep.RecheckPiecesHave != rep.NumPieces || rep.RecheckNumPieces != rep.NumPieces || rep.NumPieces == 0 {
		t.Fatalf("after recheck %d/%d pieces, torrent has %d", rep.RecheckPiecesHave, rep.RecheckNumPieces, rep.NumPieces)
	}
	return rep
}

func lastLine(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

// newSwarm starts a localswarm under a temporary directory and closes it
// when the test ends. Its log is shown if the test fails.
func newSwarm(t *testing.T, opts localswarm.OriginOptions) *localswarm.Swarm {
	t.Helper()
	logs := &testenv.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("swarm log:\n%s", logs)
		}
	})
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := localswarm.New(ctx, t.TempDir(), opts, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close swarm: %v", err)
		}
	})
	return s
}

// publishSample publishes makeRelease's files as relName@relVersion on channel
// stable, with the origin as tracker and web seed.
func publishSample(t *testing.T, s *localswarm.Swarm, withEmpty bool) *publish.PublishResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := s.Publish(ctx, relName, relVersion, []string{makeRelease(t, withEmpty)}, "stable")
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return res
}

func TestLibtorrentWebSeedDirCatalog(t *testing.T) {
	python := requireLibtorrent(t)
	s := newSwarm(t, localswarm.OriginOptions{})
	res := publishSample(t, s, true)
	if want := s.OriginURL + "/data/" + relName + "/"; res.WebSeed != want {
		t.Fatalf("web seed %q, want %q", res.WebSeed, want)
	}
	save := t.TempDir()
	rep := runLibtorrent(t, python, ltOptions{
		torrent:  filepath.Join(s.CatalogDir, filepath.FromSlash(res.TorrentKey)),
		infoHash: res.InfoHash,
		save:     save,
	})
	t.Logf("libtorrent %s: %d pieces of %d bytes from %v in %.2fs", rep.Libtorrent, rep.NumPieces, res.PieceLength, rep.WebSeeds, rep.DownloadSeconds)
	for addr, p := range rep.Peers {
		if !p.WebSeed {
			t.Errorf("libtorrent talked to peer %s (%s); want the web seed only", addr, p.Client)
		}
	}
	if got := s.Origin.Egress().WebSeed; got < res.TotalSize {
		t.Errorf("origin web seed sent %d bytes, release is %d", got, res.TotalSize)
	}
	checkFiles(t, filepath.Join(save, relVersion), readManifest(t, s.Store, relName, relVersion))
}

func TestLibtorrentWebSeedS3(t *testing.T) {
	python := requireLibtorrent(t)
	gw := testenv.StartVersityGW(t)
	bucket := gw.NewBucket(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	store, err := catalog.NewS3Store(ctx, catalog.S3Config{
		Endpoint: gw.Endpoint, Bucket: bucket, AccessKey: gw.AccessKey, SecretKey: gw.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SetPublicRead(ctx); err != nil {
		t.Fatal(err)
	}
	keys, err := catalog.GenerateKeys(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Init(ctx, store, keys, catalog.DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	res, err := publish.Publish(ctx, store, keys, publish.PublishOptions{
		Name: relName, Version: relVersion, Paths: []string{makeRelease(t, true)},
	})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if want := gw.Endpoint + "/" + bucket + "/data/" + relName + "/"; res.WebSeed != want {
		t.Fatalf("web seed %q, want %q", res.WebSeed, want)
	}
	tb, err := catalog.ReadAll(ctx, store, res.TorrentKey, catalog.MaxTorrentSize)
	if err != nil {
		t.Fatal(err)
	}
	torrentPath := filepath.Join(t.TempDir(), relVersion+".torrent")
	if err := os.WriteFile(torrentPath, tb, 0o644); err != nil {
		t.Fatal(err)
	}
	save := t.TempDir()
	rep := runLibtorrent(t, python, ltOptions{torrent: torrentPath, infoHash: res.InfoHash, save: save})
	t.Logf("libtorrent %s: %d pieces from %v in %.2fs", rep.Libtorrent, rep.NumPieces, rep.WebSeeds, rep.DownloadSeconds)
	if len(rep.Trackers) != 0 {
		t.Errorf("torrent has trackers %v; published without any", rep.Trackers)
	}
	for addr, p := range rep.Peers {
		if !p.WebSeed {
			t.Errorf("libtorrent talked to peer %s (%s); want the web seed only", addr, p.Client)
		}
	}
	checkFiles(t, filepath.Join(save, relVersion), readManifest(t, store, relName, relVersion))
}

// TestLibtorrentLeechesFromAgents has libtorrent download a release from
// two swarmship agents that hold it, with no web seed and no tracker: the
// agents are its only source. The release with a zero-length file is its
// own subtest, so that a failure there does not hide the plain case.
func TestLibtorrentLeechesFromAgents(t *testing.T) {
	python := requireLibtorrent(t)
	t.Run("plain", func(t *testing.T) { testLeechFromAgents(t, python, false, false) })
	t.Run("zero-length-file", func(t *testing.T) { testLeechFromAgents(t, python, true, false) })
	// Agents with swarm.utp on: libtorrent dials uTP first.
	t.Run("utp", func(t *testing.T) { testLeechFromAgents(t, python, false, true) })
}

func testLeechFromAgents(t *testing.T, python string, withEmpty, utp bool) {
	s := newSwarm(t, localswarm.OriginOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var agents []*localswarm.RunningAgent
	for i, site := range []string{"store-1", "store-2"} {
		cfg := s.AgentConfig("agent"+strconv.Itoa(i+1), site, "eu", agent.Subscription{Name: relName, Channel: "stable"})
		if utp {
			cfg.Swarm.UTP = "on"
		}
		ra, err := s.StartAgent(ctx, "agent"+strconv.Itoa(i+1), cfg)
		if err != nil {
			t.Fatal(err)
		}
		agents = append(agents, ra)
	}
	res := publishSample(t, s, withEmpty)
	if err := localswarm.WaitActive(ctx, relName, relVersion, agents...); err != nil {
		for _, ra := range agents {
			for _, r := range ra.Agent.Status().Releases {
				t.Logf("%s: %s@%s %s, %d of %d bytes, last error %q", ra.Name, r.Name, r.Version, r.Phase, r.Completed, r.Size, r.LastError)
			}
		}
		t.Fatal(err)
	}
	uploaded := func() int64 {
		var n int64
		for _, ra := range agents {
			for _, r := range ra.Agent.Status().Releases {
				if r.Name == relName && r.Version == relVersion {
					n += r.Uploaded
				}
			}
		}
		return n
	}
	before := uploaded()

	var peers []string
	ports := map[string]bool{}
	for _, ra := range agents {
		addr := "127.0.0.1:" + strconv.Itoa(ra.Agent.PeerPort())
		peers = append(peers, addr)
		ports[addr] = true
	}
	save := t.TempDir()
	rep := runLibtorrent(t, python, ltOptions{
		torrent:   filepath.Join(s.CatalogDir, filepath.FromSlash(res.TorrentKey)),
		infoHash:  res.InfoHash,
		save:      save,
		peers:     peers,
		noWebSeed: true,
		noTracker: true,
		utp:       utp,
	})
	if len(rep.URLListInFile) == 0 {
		t.Errorf("the published torrent has no url-list; the test means to remove one")
	}
	if len(rep.WebSeeds) != 0 || len(rep.HandleURLSeeds) != 0 || len(rep.Trackers) != 0 {
		t.Fatalf("libtorrent still had web seeds %v/%v or trackers %v", rep.WebSeeds, rep.HandleURLSeeds, rep.Trackers)
	}
	var fromAgents int64
	for addr, p := range rep.Peers {
		if !ports[addr] || p.WebSeed {
			t.Errorf("libtorrent talked to %s (%s, web seed %v); want only the agents %v", addr, p.Client, p.WebSeed, peers)
		}
		fromAgents += p.Downloaded
	}
	t.Logf("libtorrent %s: %d payload bytes (%d sampled per peer) from agents %v in %.2fs", rep.Libtorrent, rep.TotalPayloadDownload, fromAgents, peers, rep.DownloadSeconds)
	checkFiles(t, filepath.Join(save, relVersion), readManifest(t, s.Store, relName, relVersion))

	// The agents' counters are read live from the torrent client, but the
	// last blocks may still be in flight when libtorrent reports seeding.
	testenv.Poll(5*time.Second, 50*time.Millisecond, func() bool { return uploaded()-before >= res.TotalSize })
	if up := uploaded() - before; up < res.TotalSize {
		t.Errorf("agents uploaded %d bytes to libtorrent, release is %d", up, res.TotalSize)
	} else {
		t.Logf("agents uploaded %d bytes (release %d)", up, res.TotalSize)
	}
}
