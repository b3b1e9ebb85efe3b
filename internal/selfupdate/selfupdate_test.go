package selfupdate

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as an agent applying an update that kills
// itself with SIGKILL after a given step (kill -9 at that step).
const crashEnv = "SELFUPDATE_TEST_CRASH_AT"

func TestMain(m *testing.M) {
	if step := os.Getenv(crashEnv); step != "" {
		afterStep = func(s string) {
			if s == step {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
		}
		var p Plan
		if err := json.Unmarshal([]byte(os.Getenv("SELFUPDATE_TEST_PLAN")), &p); err != nil {
			panic(err)
		}
		_, err := Apply(context.Background(), p)
		if err != nil {
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// script writes an executable shell script.
func script(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// runs reports what the binary at path prints.
func runs(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command(path).Output()
	if err != nil {
		t.Fatalf("%s does not run: %v", path, err)
	}
	return strings.TrimSpace(string(out))
}

type fixture struct {
	dir, bin, src, state, marker string
}

// newFixture installs "old" as the binary and a release file "new" that
// behaves like a healthy agent of version 2 when on trial.
func newFixture(t *testing.T, newBody string) fixture {
	dir := t.TempDir()
	f := fixture{dir: dir, bin: filepath.Join(dir, "bin", "swarmship"), src: filepath.Join(dir, "release-file"),
		state: filepath.Join(dir, "state", "selfupdate.json"), marker: filepath.Join(dir, "state", "health.json")}
	os.MkdirAll(filepath.Dir(f.bin), 0o755)
	os.MkdirAll(filepath.Dir(f.state), 0o755)
	script(t, f.bin, "echo old")
	script(t, f.src, newBody)
	return f
}

const healthyNew = `if [ -n "$SWARMSHIP_SELFUPDATE_HEALTH" ]; then
  printf '{"version":"2"}' > "$SWARMSHIP_SELFUPDATE_HEALTH"; exec sleep 60
fi
echo new`

func (f fixture) plan(timeout time.Duration) Plan {
	return Plan{StatePath: f.state, Binary: f.bin, Source: f.src, Version: "2", Own: "1", Marker: f.marker,
		HealthTimeout: timeout, StopGrace: 5 * time.Second}
}

func TestApplyInstallsHealthy(t *testing.T) {
	f := newFixture(t, healthyNew)
	installed, err := Apply(context.Background(), f.plan(30*time.Second))
	if !installed || err != nil {
		t.Fatalf("Apply: %v %v", installed, err)
	}
	if got := runs(t, f.bin); got != "new" {
		t.Errorf("installed binary prints %q", got)
	}
	if got := runs(t, PrevPath(f.bin)); got != "old" {
		t.Errorf("kept binary prints %q", got)
	}
	st, _ := Load(f.state)
	if st.Previous != "1" || st.Trial != "" || st.Last == nil || st.Last.Result != Updated {
		t.Errorf("state %+v", st)
	}
	if err := Restore(f.bin); err != nil || runs(t, f.bin) != "old" {
		t.Errorf("restore: %v", err)
	}
}

func TestApplyRollsBackBroken(t *testing.T) {
	for name, body := range map[string]string{
		"exits":         "exit 3",
		"never healthy": "exec sleep 60",
		"wrong version": `printf '{"version":"9"}' > "$SWARMSHIP_SELFUPDATE_HEALTH"; exec sleep 60`,
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, body)
			installed, err := Apply(context.Background(), f.plan(3*time.Second))
			if installed || err != nil {
				t.Fatalf("Apply: %v %v", installed, err)
			}
			if got := runs(t, f.bin); got != "old" {
				t.Errorf("binary prints %q after a rollback", got)
			}
			if _, err := os.Stat(StagedPath(f.bin)); err == nil {
				t.Error("staged binary left behind")
			}
			st, _ := Load(f.state)
			if st.Bad["2"] == "" || st.Last == nil || st.Last.Result != RolledBack || st.Trial != "" {
				t.Errorf("state %+v", st)
			}
		})
	}
}

// A kill -9 after any step leaves a runnable binary, old or new, and the
// next start settles the state.
func TestApplySurvivesKill9(t *testing.T) {
	for _, c := range []struct {
		step, want string
	}{
		{"trial-recorded", "old"},
		{"staged", "old"},
		{"healthy", "old"},
		{"prev-kept", "old"},
		{"installed", "new"},
	} {
		t.Run(c.step, func(t *testing.T) {
			f := newFixture(t, healthyNew)
			plan, _ := json.Marshal(f.plan(30 * time.Second))
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), crashEnv+"="+c.step, "SELFUPDATE_TEST_PLAN="+string(plan))
			err := cmd.Run()
			var ee *exec.ExitError
			if err == nil || !asExit(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("helper was not killed at %s: %v", c.step, err)
			}
			if got := runs(t, f.bin); got != c.want {
				t.Fatalf("after kill -9 at %s the binary prints %q, want %q", c.step, got, c.want)
			}
			// The next start, by the binary now installed.
			own := map[string]string{"old": "1", "new": "2"}[c.want]
			st, err := Load(f.state)
			if err != nil {
				t.Fatal(err)
			}
			st.Recover(own, time.Now())
			Cleanup(f.bin)
			left, _ := filepath.Glob(filepath.Join(filepath.Dir(f.bin), ".*"))
			if len(left) != 0 {
				t.Errorf("left next to the binary: %v", left)
			}
			switch c.want {
			case "new":
				if st.Trial != "" || st.Previous != "1" || st.Last == nil || st.Last.Result != Updated {
					t.Errorf("state after restart %+v", st)
				}
			case "old":
				if st.Trial != "2" || len(st.Bad) != 0 {
					t.Errorf("state after restart %+v (want the trial retried)", st)
				}
			}
		})
	}
}

func asExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*ee = e
	return ok
}

func TestRecoverGivesUpAfterMaxAttempts(t *testing.T) {
	st := State{Trial: "2", From: "1", Attempts: MaxAttempts}
	if !st.Recover("1", time.Now()) || st.Bad["2"] == "" || st.Trial != "" {
		t.Errorf("state %+v", st)
	}
	st = State{Trial: "2", From: "1", Attempts: 1}
	if st.Recover("1", time.Now()) {
		t.Errorf("one interrupted trial marked the version: %+v", st)
	}
}
