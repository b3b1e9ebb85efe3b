package cmd

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemoHoldServesUntilSignal runs `swarmship demo --hold` as a process:
// after the results its dashboard still answers, and SIGINT stops it with
// exit 0, the origin gone and the temporary directory removed.
func TestDemoHoldServesUntilSignal(t *testing.T) {
	tmp := t.TempDir()
	cmd := exec.Command(os.Args[0], "demo", "--hold", "--agents", "2", "--size", "1MiB", "--sample", "", "--timeout", "2m")
	cmd.Env = append(os.Environ(), "SWARMSHIP_TEST_MAIN=1", "TMPDIR="+tmp)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})

	// Read the output until the hold line; the rest goes to out.
	var out syncBuffer
	holding := make(chan string, 1)
	re := regexp.MustCompile(`^holding: dashboard (http://\S+)/dashboard`)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.Write([]byte(sc.Text() + "\n"))
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				holding <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()

	var base string
	select {
	case base = <-holding:
	case err := <-exited:
		exited <- err
		t.Fatalf("demo exited (%v) without holding:\n%s\n%s", err, out.String(), stderr.String())
	case <-time.After(3 * time.Minute):
		t.Fatalf("demo did not reach the hold within 3 min:\n%s\n%s", out.String(), stderr.String())
	}
	if !strings.Contains(out.String(), "every agent's files match the signed SHA-256 manifest") {
		t.Errorf("demo results missing before the hold:\n%s", out.String())
	}

	// Still up well after the results: the dashboard and the rollout view
	// answer (the demo used to end about 4 s after printing its URL). No
	// kept-alive connection may answer for the stopped origin later.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	time.Sleep(5 * time.Second)
	for _, path := range []string{"/dashboard", "/api/v1/rollout"} {
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s while holding: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s while holding: %s", path, resp.Status)
		}
	}

	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("demo exited with %v after SIGINT:\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("demo did not stop within 60s of SIGINT")
	}
	if !strings.Contains(out.String(), "stopping") {
		t.Errorf("no stopping line:\n%s", out.String())
	}
	if _, err := client.Get(base + "/dashboard"); err == nil {
		t.Error("the dashboard still answers after the demo stopped")
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "swarmship-demo-*")); len(left) > 0 {
		t.Errorf("demo left %v behind", left)
	}
}
