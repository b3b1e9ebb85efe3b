package cmd

import (
	"strings"
	"testing"
)

// TestRolloutCLI: start signs a plan and moves the channel, bad flags are
// refused with a clear error, and pause/resume/abort change the signed
// state in order.
func TestRolloutCLI(t *testing.T) {
	cat, keys := initCatalog(t)
	src := payload(t, map[string]string{"a.txt": "one"})
	if _, errOut, code := swarmship(t, "publish", src, "--catalog", cat, "--keys", keys, "--name", "app", "--version", "2.0"); code != 0 {
		t.Fatalf("publish: %s", errOut)
	}
	base := []string{"--catalog", cat, "--keys", keys}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--channel", "stable", "--waves", "5%,25%"}, "100%"},
		{[]string{"--channel", "stable", "--waves", "50%,5%,100%"}, "must increase"},
		{[]string{"--channel", "stable", "--waves", "10%,label:x,100%"}, "come before"},
		{[]string{"--channel", "stable", "--max-failures", "200%"}, "--max-failures"},
		{[]string{"--channel", "stable", "--soak", "0s"}, "--soak"},
		{[]string{"--waves", "100%"}, "--channel"},
	} {
		args := append([]string{"rollout", "start", "app", "2.0"}, append(bad.args, base...)...)
		if _, errOut, code := swarmship(t, args...); code == 0 || !strings.Contains(errOut, bad.want) {
			t.Errorf("%v: code %d, stderr %q, want %q", bad.args, code, errOut, bad.want)
		}
	}
	if _, errOut, code := swarmship(t, append([]string{"rollout", "start", "app", "9.9", "--channel", "stable"}, base...)...); code == 0 {
		t.Errorf("a rollout of an unpublished version started: %s", errOut)
	}
	out, errOut, code := swarmship(t, append([]string{"rollout", "start", "app", "2.0", "--channel", "stable",
		"--waves", "label:canary,site:lab+hq,10%,100%", "--soak", "1m", "--max-failures", "5%"}, base...)...)
	if code != 0 {
		t.Fatalf("start: %s", errOut)
	}
	if !strings.Contains(out, "4 waves") {
		t.Errorf("start said %q", out)
	}
	status := func() string {
		t.Helper()
		out, errOut, code := swarmship(t, "rollout", "status", "app", "--catalog", cat, "--root", keys+"/root.json")
		if code != 0 {
			t.Fatalf("status: %s", errOut)
		}
		return out
	}
	if s := status(); !strings.Contains(s, "running") || !strings.Contains(s, "label:canary") || !strings.Contains(s, "site:lab+hq") {
		t.Errorf("status: %s", s)
	}
	steps := []struct {
		verb  []string
		ok    bool
		state string
	}{
		{[]string{"resume"}, false, "running"},
		{[]string{"pause", "--reason", "lunch"}, true, "paused (lunch)"},
		{[]string{"pause"}, false, "paused"},
		{[]string{"resume", "--retry"}, true, "running"},
		{[]string{"abort", "--reason", "bad build"}, true, "aborted (bad build)"},
		{[]string{"resume"}, false, "aborted"},
	}
	for _, s := range steps {
		args := append(append([]string{"rollout", s.verb[0], "app"}, s.verb[1:]...), base...)
		_, errOut, code := swarmship(t, args...)
		if (code == 0) != s.ok {
			t.Fatalf("%v: code %d %s", s.verb, code, errOut)
		}
		if st := status(); !strings.Contains(st, s.state) {
			t.Fatalf("after %v: %s", s.verb, st)
		}
	}
	// The plan's copies pass the catalog's own checks, and gc keeps the
	// signed one.
	for _, args := range [][]string{{"catalog", "verify", "--catalog", cat, "--root", keys + "/root.json"},
		{"catalog", "resign", "--catalog", cat, "--keys", keys},
		{"catalog", "gc", "--older-than", "0s", "--catalog", cat, "--keys", keys},
		{"catalog", "verify", "--catalog", cat, "--root", keys + "/root.json"}} {
		if out, errOut, code := swarmship(t, args...); code != 0 {
			t.Fatalf("%v: %d %s %s", args, code, out, errOut)
		}
	}
	out, _, _ = swarmship(t, "rollout", "status", "app", "--catalog", cat, "--root", keys+"/root.json", "-o", "json")
	if !strings.Contains(out, `"retry": 1`) {
		t.Errorf("resume --retry not signed: %s", out)
	}
}
