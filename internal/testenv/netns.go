package testenv

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

// netnsEnv marks a test process that InPrivateNetwork started inside its
// own network namespace.
const netnsEnv = "SWARMSHIP_TEST_NETNS"

// InPrivateNetwork runs the calling test in a network namespace of its
// own whose loopback carries multicast (the host's lo has no MULTICAST
// flag, so BEP 14 traffic cannot be tested on it). It re-runs the test
// binary for this test alone under `unshare --net` and returns false in
// the parent, which reports the child's result; in the child it sets lo
// up with multicast and returns true. Needs root and unshare(1) and ip(8):
// missing, the test skips, or fails in CI.
func InPrivateNetwork(t *testing.T, timeout time.Duration) bool {
	t.Helper()
	if os.Getenv(netnsEnv) == t.Name() {
		for _, args := range [][]string{{"link", "set", "lo", "up"}, {"link", "set", "lo", "multicast", "on"}} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %v: %v: %s", args, err, out)
			}
		}
		return true
	}
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		need(t, "a private network namespace needs Linux and root")
	}
	unshare := RequireTool(t, "unshare")
	RequireTool(t, "ip")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "--net", "--", os.Args[0],
		"-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v", "-test.timeout="+timeout.String())
	cmd.Env = append(os.Environ(), netnsEnv+"="+t.Name())
	DieWithParent(cmd)
	out, err := cmd.CombinedOutput()
	t.Logf("in a private network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("test in the private network namespace: %v", err)
	}
	return false
}

func need(t *testing.T, msg string) {
	t.Helper()
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
