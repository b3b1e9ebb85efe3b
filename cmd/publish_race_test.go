package cmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/swarmship/swarmship/internal/testenv"
)

// cliCatalog is a catalog driven only through swarmship processes.
type cliCatalog struct {
	url, keys string
	env       []string // S3 endpoint and credentials, if any
}

// run starts this test binary as the swarmship command, a real process,
// with extra environment variables, and waits for it.
func (c *cliCatalog) run(t *testing.T, env []string, args ...string) (stdout, stderr string, state *os.ProcessState) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(append(os.Environ(), "SWARMSHIP_TEST_MAIN=1"), c.env...), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run swarmship %v: %v", args, err)
	}
	return out.String(), errb.String(), cmd.ProcessState
}

func (c *cliCatalog) publish(t *testing.T, env []string, name, version, dir string) (string, *os.ProcessState) {
	t.Helper()
	_, errOut, st := c.run(t, env, "publish", "--catalog", c.url, "--keys", c.keys, "--name", name, "--version", version, dir)
	return errOut, st
}

// verify runs `catalog verify --json` and returns its report.
func (c *cliCatalog) verify(t *testing.T) (releases int, problems, leftovers []map[string]any) {
	t.Helper()
	out, errOut, st := c.run(t, nil, "catalog", "verify", "-o", "json", "--catalog", c.url, "--keys", c.keys, "--state", t.TempDir())
	var rep struct {
		Releases  int              `json:"releases"`
		Problems  []map[string]any `json:"problems"`
		Leftovers []map[string]any `json:"leftovers"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("catalog verify (exit %d): %v\n%s\n%s", st.ExitCode(), err, out, errOut)
	}
	return rep.Releases, rep.Problems, rep.Leftovers
}

// cliStores runs fn on a directory catalog and on an S3 catalog on
// versitygw, each made by `catalog init`.
func cliStores(t *testing.T, fn func(t *testing.T, c *cliCatalog)) {
	var gw *testenv.VersityGW
	if testenv.FindTool("versitygw") != "" {
		gw = testenv.StartVersityGW(t)
	}
	for _, kind := range []string{"dir", "s3"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			c := &cliCatalog{url: filepath.Join(dir, "catalog"), keys: filepath.Join(dir, "keys")}
			if kind == "s3" {
				if gw == nil {
					testenv.RequireTool(t, "versitygw")
				}
				c.url = "s3://" + gw.NewBucket(t) + "/cat"
				c.env = []string{"AWS_ENDPOINT_URL=" + gw.Endpoint, "AWS_ACCESS_KEY_ID=" + gw.AccessKey, "AWS_SECRET_ACCESS_KEY=" + gw.SecretKey}
			}
			if _, errOut, st := c.run(t, nil, "catalog", "init", "--catalog", c.url, "--keys", c.keys); st.ExitCode() != 0 {
				t.Fatalf("catalog init: %s", errOut)
			}
			fn(t, c)
		})
	}
}

// TestPublishKilledAtEachStep kills a real publish process with SIGKILL at
// each step (SWARMSHIP_CRASH_AT makes the kill land exactly there), then
// runs the same publish again: it completes, the catalog verifies, and
// after `catalog gc --older-than 0s` nothing unsigned is left.
func TestPublishKilledAtEachStep(t *testing.T) {
	steps := []string{"payload", "torrent", "manifest", "commit", "targets", "snapshot", "place"}
	cliStores(t, func(t *testing.T, c *cliCatalog) {
		for i, step := range steps {
			version := fmt.Sprintf("1.%d", i)
			src := payload(t, map[string]string{"bin/app": "app " + version, "lib/x.so": strings.Repeat("x", 1000+i), "README": "readme"})
			errOut, st := c.publish(t, []string{"SWARMSHIP_CRASH_AT=" + step}, "app", version, src)
			if ws, ok := st.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("%s: publish was not killed at that step: %v\n%s", step, st, errOut)
			}
			// What a run killed before its commit left is reported as
			// leftovers; after the commit point the staged copy is still
			// needed (the re-run reads the signed manifest from it). The
			// timestamp is written only once the bytes are in place, so
			// readers never see the release half-made.
			committed := step == "snapshot" || step == "place"
			n, problems, leftovers := c.verify(t)
			if (len(leftovers) > 0) == committed {
				t.Errorf("%s: verify reports leftovers %v after a killed publish", step, leftovers)
			}
			if len(problems) > 0 || n != i {
				t.Errorf("%s: verify after the kill: %d releases, problems %v; want the %d before it and no problems", step, n, problems, i)
			}
			if errOut, st := c.publish(t, nil, "app", version, src); st.ExitCode() != 0 {
				t.Fatalf("%s: publish again after kill -9: exit %d\n%s", step, st.ExitCode(), errOut)
			}
			if n, problems, _ := c.verify(t); n != i+1 || len(problems) != 0 {
				t.Fatalf("%s: verify after the re-run: %d releases, problems %v", step, n, problems)
			}
			if out, errOut, st := c.run(t, nil, "catalog", "gc", "--older-than", "0s", "--catalog", c.url, "--keys", c.keys); st.ExitCode() != 0 {
				t.Fatalf("%s: gc: %s %s", step, out, errOut)
			}
			if n, problems, leftovers := c.verify(t); n != i+1 || len(problems) != 0 || len(leftovers) != 0 {
				t.Fatalf("%s: verify after gc: %d releases, problems %v, leftovers %v", step, n, problems, leftovers)
			}
		}
	})
}

// TestPublishRaceProcesses races two publish processes of one
// name@version with different bytes: exactly one exits 0, the other fails
// with "already published with different bytes", and verify is clean.
func TestPublishRaceProcesses(t *testing.T) {
	cliStores(t, func(t *testing.T, c *cliCatalog) {
		const rounds = 3
		for round := range rounds {
			version := fmt.Sprint("2.", round)
			srcs := []string{payload(t, map[string]string{"f": "first " + version}), payload(t, map[string]string{"f": "second, other bytes " + version})}
			type result struct {
				stderr string
				code   int
			}
			res := make([]result, 2)
			var wg sync.WaitGroup
			for i := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errOut, st := c.publish(t, nil, "app", version, srcs[i])
					res[i] = result{errOut, st.ExitCode()}
				}()
			}
			wg.Wait()
			wins := 0
			for _, r := range res {
				switch {
				case r.code == 0:
					wins++
				case !strings.Contains(r.stderr, "already published with different bytes"):
					t.Fatalf("round %d: loser exit %d without the message:\n%s", round, r.code, r.stderr)
				}
			}
			if wins != 1 {
				t.Fatalf("round %d: %d publishes exited 0 (%+v); want exactly 1", round, wins, res)
			}
		}
		if n, problems, leftovers := c.verify(t); n != rounds || len(problems) != 0 || len(leftovers) != 0 {
			t.Fatalf("verify: %d releases, problems %v, leftovers %v", n, problems, leftovers)
		}
	})
}
