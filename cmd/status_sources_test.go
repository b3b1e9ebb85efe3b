package cmd

import (
	"bytes"
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
