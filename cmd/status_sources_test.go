package cmd

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/internal/failover"
)

// TestStatusPrintsSources: the status table lists every source with its
// health and why it is skipped.
func TestStatusPrintsSources(t *testing.T) {
	st := agent.Status{Sources: []agent.SourceStatus{
		{Kind: "catalog", Status: failover.Status{Name: "http://a:7070/", Reason: failover.Stale}, Why: "stale for 4s: rollback refused"},
		{Kind: "catalog", Status: failover.Status{Name: "http://b:7070/", Healthy: true, InUse: true, LastOK: time.Now()}, Why: "in use"},
		{Kind: "tracker", Status: failover.Status{Name: "http://b:7070/announce", Tier: 1, Healthy: true}, Why: "healthy"},
	}}
	var out bytes.Buffer
	printStatus(&out, st)
	s := out.String()
	for _, want := range []string{"SOURCE", "http://a:7070/", "stale for 4s: rollback refused", "in use", "tracker"} {
		if !strings.Contains(s, want) {
			t.Errorf("status output lacks %q:\n%s", want, s)
		}
	}
}

// TestREADMEFailoverExampleParses: the README's mirror/tracker/failover
// example passes the strict loader (with the keys it leaves out).
func TestREADMEFailoverExampleParses(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := yamlBlockAfter(t, string(b), "Agents can hold lists instead of single URLs")
	cfg, err := agent.ParseConfig("agent.yaml", []byte(block+"cache_dir: /var/lib/swarmship\nsubscriptions: [{name: app}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Catalog.Mirrors()) != 3 || len(cfg.TrackerTiers()) != 2 || len(cfg.Offload.Sources) != 2 {
		t.Errorf("README example: mirrors %v, tiers %v, offload %v", cfg.Catalog.Mirrors(), cfg.TrackerTiers(), cfg.Offload.Sources)
	}
}
