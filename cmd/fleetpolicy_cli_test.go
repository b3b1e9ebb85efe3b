package cmd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/policy"
)

func TestCatalogPolicySetListRm(t *testing.T) {
	cat, keys := initCatalog(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("stores.yaml", "name: stores\nassign: {labels: [stores]}\nmode: download-only\ncache_quota: 20GB\nallow_local: [cache_quota]\n")
	bad := write("bad.yaml", "name: bad\nassign: {labels: [stores]}\nrates: {profiles: [{name: p, down: 5Mbps}]}\n")
	if out, errOut, code := swarmship(t, "catalog", "policy", "set", good, "--catalog", cat, "--keys", keys); code != 0 || !strings.Contains(out, "policy stores signed") {
		t.Fatalf("set: %d %s %s", code, out, errOut)
	}
	// An invalid document never reaches the catalog; the error names the line.
	if _, errOut, code := swarmship(t, "catalog", "policy", "set", bad, "--catalog", cat, "--keys", keys); code == 0 || !strings.Contains(errOut, "bad.yaml:3") {
		t.Fatalf("set of a bad document: %d %s", code, errOut)
	}
	out, errOut, code := swarmship(t, "catalog", "policy", "list", "--catalog", cat, "--keys", keys, "-o", "json")
	if code != 0 {
		t.Fatalf("list: %s", errOut)
	}
	var rows []struct {
		Name   string   `json:"name"`
		Sets   []string `json:"sets"`
		Assign struct {
			Labels []string `json:"labels"`
		} `json:"assign"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 || rows[0].Name != "stores" ||
		strings.Join(rows[0].Sets, ",") != "mode,cache_quota" || strings.Join(rows[0].Assign.Labels, ",") != "stores" {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if _, errOut, code := swarmship(t, "catalog", "policy", "rm", "stores", "--catalog", cat, "--keys", keys); code != 0 {
		t.Fatalf("rm: %s", errOut)
	}
	if _, _, code := swarmship(t, "catalog", "policy", "rm", "stores", "--catalog", cat, "--keys", keys); code == 0 {
		t.Fatal("rm of a missing policy succeeded")
	}
	out, _, _ = swarmship(t, "catalog", "policy", "list", "--catalog", cat, "--keys", keys)
	if strings.Contains(out, "stores") {
		t.Fatalf("list after rm:\n%s", out)
	}
}

// The policy document the README shows passes the strict loader.
func TestREADMEFleetPolicyParses(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := yamlBlockAfter(t, string(b), "### Fleet policy from the catalog")
	d, err := policy.ParseFleetDoc("README policy", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(d.Keys(), ","); got != "rates,mode,cache_quota,windows" {
		t.Errorf("keys %s", got)
	}
}

func TestPrintFleetPolicy(t *testing.T) {
	var b strings.Builder
	printFleetPolicy(&b, &agent.FleetPolicyStatus{
		Documents: []string{"stores"}, Sources: map[string]string{"down": "policy:stores", "mode": "local"},
		Refused: []policy.FleetRefusal{{Name: "stores", Error: "rates.default: not defined", KeptLast: true}},
	})
	out := b.String()
	for _, want := range []string{"FLEET POLICY stores", "down from policy:stores", "mode from local", "REFUSED stores (its last good version stays in force): rates.default"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	printFleetPolicy(&b, nil)
	if b.Len() != 0 {
		t.Errorf("nil status printed %q", b.String())
	}
}
