package cmd

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPlanFlagsAndFile(t *testing.T) {
	out, errOut, code := swarmship(t, "plan", "-o", "json", "--sites", "3", "--agents", "4",
		"--wan-down", "50Mbit", "--wan-up", "20Mbit", "--origin-up", "100Mbit", "--size", "256MiB")
	if code != 0 {
		t.Fatalf("plan: exit %d: %s", code, errOut)
	}
	var p struct {
		Agents   int     `json:"agents"`
		Lower    float64 `json:"lower_bound_seconds"`
		Expected float64 `json:"expected_seconds"`
		Sites    []struct {
			WANOut float64 `json:"wan_out_bytes"`
		} `json:"sites"`
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// Two thirds of 256 MiB out over 20 Mbit/s: 71.6 s.
	if p.Agents != 12 || len(p.Sites) != 3 || math.Abs(p.Lower-71.58) > 0.05 || p.Expected <= p.Lower {
		t.Errorf("plan of the testbed: %+v", p)
	}

	// The same sites from a file, one entry repeated by count, and a
	// window that is too short.
	file := filepath.Join(t.TempDir(), "plan.yaml")
	yaml := "size: 256MiB\norigin_up: 100Mbit\nwindow: 1m\nsites:\n  - {name: branch, count: 3, agents: 4, wan_down: 50Mbit, wan_up: 20Mbit}\n"
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = swarmship(t, "plan", "--file", file)
	if code != 0 {
		t.Fatalf("plan --file: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"12 agents in 3 sites", "1m11.6s", "DOES NOT FIT: spans 2 windows", "branch-*"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan output lacks %q:\n%s", want, out)
		}
	}

	// Strict decoding and validation name the field.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	for body, want := range map[string]string{
		"size: 1MiB\norigin_up: 1Mbit\nsites:\n  - {agents: 1, wan_down: 1Mbit, wan_up: 1Mbit, wan: 3}\n": "wan",
		"size: 1MiB\norigin_up: 1Mbit\nsites:\n  - {agents: 0, wan_down: 1Mbit, wan_up: 1Mbit}\n":         "sites[0].agents",
		"size: 1MiB\nsites:\n  - {agents: 1, wan_down: 1Mbit, wan_up: 1Mbit}\n":                           "origin",
	} {
		if err := os.WriteFile(bad, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, errOut, code := swarmship(t, "plan", "--file", bad); code == 0 || !strings.Contains(errOut, want) {
			t.Errorf("plan of %q: exit %d, stderr %q, want an error naming %q", body, code, errOut, want)
		}
	}
}
