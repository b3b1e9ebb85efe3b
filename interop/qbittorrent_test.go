package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/testenv"
)

// qbittorrent is a qbittorrent-nox (4.5.2, libtorrent 2.0.8) with its own
// profile, driven over its WebUI API on loopback. The profile is written
// before the first start: the legal notice accepted, no WebUI login from
// localhost, and no DHT, LSD, PEX, UPnP or uTP, listening on lo only.
type qbittorrent struct {
	base     string // http://127.0.0.1:PORT
	peerPort int
	proc     *testenv.Process
	http     *http.Client
}

func startQBittorrent(t *testing.T) *qbittorrent {
	t.Helper()
	bin := testenv.RequireTool(t, "qbittorrent-nox")
	var lastErr error
	for range 3 { // a free port may be taken before qBittorrent binds it
		dir := t.TempDir()
		webPort, peerPort := testenv.FreePort(t), testenv.FreePort(t)
		cfgDir := filepath.Join(dir, "qBittorrent", "config")
		if err := os.MkdirAll(cfgDir, 0o755); err != nil {
			t.Fatal(err)
		}
		conf := fmt.Sprintf(`[LegalNotice]
Accepted=true

[BitTorrent]
Session\DHTEnabled=false
Session\LSDEnabled=false
Session\PeXEnabled=false
Session\Port=%d
Session\Interface=lo
Session\InterfaceName=lo
Session\InterfaceAddress=127.0.0.1
Session\MultiConnectionsPerIp=true
Session\BTProtocol=TCP
Session\QueueingSystemEnabled=false
Session\AnonymousModeEnabled=false
Session\DefaultSavePath=%s
Session\TempPathEnabled=false

[Network]
PortForwardingEnabled=false

[Preferences]
WebUI\Address=127.0.0.1
WebUI\Port=%d
WebUI\LocalHostAuth=false
WebUI\CSRFProtection=false
WebUI\HostHeaderValidation=false
WebUI\UseUPnP=false
`, peerPort, filepath.Join(dir, "downloads"), webPort)
		if err := os.WriteFile(filepath.Join(cfgDir, "qBittorrent.conf"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		q := &qbittorrent{
			base:     "http://127.0.0.1:" + strconv.Itoa(webPort),
			peerPort: peerPort,
			http:     &http.Client{Timeout: 5 * time.Second},
		}
		q.proc = testenv.StartProcess(t, dir, bin, "--profile="+dir)
		if lastErr = q.waitReady(20 * time.Second); lastErr == nil {
			return q
		}
		q.proc.Stop()
		t.Logf("qbittorrent-nox did not start: %v\n%s", lastErr, q.proc.Output())
	}
	t.Fatalf("start qbittorrent-nox: %v", lastErr)
	return nil
}

// waitReady waits for the WebUI and checks that the profile took effect.
func (q *qbittorrent) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var p struct {
			ListenPort int    `json:"listen_port"`
			DHT        bool   `json:"dht"`
			PEX        bool   `json:"pex"`
			LSD        bool   `json:"lsd"`
			UPnP       bool   `json:"upnp"`
			Iface      string `json:"current_network_interface"`
			MultiConn  bool   `json:"enable_multi_connections_from_same_ip"`
		}
		err := q.get("/api/v2/app/preferences", nil, &p)
		if err == nil {
			if p.ListenPort != q.peerPort || p.DHT || p.PEX || p.LSD || p.UPnP || p.Iface != "lo" || !p.MultiConn {
				return fmt.Errorf("profile not applied: %+v", p)
			}
			return nil
		}
		select {
		case <-q.proc.Exited():
			return fmt.Errorf("qbittorrent-nox exited: %v", q.proc.Cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (q *qbittorrent) get(path string, query url.Values, out any) error {
	u := q.base + path
	if query != nil {
		u += "?" + query.Encode()
	}
	resp, err := q.http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("GET %s: %s %s", path, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// add uploads torrentPath, its files under dir; qBittorrent checks files
// already there (seeding) and fetches the rest.
func (q *qbittorrent) add(t *testing.T, torrentPath, dir string) {
	t.Helper()
	tb, err := os.ReadFile(torrentPath)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("torrents", filepath.Base(torrentPath))
	fw.Write(tb)
	for k, v := range map[string]string{
		"savepath": dir, "paused": "false", "skip_checking": "false",
		"autoTMM": "false", "contentLayout": "Original",
	} {
		mw.WriteField(k, v)
	}
	mw.Close()
	resp, err := q.http.Post(q.base+"/api/v2/torrents/add", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatalf("qbittorrent add: %v", err)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != "Ok." {
		t.Fatalf("qbittorrent add: %s %s", resp.Status, b)
	}
}

// qbTorrent is the part of /api/v2/torrents/info this test reads.
type qbTorrent struct {
	Hash       string  `json:"hash"`
	Name       string  `json:"name"`
	State      string  `json:"state"`
	Progress   float64 `json:"progress"`
	AmountLeft int64   `json:"amount_left"`
	Completed  int64   `json:"completed"`
	Size       int64   `json:"size"`
	Downloaded int64   `json:"downloaded"`
	Uploaded   int64   `json:"uploaded"`
	SavePath   string  `json:"save_path"`
	NumSeeds   int     `json:"num_seeds"`
	NumLeechs  int     `json:"num_leechs"`
	Tracker    string  `json:"tracker"`
}

func (q *qbittorrent) torrent(infoHash string) (*qbTorrent, error) {
	var ts []qbTorrent
	if err := q.get("/api/v2/torrents/info", url.Values{"hashes": {infoHash}}, &ts); err != nil {
		return nil, err
	}
	if len(ts) != 1 {
		return nil, fmt.Errorf("torrent %s: %d matches", infoHash, len(ts))
	}
	return &ts[0], nil
}

// qbSeeding are the states of a complete torrent that is not checking.
var qbSeeding = []string{"uploading", "stalledUP", "forcedUP", "queuedUP"}

// waitComplete waits until qBittorrent has every piece and seeds.
func (q *qbittorrent) waitComplete(t *testing.T, infoHash string, timeout time.Duration) *qbTorrent {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	var last *qbTorrent
	for {
		got, err := q.torrent(infoHash)
		if err == nil {
			last = got
			switch got.State {
			case "error", "missingFiles":
				t.Fatalf("qbittorrent: torrent in state %s: %+v", got.State, got)
			}
			if got.Progress == 1 && got.AmountLeft == 0 && slices.Contains(qbSeeding, got.State) {
				t.Logf("qbittorrent complete after %v: %+v", time.Since(start).Round(time.Millisecond), *got)
				return got
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("qbittorrent not complete after %v: %+v (last error %v)", timeout, last, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
