package cmd

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

// Byte counters survive kill -9: the agent process is killed twice in the
// middle of a download from the origin, restarted each time, and at the end
// the bytes it reports must account for what the origin sent, less at
// most what was in flight at each kill (pieces being fetched and not yet
// complete: 2 x parallel x piece length). Before, each kill lost what had
// arrived since the last once-a-second save.
func TestAgentCountersSurviveKill9(t *testing.T) {
	sw, err := localswarm.New(context.Background(), t.TempDir(), localswarm.OriginOptions{
		WrapHandler: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.URL.Path, "/data/") {
					time.Sleep(15 * time.Millisecond) // a download that lasts a few seconds
				}
				next.ServeHTTP(w, r)
			})
		},
	}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	src := payload(t, map[string]string{"app.bin": strings.Repeat("0123456789abcdef", 3<<20)}) // 48 MiB
	if _, err := sw.Publish(context.Background(), "app", "1.0", []string{src}, "stable"); err != nil {
		t.Fatal(err)
	}
	mb, err := catalog.ReadAll(context.Background(), sw.Store, catalog.ManifestKey("app", "1.0"), catalog.MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	m, err := catalog.ParseManifest(mb)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath, cache := writeAgentYAML(t, sw, "{name: app, channel: stable}")
	start := func() (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(os.Args[0], "agent", "--config", cfgPath)
		cmd.Env = append(os.Environ(), "SWARMSHIP_TEST_MAIN=1")
		logs := &bytes.Buffer{}
		cmd.Stderr = logs
		testenv.DieWithParent(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, logs
	}
	const kills = 2
	for k := 1; k <= kills; k++ {
		cmd, logs := start()
		// Kill at about k/3 of the release, counted by the origin.
		if !testenv.Poll(60*time.Second, 5*time.Millisecond, func() bool { return sw.Origin.Egress().WebSeed >= int64(k)*m.TotalSize/3 }) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("download made no progress:\n%s", logs.String())
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		t.Logf("kill -9 #%d at %d origin bytes", k, sw.Origin.Egress().WebSeed)
	}
	cmd, logs := start()
	if !testenv.Poll(90*time.Second, 20*time.Millisecond, func() bool { return activeIs(cache, "app", "1.0") }) {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("agent did not activate the release:\n%s", logs.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("agent exited with %v:\n%s", err, logs.String())
	}
	recs, err := agent.ReadState(cache)
	if err != nil || len(recs) != 1 {
		t.Fatalf("state: %v %+v", err, recs)
	}
	sent := sw.Origin.Egress().WebSeed
	got := recs[0].Downloaded.Total()
	slack := int64(kills) * 2 * 4 * m.PieceLength // offload.parallel defaults to 4
	t.Logf("origin sent %d bytes (%.2f copies of %d); the agent reports %d (%d not counted; allowed %d = %d kills x 2 x 4 x %d-byte pieces)",
		sent, float64(sent)/float64(m.TotalSize), m.TotalSize, got, sent-got, slack, kills, m.PieceLength)
	if got > sent {
		t.Fatalf("agent reports %d bytes, more than the %d the origin sent", got, sent)
	}
	if sent-got > slack {
		t.Fatalf("agent lost %d bytes of its counters over %d kills (reports %d, the origin sent %d), want at most %d", sent-got, kills, got, sent, slack)
	}
	// Every byte of the release was received at least once; what a kill
	// can lose is bounded by the same slack (fetches in flight, and bytes
	// since the last save when a piece completed outside a download's
	// bookkeeping), never more.
	if got < m.TotalSize-slack {
		t.Fatalf("agent reports %d bytes for a %d-byte release, more than %d short", got, m.TotalSize, slack)
	}
}

// A real agent process on a cache whose state and piece-completion
// databases both have garbage in their data pages (it panicked at start
// before, in a loop under systemd): it starts, keeps the release active,
// moves both files aside and says so, and exits 0 on SIGTERM.
func TestAgentProcessStartsOnCorruptDatabases(t *testing.T) {
	_, cfgPath, cache := swarmWithApp(t, strings.Repeat("c", 2<<20))
	run := func(until func(logs string) bool) string {
		t.Helper()
		cmd := exec.Command(os.Args[0], "agent", "--config", cfgPath, "--log-format", "json")
		cmd.Env = append(os.Environ(), "SWARMSHIP_TEST_MAIN=1")
		logs := &testenv.SyncBuffer{}
		cmd.Stderr = logs
		testenv.DieWithParent(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		deadline := time.Now().Add(60 * time.Second)
		for !until(logs.String()) {
			select {
			case err := <-exited:
				t.Fatalf("agent exited (%v) before it was done:\n%s", err, logs.String())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("agent did not get there:\n%s", logs.String())
			}
		}
		cmd.Process.Signal(syscall.SIGTERM)
		if err := <-exited; err != nil {
			t.Fatalf("agent exited with %v after SIGTERM:\n%s", err, logs.String())
		}
		return logs.String()
	}
	active := func(string) bool {
		target, err := os.Readlink(filepath.Join(cache, "current", "app"))
		return err == nil && filepath.Base(target) == "1.0"
	}
	run(active)
	dbs := []string{filepath.Join(cache, "state", "agent.db"), filepath.Join(cache, "state", ".torrent.bolt.db")}
	for _, p := range dbs {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt(bytes.Repeat([]byte{0xA5, 0x17, 0x00, 0xFF}, 4<<10), 8<<10) // pages 2-5
		f.Close()
	}
	// Settled: the release was re-adopted and the subscription checked.
	logs := run(func(logs string) bool {
		return active("") && strings.Contains(logs, "re-adopted") && strings.Contains(logs, `"msg":"status API listening"`)
	})
	if strings.Contains(logs, "panic") {
		t.Fatalf("agent panicked:\n%s", logs)
	}
	for _, p := range dbs {
		if !strings.Contains(logs, `"file":"`+p+`"`) || !strings.Contains(logs, `"moved_to":"`+p+`.corrupt-`) {
			t.Errorf("log does not say %s was moved aside:\n%s", p, logs)
		}
		aside, _ := filepath.Glob(p + ".corrupt-*")
		if len(aside) != 1 {
			t.Errorf("moved-aside copies of %s: %v", p, aside)
		}
	}
	recs, err := agent.ReadState(cache)
	if err != nil || len(recs) != 1 || recs[0].Phase != agent.PhaseActive {
		t.Fatalf("state after recovery: %v %+v", err, recs)
	}
}
