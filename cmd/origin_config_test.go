package cmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOriginConfigIsStrict: swarmship origin refuses an origin.yaml with an
// unknown or invalid field before it opens anything, naming file:line and
// the field's path; flags still override the file.
func TestOriginConfigIsStrict(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown field", "seed: false\ntracker:\n  max_peer: 3\n", "origin.yaml:3: field max_peer not found"},
		{"invalid nested value", "seed: false\ntracker:\n  interval: 30s\n  peer_ttl: 5s\n", "origin.yaml:4: tracker.peer_ttl: "},
		{"invalid tls", "tls:\n  cert: /o.pem\n", "origin.yaml:2: tls.cert: cert and key go together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "origin.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, stderr, code := swarmship(t, "origin", "--catalog", dir, "--root", filepath.Join(dir, "root.json"), "--config", path)
			if code == 0 || !strings.Contains(stderr, path[:len(path)-len("origin.yaml")]+tc.want) {
				t.Fatalf("exit %d, stderr %q; want %q", code, stderr, tc.want)
			}
		})
	}
	// A flag completes what the file lacks: the file's key alone is refused.
	path := filepath.Join(dir, "origin.yaml")
	if err := os.WriteFile(path, []byte("tls:\n  key: /o.key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := swarmship(t, "origin", "--catalog", dir, "--root", filepath.Join(dir, "root.json"), "--config", path,
		"--tls-cert", filepath.Join(dir, "none.pem"), "--tls-key", filepath.Join(dir, "none.key"), "--listen", "127.0.0.1:0")
	if code == 0 || strings.Contains(stderr, "go together") {
		t.Fatalf("exit %d, stderr %q; want a failure to read the flags' files, not the file's half pair", code, stderr)
	}
}
