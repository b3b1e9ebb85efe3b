package cmd

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCatalogFreezeAndSchedule: freezes are added, listed and removed;
// publish and schedule sign a release's timing; promote --urgent marks it.
func TestCatalogFreezeAndSchedule(t *testing.T) {
	cat, keys := initCatalog(t)
	ck := []string{"--catalog", cat, "--keys", keys}
	run := func(args ...string) string {
		t.Helper()
		out, errOut, code := swarmship(t, append(args, ck...)...)
		if code != 0 {
			t.Fatalf("%v: code %d: %s", args, code, errOut)
		}
		return out
	}
	run("publish", payload(t, map[string]string{"a": "1"}), "--name", "app", "--version", "1.0", "--channel", "stable",
		"--activate-at", "2026-12-24T18:00:00+01:00", "--activate", "sun 02:00-04:00", "--deliver-by", "2026-12-23T00:00:00Z")
	if out := run("catalog", "show", "app@1.0"); !strings.Contains(out, "activate  at 2026-12-24T17:00:00Z") || !strings.Contains(out, "activate  in Sun 02:00-04:00") {
		t.Errorf("show lacks the timing:\n%s", out)
	}
	out := run("catalog", "freeze", "add", "--from", "2026-12-20T00:00:00Z", "--to", "2026-12-27T00:00:00Z", "--reason", "holiday sales")
	if !strings.Contains(out, "freeze f1") {
		t.Errorf("freeze add: %s", out)
	}
	if _, errOut, code := swarmship(t, append([]string{"catalog", "freeze", "add", "--from", "2026-12-20T00:00:00Z", "--to", "2026-12-19T00:00:00Z"}, ck...)...); code == 0 || !strings.Contains(errOut, "before it starts") {
		t.Errorf("backwards freeze: %d %s", code, errOut)
	}
	if _, errOut, code := swarmship(t, append([]string{"publish", payload(t, map[string]string{"a": "2"}), "--name", "app", "--version", "2.0", "--activate", "Sun 25:00-04:00"}, ck...)...); code == 0 || !strings.Contains(errOut, "--activate") {
		t.Errorf("bad window: %d %s", code, errOut)
	}
	out = run("catalog", "freeze", "list", "-o", "json")
	var fs []struct {
		ID, Reason string
	}
	if err := json.Unmarshal([]byte(out), &fs); err != nil || len(fs) != 1 || fs[0].ID != "f1" || fs[0].Reason != "holiday sales" {
		t.Fatalf("freeze list: %v %s", err, out)
	}
	run("publish", payload(t, map[string]string{"a": "3"}), "--name", "app", "--version", "3.0")
	run("catalog", "promote", "app", "3.0", "--channel", "stable", "--urgent")
	run("catalog", "schedule", "app", "1.0", "--clear")
	run("catalog", "freeze", "remove", "f1")
	out = run("catalog", "freeze", "list", "-o", "json")
	if strings.TrimSpace(out) != "[]" {
		t.Errorf("after remove: %s", out)
	}
	run("catalog", "verify")
}
