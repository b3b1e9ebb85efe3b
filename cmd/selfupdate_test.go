package cmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/internal/selfupdate"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

// buildSwarmship builds the swarmship binary with version set, into dir.
// Under -race it builds with -race too: the packages are then in the
// build cache already and only the link runs.
func buildSwarmship(t *testing.T, dir, version string) string {
	t.Helper()
	goTool := testenv.RequireTool(t, "go")
	out := filepath.Join(dir, "swarmship-"+version)
	args := []string{"build", "-o", out, "-ldflags", "-s -w -X github.com/swarmship/swarmship/cmd.Version=" + version}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command(goTool, append(args, "github.com/swarmship/swarmship")...)
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", version, err, b)
	}
	return out
}

// selfAgent is an agent process started from its own installed binary.
type selfAgent struct {
	bin, cache, cfg string
	cmd             *exec.Cmd
	logs            *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newSelfAgent(t *testing.T, sw *localswarm.Swarm, v1 string) *selfAgent {
	t.Helper()
	a := &selfAgent{bin: filepath.Join(t.TempDir(), "swarmship"), cache: t.TempDir(), cfg: filepath.Join(t.TempDir(), "agent.yaml")}
	b, err := os.ReadFile(v1)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	y := fmt.Sprintf(`catalog:
  url: %s/
  root: %s
tracker: %s/announce
site: store-1
cache_dir: %s
status:
  addr: 127.0.0.1:0
swarm:
  listen_host: 127.0.0.1
refresh_interval: 1s
subscriptions: []
self_update:
  release: swarmship
  channel: stable
  health_timeout: 30s
`, sw.OriginURL, sw.RootPath, sw.OriginURL, a.cache)
	if err := os.WriteFile(a.cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *selfAgent) start(t *testing.T) {
	t.Helper()
	a.logs = &syncBuffer{}
	a.cmd = exec.Command(a.bin, "agent", "--config", a.cfg, "--log-format", "json")
	a.cmd.Stderr, a.cmd.Stdout = a.logs, a.logs
	testenv.DieWithParent(a.cmd)
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := a.cmd
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
}

// statusAddr is the address in the agent's latest log line "status API
// listening" (a process replaced by exec logs it again).
func (a *selfAgent) statusAddr() string {
	var addr string
	sc := bufio.NewScanner(strings.NewReader(a.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "status API listening" {
			addr = l.Addr
		}
	}
	return addr
}

// status asks the agent's status API.
func (a *selfAgent) status() (agent.Status, bool) {
	addr := a.statusAddr()
	var st agent.Status
	if addr == "" {
		return st, false
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/status")
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return st, resp.StatusCode == http.StatusOK && json.Unmarshal(b, &st) == nil && st.SelfUpdate != nil
}

func (a *selfAgent) runningVersion() string {
	if st, ok := a.status(); ok {
		return st.SelfUpdate.Version
	}
	return ""
}

func installedVersion(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("%s does not run: %v", bin, err)
	}
	return strings.TrimSpace(string(out))
}

// Agents update themselves to a new build published on the swarmship
// release, and roll back a broken one on their own; no agent is ever
// left without a running binary, even when killed (-9) mid-trial.
func TestAgentSelfUpdate(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("self-update tests run on linux")
	}
	builds := t.TempDir()
	v1 := buildSwarmship(t, builds, "1.0.0")
	v2 := buildSwarmship(t, builds, "2.0.0")
	sw, err := localswarm.New(context.Background(), t.TempDir(), localswarm.OriginOptions{}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	file := "swarmship-" + runtime.GOOS + "-" + runtime.GOARCH
	publishBinary := func(version, from string) {
		t.Helper()
		dir := t.TempDir()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), b, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := sw.Publish(context.Background(), "swarmship", version, []string{filepath.Join(dir, file)}, "stable"); err != nil {
			t.Fatal(err)
		}
	}

	a, b := newSelfAgent(t, sw, v1), newSelfAgent(t, sw, v1)
	a.start(t)
	b.start(t)
	if !testenv.Poll(60*time.Second, 100*time.Millisecond, func() bool { return a.runningVersion() == "1.0.0" && b.runningVersion() == "1.0.0" }) {
		t.Fatalf("agents did not start:\n%s\n%s", a.logs, b.logs)
	}
	publishBinary("2.0.0", v2)

	// Agent b is killed (-9) while 2.0.0 is on trial; restarted, it
	// runs its old binary and tries again.
	if !testenv.Poll(120*time.Second, 5*time.Millisecond, func() bool {
		_, err := os.Stat(selfupdate.StagedPath(b.bin))
		return err == nil
	}) {
		t.Fatalf("agent b never staged 2.0.0:\n%s", b.logs)
	}
	b.cmd.Process.Signal(syscall.SIGKILL)
	b.cmd.Wait()
	v := installedVersion(t, b.bin)
	if v != "1.0.0" && v != "2.0.0" {
		t.Fatalf("after kill -9 mid-update the installed binary is %q", v)
	}
	t.Logf("agent b killed -9 during its update; installed binary: %s", v)
	b.start(t)

	for _, ag := range []*selfAgent{a, b} {
		if !testenv.Poll(120*time.Second, 200*time.Millisecond, func() bool { return ag.runningVersion() == "2.0.0" }) {
			t.Fatalf("agent did not update itself to 2.0.0:\n%s", ag.logs)
		}
		if v := installedVersion(t, ag.bin); v != "2.0.0" {
			t.Errorf("installed binary says %q", v)
		}
		if v := installedVersion(t, selfupdate.PrevPath(ag.bin)); v != "1.0.0" {
			t.Errorf("kept binary says %q", v)
		}
	}

	// A broken build: it exits at once. Both agents roll it back, report
	// it and keep running 2.0.0.
	broken := filepath.Join(t.TempDir(), "broken")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	publishBinary("3.0.0", broken)
	for _, ag := range []*selfAgent{a, b} {
		var st agent.Status
		if !testenv.Poll(120*time.Second, 200*time.Millisecond, func() bool {
			var ok bool
			st, ok = ag.status()
			return ok && st.SelfUpdate.Bad["3.0.0"] != ""
		}) {
			t.Fatalf("broken 3.0.0 not rolled back:\n%s", ag.logs)
		}
		if st.SelfUpdate.Version != "2.0.0" || st.SelfUpdate.Last == nil || st.SelfUpdate.Last.Result != selfupdate.RolledBack {
			t.Errorf("status after the rollback: %+v", st.SelfUpdate)
		}
		if v := installedVersion(t, ag.bin); v != "2.0.0" {
			t.Errorf("installed binary after the rollback says %q", v)
		}
		if ag.cmd.ProcessState != nil {
			t.Errorf("agent process ended: %v", ag.cmd.ProcessState)
		}
		if n := strings.Count(ag.logs.String(), `"msg":"self-update ready","site":"store-1","release":"swarmship","from":"2.0.0","to":"3.0.0"`); n != 1 {
			t.Errorf("3.0.0 tried %d times, want once", n)
		}
		out, errOut, code := swarmship(t, "status", "--addr", ag.statusAddr())
		if code != 0 || !strings.Contains(out, "agent version 2.0.0") || !strings.Contains(out, "3.0.0 rolled back") {
			t.Errorf("swarmship status: %d %s\n%s", code, errOut, out)
		}
	}
}
