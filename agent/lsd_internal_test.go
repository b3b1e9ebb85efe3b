package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anacrolix/torrent"
)

func TestLSDConfig(t *testing.T) {
	c, err := ParseConfig("agent.yaml", []byte(goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.Swarm.LSD != LSDOn {
		t.Fatalf("swarm.lsd defaults to %q, want on", c.Swarm.LSD)
	}
	for _, tc := range []struct{ swarm, want string }{
		{"swarm: {lsd: off}\n", ""},
		{"swarm: {lsd: on, lsd_secret_file: /etc/swarmship/lsd.secret}\n", ""},
		{"swarm: {lsd: maybe}\n", "swarm.lsd: \"maybe\": want on or off"},
		{"swarm: {lsd: off, lsd_secret_file: /x}\n", "swarm.lsd_secret_file: is set but lsd is off"},
	} {
		_, err := ParseConfig("agent.yaml", []byte(goodConfig+tc.swarm))
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: %v, want %q", tc.swarm, err, tc.want)
		}
	}
}

func TestLSDSecretFile(t *testing.T) {
	dir := t.TempDir()
	if b, err := lsdSecret(""); b != nil || err != nil {
		t.Fatalf("no file: %v %v", b, err)
	}
	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte(strings.Repeat("s", 32)), 0o644)
	if _, err := lsdSecret(open); err == nil || !strings.Contains(err.Error(), "readable by its owner only") {
		t.Errorf("world-readable secret: %v", err)
	}
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("tiny"), 0o600)
	if _, err := lsdSecret(short); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Errorf("short secret: %v", err)
	}
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte(strings.Repeat("s", 32)), 0o600)
	if b, err := lsdSecret(good); err != nil || len(b) != 32 {
		t.Errorf("good secret: %d bytes, %v", len(b), err)
	}
	if _, err := lsdSecret(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing secret file accepted")
	}
}

func TestPeerSourceNames(t *testing.T) {
	for src, want := range map[torrent.PeerSource]string{
		peerSourceLSD: "lsd", torrent.PeerSourceTracker: "tracker", torrent.PeerSourceIncoming: "incoming",
		torrent.PeerSourcePex: "pex", torrent.PeerSourceDhtGetPeers: "dht", "": "other",
	} {
		if got := peerSourceName(src); got != want {
			t.Errorf("%q: %q, want %q", src, got, want)
		}
	}
}
