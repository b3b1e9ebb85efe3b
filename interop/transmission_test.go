package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/testenv"
)

// transmission is a transmission-daemon (3.00) on loopback: RPC and peers
// on 127.0.0.1, no DHT, LPD, PEX, uTP or port mapping. Torrents are added
// with transmission-remote; status is read over the JSON RPC, which
// transmission-remote 3.00 can only print as text.
type transmission struct {
	remote   string
	rpcAddr  string // 127.0.0.1:PORT
	peerPort int
	proc     *testenv.Process
	http     *http.Client
	session  string // X-Transmission-Session-Id
}

// startTransmission starts a daemon with its own config directory and
// waits until its RPC answers; the daemon is killed when the test ends.
func startTransmission(t *testing.T) *transmission {
	t.Helper()
	daemon := testenv.RequireTool(t, "transmission-daemon")
	remote := testenv.RequireTool(t, "transmission-remote")
	var lastErr error
	for range 3 { // a free port may be taken before the daemon binds it
		dir := t.TempDir()
		tr := &transmission{remote: remote, http: &http.Client{Timeout: 5 * time.Second}}
		rpcPort, peerPort := testenv.FreePort(t), testenv.FreePort(t)
		tr.rpcAddr, tr.peerPort = "127.0.0.1:"+strconv.Itoa(rpcPort), peerPort
		cfgDir := filepath.Join(dir, "config")
		if err := os.MkdirAll(cfgDir, 0o755); err != nil {
			t.Fatal(err)
		}
		// Written before the first start: flags cannot turn off PEX, and
		// the daemon must never reach outside loopback, not even briefly.
		settings := map[string]any{
			"bind-address-ipv4":           "127.0.0.1",
			"bind-address-ipv6":           "::1",
			"rpc-bind-address":            "127.0.0.1",
			"rpc-port":                    rpcPort,
			"rpc-authentication-required": false,
			"rpc-whitelist":               "127.0.0.1",
			"rpc-whitelist-enabled":       true,
			"rpc-host-whitelist-enabled":  false,
			"peer-port":                   peerPort,
			"peer-port-random-on-start":   false,
			"port-forwarding-enabled":     false,
			"dht-enabled":                 false,
			"lpd-enabled":                 false,
			"pex-enabled":                 false,
			"utp-enabled":                 false,
			"blocklist-enabled":           false,
			"ratio-limit-enabled":         false,
			"idle-seeding-limit-enabled":  false,
			"download-queue-enabled":      false,
			"seed-queue-enabled":          false,
			"start-added-torrents":        true,
			"incomplete-dir-enabled":      false,
			"download-dir":                filepath.Join(dir, "downloads"),
			"message-level":               2,
		}
		b, _ := json.MarshalIndent(settings, "", "  ")
		if err := os.WriteFile(filepath.Join(cfgDir, "settings.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		tr.proc = testenv.StartProcess(t, dir, daemon, "-f", "-g", cfgDir,
			"-p", strconv.Itoa(rpcPort), "-P", strconv.Itoa(peerPort), "-r", "127.0.0.1",
			"-i", "127.0.0.1", "-I", "::1", "-T",
			"--no-dht", "--no-lpd", "--no-portmap", "--no-utp", "--no-incomplete-dir", "-GSR",
			"--log-info")
		if lastErr = tr.waitReady(15 * time.Second); lastErr == nil {
			return tr
		}
		tr.proc.Stop()
		t.Logf("transmission-daemon did not start: %v\n%s", lastErr, tr.proc.Output())
	}
	t.Fatalf("start transmission-daemon: %v", lastErr)
	return nil
}

func (tr *transmission) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var s struct {
			Version  string `json:"version"`
			PeerPort int    `json:"peer-port"`
			PEX      bool   `json:"pex-enabled"`
			DHT      bool   `json:"dht-enabled"`
		}
		err := tr.rpc("session-get", nil, &s)
		if err == nil {
			if s.PeerPort != tr.peerPort || s.PEX || s.DHT {
				return fmt.Errorf("session: peer port %d (want %d), pex %v, dht %v", s.PeerPort, tr.peerPort, s.PEX, s.DHT)
			}
			return nil
		}
		select {
		case <-tr.proc.Exited():
			return fmt.Errorf("transmission-daemon exited: %v", tr.proc.Cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rpc calls method with args and decodes the reply's "arguments" into out.
func (tr *transmission) rpc(method string, args any, out any) error {
	body, _ := json.Marshal(map[string]any{"method": method, "arguments": args})
	for range 2 { // the first request of a session only learns its ID (409)
		req, err := http.NewRequest(http.MethodPost, "http://"+tr.rpcAddr+"/transmission/rpc", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		if tr.session != "" {
			req.Header.Set("X-Transmission-Session-Id", tr.session)
		}
		resp, err := tr.http.Do(req)
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusConflict {
			tr.session = resp.Header.Get("X-Transmission-Session-Id")
			resp.Body.Close()
			continue
		}
		var reply struct {
			Result    string          `json:"result"`
			Arguments json.RawMessage `json:"arguments"`
		}
		err = json.NewDecoder(resp.Body).Decode(&reply)
		resp.Body.Close()
		switch {
		case resp.StatusCode != http.StatusOK:
			return fmt.Errorf("%s: HTTP %s", method, resp.Status)
		case err != nil:
			return fmt.Errorf("%s: %w", method, err)
		case reply.Result != "success":
			return fmt.Errorf("%s: %s", method, reply.Result)
		}
		if out == nil {
			return nil
		}
		return json.Unmarshal(reply.Arguments, out)
	}
	return fmt.Errorf("%s: no session ID", method)
}

// trTorrent is the part of torrent-get this test reads.
type trTorrent struct {
	ID             int     `json:"id"`
	HashString     string  `json:"hashString"`
	Name           string  `json:"name"`
	Status         int     `json:"status"` // 0 stopped … 4 downloading, 5 queued to seed, 6 seeding
	PercentDone    float64 `json:"percentDone"`
	LeftUntilDone  int64   `json:"leftUntilDone"`
	SizeWhenDone   int64   `json:"sizeWhenDone"`
	HaveValid      int64   `json:"haveValid"`
	DownloadedEver int64   `json:"downloadedEver"`
	UploadedEver   int64   `json:"uploadedEver"`
	Error          int     `json:"error"`
	ErrorString    string  `json:"errorString"`
	DownloadDir    string  `json:"downloadDir"`
	PeersConnected int     `json:"peersConnected"`
	Peers          []struct {
		Address    string `json:"address"`
		Port       int    `json:"port"`
		ClientName string `json:"clientName"`
		IsIncoming bool   `json:"isIncoming"`
	} `json:"peers"`
	WebSeedsSendingToUs int `json:"webseedsSendingToUs"`
	TrackerStats        []struct {
		LastAnnounceResult    string `json:"lastAnnounceResult"`
		LastAnnouncePeerCount int    `json:"lastAnnouncePeerCount"`
	} `json:"trackerStats"`
}

func (tr *transmission) torrent(infoHash string) (*trTorrent, error) {
	var reply struct {
		Torrents []trTorrent `json:"torrents"`
	}
	err := tr.rpc("torrent-get", map[string]any{
		"ids": []string{infoHash},
		"fields": []string{"id", "hashString", "name", "status", "percentDone", "leftUntilDone",
			"sizeWhenDone", "haveValid", "downloadedEver", "uploadedEver", "error", "errorString",
			"downloadDir", "peersConnected", "peers", "webseedsSendingToUs", "trackerStats"},
	}, &reply)
	if err != nil {
		return nil, err
	}
	if len(reply.Torrents) != 1 {
		return nil, fmt.Errorf("torrent %s: %d matches", infoHash, len(reply.Torrents))
	}
	return &reply.Torrents[0], nil
}

// add adds torrentPath with transmission-remote, its files under dir;
// files already there are checked first (seeding), missing ones fetched.
func (tr *transmission) add(t *testing.T, torrentPath, infoHash, dir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tr.remote, tr.rpcAddr, "-a", torrentPath, "-w", dir).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("success")) {
		t.Fatalf("transmission-remote -a: %v\n%s", err, out)
	}
	got, err := tr.torrent(infoHash)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Clean(got.DownloadDir) != filepath.Clean(dir) {
		t.Fatalf("transmission put %s in %s, want %s", got.Name, got.DownloadDir, dir)
	}
}

// waitComplete waits until every byte of the torrent is verified and the
// daemon seeds it.
func (tr *transmission) waitComplete(t *testing.T, infoHash string, timeout time.Duration) *trTorrent {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	var last *trTorrent
	for {
		got, err := tr.torrent(infoHash)
		if err != nil {
			t.Fatalf("transmission: %v", err)
		}
		last = got
		if got.Error != 0 {
			t.Fatalf("transmission: torrent error %d: %s", got.Error, got.ErrorString)
		}
		if got.LeftUntilDone == 0 && got.PercentDone == 1 && got.HaveValid == got.SizeWhenDone && got.Status == 6 {
			t.Logf("transmission complete after %v: %d bytes verified, %d downloaded, %d uploaded, peers %+v",
				time.Since(start).Round(time.Millisecond), got.HaveValid, got.DownloadedEver, got.UploadedEver, got.Peers)
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("transmission not complete after %v: %+v", timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
