//go:build linux

package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/testenv"
)

// TestSmallBranchNetworkMedia runs the testbed's media mode small: 2
// branches x 2 agents pre-seed a generated 20 s HLS ladder (3 renditions),
// then headless Chromium on branch 1's LAN plays it with hls.js from an
// agent's media server. Every agent completes, playback advances, and each
// branch's WAN link carries at most 1.3 copies in (the target is
// 1.15 on the full 10-minute ladder: docs/benchmarks.md).
func TestSmallBranchNetworkMedia(t *testing.T) {
	if os.Geteuid() != 0 {
		need(t, "the branch testbed needs root (network namespaces, veth, tc)")
	}
	for _, tool := range []string{"ip", "tc", "go", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			need(t, tool+" not found on $PATH")
		}
	}
	testenv.RequireTool(t, "ffmpeg")
	testenv.RequireTool(t, "chromium")
	testenv.RequireTool(t, "npm")
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil {
		need(t, "ip netns is unavailable: "+string(bytes.TrimSpace(out)))
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "swarmship")
	bctx, bcancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer bcancel()
	build := exec.CommandContext(bctx, "go", "build", "-o", bin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	limit := 4 * time.Minute
	if d, ok := t.Deadline(); ok && time.Until(d)-10*time.Second < limit {
		limit = time.Until(d) - 10*time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	out := filepath.Join(t.TempDir(), "testbed.json")
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "testbed", "run"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"BRANCHES=2", "AGENTS=2", "MEDIA=1", "MEDIA_SECONDS=20", "TIMEOUT=90",
		"OUT="+out, "BIN="+bin, "KEEP=0", "S3=0")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	runErr := cmd.Run()
	t.Logf("scripts/testbed/run:\n%s", log.String())
	if ctx.Err() != nil {
		t.Fatalf("testbed did not finish within %s", limit)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("no JSON result (run: %v): %v", runErr, err)
	}
	var r struct {
		result
		Media *struct {
			Player *struct {
				OK    bool     `json:"ok"`
				Time  float64  `json:"current_time"`
				Fatal string   `json:"fatal"`
				Log   []string `json:"log"`
			} `json:"player"`
		} `json:"media"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("testbed JSON: %v\n%s", err, b)
	}
	if runErr != nil {
		t.Errorf("scripts/testbed/run: %v", runErr)
	}
	if r.P2P == nil || !r.P2P.AllCompleted {
		t.Fatalf("not every agent completed:\n%s", b)
	}
	for _, br := range r.P2P.Branches {
		t.Logf("WAN ingress %s: %.3f copies", br.Branch, br.WANRxCopies)
		if br.WANRxCopies > 1.3 {
			t.Errorf("WAN ingress %s: %.3f copies, want <= 1.3", br.Branch, br.WANRxCopies)
		}
	}
	if r.Media == nil || r.Media.Player == nil {
		t.Fatalf("testbed JSON has no media player result:\n%s", b)
	}
	p := r.Media.Player
	t.Logf("player: ok %v at %.2fs, log %v", p.OK, p.Time, p.Log)
	if !p.OK {
		t.Errorf("playback from the site's agent did not advance: %s (at %.2fs)", p.Fatal, p.Time)
	}
}
