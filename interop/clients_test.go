package interop

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
	"github.com/swarmship/swarmship/seeder/tracker"
)

// foreignClient is one BitTorrent client of the interop matrix, behind the
// same few calls.
type foreignClient struct {
	name string
	// dialsLoopback is false for a client that ignores the 127.0.0.1 peers
	// a tracker hands it, so that it never dials them: Transmission 3.00
	// drops loopback addresses from trackers as "martian" (it accepts
	// incoming connections from them). Agents must dial such a client: it
	// announces first, and agents find it in their first announce.
	dialsLoopback bool
	// noEmptyFiles: the client does not create zero-length files
	// (Transmission 3.00); checkClientFiles lets them be missing.
	noEmptyFiles bool
	// start adds the torrent at torrentPath with its files under dir
	// (dir/<torrent name>/…): files already there are checked (seed),
	// missing ones are fetched from the torrent's web seed or tracker; then
	// the client seeds until the test ends. The returned wait blocks until
	// the client has every piece verified and seeds, failing the test after
	// timeout. The client is stopped when the test ends.
	start func(t *testing.T, torrentPath, infoHash, dir string, seed bool) (wait func(t *testing.T, timeout time.Duration))
}

// foreignClients lists the matrix's clients. Each start skips the test when
// its program is missing (fails in CI).
func foreignClients() []foreignClient {
	return []foreignClient{
		{name: "aria2", dialsLoopback: true, start: startAria2Client},
		{name: "libtorrent", dialsLoopback: true, start: startLibtorrentClient},
		{name: "transmission", dialsLoopback: false, noEmptyFiles: true, start: startTransmissionClient},
		{name: "qbittorrent", dialsLoopback: true, start: startQBittorrentClient},
	}
}

// checkClientFiles is checkFiles for what client c downloaded, except
// that a zero-length file may be missing if c does not create them.
func checkClientFiles(t *testing.T, c foreignClient, root string, m *catalog.Manifest) {
	t.Helper()
	if c.noEmptyFiles {
		mm := *m
		mm.Files = nil
		for _, f := range m.Files {
			if f.Size == 0 {
				if _, err := os.Lstat(filepath.Join(root, filepath.FromSlash(f.Path))); errors.Is(err, fs.ErrNotExist) {
					t.Logf("%s did not create the zero-length file %s", c.name, f.Path)
					continue
				}
			}
			mm.Files = append(mm.Files, f)
		}
		m = &mm
	}
	checkFiles(t, root, m)
}

// clientTimeout bounds one client's download or check of the test release
// (~7 MiB on loopback: a second or two when all is well, 10-15 s with
// Transmission 3.00, which reconsiders chokes and interest only every 10 s).
// agentTimeout bounds agents' downloads, which may wait on such a client.
const (
	clientTimeout = 25 * time.Second
	agentTimeout  = 40 * time.Second
)

func startTransmissionClient(t *testing.T, torrentPath, infoHash, dir string, seed bool) func(*testing.T, time.Duration) {
	tr := startTransmission(t)
	tr.add(t, torrentPath, infoHash, dir)
	return func(t *testing.T, timeout time.Duration) { tr.waitComplete(t, infoHash, timeout) }
}

func startQBittorrentClient(t *testing.T, torrentPath, infoHash, dir string, seed bool) func(*testing.T, time.Duration) {
	q := startQBittorrent(t)
	q.add(t, torrentPath, dir)
	return func(t *testing.T, timeout time.Duration) { q.waitComplete(t, infoHash, timeout) }
}

// startAria2Client runs aria2c on loopback without DHT, LPD or PEX. A
// leecher exits once complete (--seed-time=0), which is what wait waits
// for; a seeder checks the files (--check-integrity) and seeds until
// killed, and aria2 has nothing to wait on without its RPC: the test sees
// it seed in the tracker.
func startAria2Client(t *testing.T, torrentPath, infoHash, dir string, seed bool) func(*testing.T, time.Duration) {
	aria2 := testenv.RequireTool(t, "aria2c")
	logFile := filepath.Join(t.TempDir(), "aria2.log")
	args := []string{"--no-conf",
		"--enable-dht=false", "--enable-dht6=false",
		"--bt-enable-lpd=false", "--enable-peer-exchange=false",
		"--interface=127.0.0.1", "--disable-ipv6=true",
		"--dir", dir,
		"--bt-tracker-connect-timeout=5",
		"--summary-interval=0",
		"--file-allocation=none",
		"--log", logFile, "--log-level=info",
	}
	if seed {
		args = append(args, "--check-integrity=true", "--bt-seed-unverified=false", "--seed-ratio=0.0")
	} else {
		args = append(args, "--seed-time=0")
	}
	p := testenv.StartProcess(t, "", aria2, append(args, torrentPath)...)
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(logFile)
			t.Logf("aria2 log (tail):\n%s", tail(log, 32<<10))
		}
	})
	start := time.Now()
	return func(t *testing.T, timeout time.Duration) {
		if seed {
			return
		}
		if err := p.Wait(timeout); err != nil {
			t.Fatalf("aria2c: %v", err)
		}
		t.Logf("aria2c finished in %v", time.Since(start).Round(time.Millisecond))
	}
}

func startLibtorrentClient(t *testing.T, torrentPath, infoHash, dir string, seed bool) func(*testing.T, time.Duration) {
	python := requireLibtorrent(t)
	s := startLTSession(t, python, torrentPath, infoHash, dir)
	return func(t *testing.T, timeout time.Duration) { s.waitSeeding(t, timeout) }
}

// ltSession runs testdata/lt_session.py: one torrent in libtorrent,
// seeding until its stdin closes.
type ltSession struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan ltEvent // stdout lines, in order; closed once the helper exited
	stderr *testenv.SyncBuffer
	done   chan struct{}
	final  *ltEvent
}

// ltEvent is one line of lt_session.py's output.
type ltEvent struct {
	Event                string   `json:"event"`
	OK                   bool     `json:"ok"`
	Error                string   `json:"error"`
	Port                 int      `json:"port"`
	Seconds              float64  `json:"seconds"`
	NumPieces            int      `json:"num_pieces"`
	PiecesHave           int      `json:"pieces_have"`
	TotalPayloadDownload int64    `json:"total_payload_download"`
	TotalPayloadUpload   int64    `json:"total_payload_upload"`
	Alerts               []string `json:"alerts"`
	Tracker              []string `json:"tracker"`
	Peers                map[string]struct {
		Downloaded int64  `json:"downloaded"`
		Uploaded   int64  `json:"uploaded"`
		WebSeed    bool   `json:"web_seed"`
		Client     string `json:"client"`
	} `json:"peers"`
}

func startLTSession(t *testing.T, python, torrentPath, infoHash, dir string) *ltSession {
	t.Helper()
	cmd := exec.Command(python, filepath.Join("testdata", "lt_session.py"),
		"--torrent", torrentPath, "--infohash", infoHash, "--save", dir,
		"--timeout", strconv.Itoa(int(2*clientTimeout/time.Second)))
	testenv.DieWithParent(cmd)
	s := &ltSession{cmd: cmd, events: make(chan ltEvent, 16), stderr: &testenv.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = s.stderr
	var err error
	if s.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start lt_session.py: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev ltEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				s.stderr.Write([]byte("stdout: " + sc.Text() + "\n"))
				continue
			}
			select {
			case s.events <- ev:
			default: // the helper prints two lines; more is noise
				s.stderr.Write([]byte("stdout (dropped): " + sc.Text() + "\n"))
			}
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait() // after the last read from stdout
		close(s.events)
		close(s.done)
	}()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("lt_session.py stderr:\n%s", s.stderr)
		}
	})
	return s
}

// waitSeeding waits for the "seeding" line.
func (s *ltSession) waitSeeding(t *testing.T, timeout time.Duration) ltEvent {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatalf("lt_session.py ended before seeding")
			}
			switch ev.Event {
			case "seeding":
				if ev.PiecesHave != ev.NumPieces || ev.NumPieces == 0 {
					t.Fatalf("libtorrent seeds with %d of %d pieces", ev.PiecesHave, ev.NumPieces)
				}
				t.Logf("libtorrent seeds on port %d after %.2fs (%d payload bytes downloaded)", ev.Port, ev.Seconds, ev.TotalPayloadDownload)
				return ev
			case "done":
				s.final = &ev
				t.Fatalf("libtorrent stopped before seeding: %s (alerts %q, tracker %q)", ev.Error, ev.Alerts, ev.Tracker)
			}
		case <-timer.C:
			t.Fatalf("libtorrent not seeding after %v", timeout)
		}
	}
}

// stop closes the helper's stdin and returns its final report (nil if it
// gave none); it kills the helper if it does not exit in time.
func (s *ltSession) stop() *ltEvent {
	if s.stdin != nil {
		s.stdin.Close()
		s.stdin = nil
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	for ev := range s.events { // closed once done is
		if ev.Event == "done" {
			s.final = &ev
		}
	}
	return s.final
}

// withoutURLList writes a copy of the .torrent at path without its
// url-list, so that only peers can serve it, and returns the copy's path.
// The info dictionary, and so the infohash, stays as it was.
func withoutURLList(t *testing.T, path, infoHash string) string {
	t.Helper()
	mi, err := metainfo.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(mi.UrlList) == 0 {
		t.Fatal("the published torrent has no url-list")
	}
	mi.UrlList = nil
	if got := mi.HashInfoBytes().HexString(); got != infoHash {
		t.Fatalf("infohash changed to %s", got)
	}
	var b bytes.Buffer
	if err := mi.Write(&b); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitTrackerPeer waits until the origin's tracker holds a peer of
// infoHash for which match is true, and returns it.
func waitTrackerPeer(t *testing.T, s *localswarm.Swarm, infoHash, what string, timeout time.Duration, match func(tracker.Peer) bool) tracker.Peer {
	t.Helper()
	var ih [20]byte
	if b, err := hex.DecodeString(infoHash); err != nil || len(b) != 20 {
		t.Fatalf("infohash %q: %v", infoHash, err)
	} else {
		copy(ih[:], b)
	}
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		peers := s.Origin.Tracker().Peers(ih)
		for _, p := range peers {
			if match(p) {
				t.Logf("tracker: %s at %s after %v", what, p.Addr, time.Since(start).Round(time.Millisecond))
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("tracker: no %s within %v; peers %+v", what, timeout, peers)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// isForeign reports whether a tracker peer is a foreign client: neither an
// agent nor the origin (they name their role in the announce URL).
func isForeign(p tracker.Peer) bool {
	return p.Identity.Role != tracker.RoleAgent && p.Identity.Role != tracker.RoleOrigin
}

// copyTree copies the regular files and directories under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}
