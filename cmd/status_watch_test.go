package cmd

import (
	"bytes"
	"strings"
	"testing"

	"github.com/swarmship/swarmship/agent"
)

// TestStatusPrintsCatalogWatch: the status table says whether the agent
// follows the origin's catalog change stream.
func TestStatusPrintsCatalogWatch(t *testing.T) {
	var out bytes.Buffer
	printStatus(&out, agent.Status{Catalog: agent.CatalogStatus{URL: "http://o:7070/", Watch: "following http://o:7070/v1/catalog/events"}})
	if !strings.Contains(out.String(), "catalog watch: following http://o:7070/v1/catalog/events\n") {
		t.Errorf("status output lacks the watch:\n%s", out.String())
	}
	out.Reset()
	printStatus(&out, agent.Status{})
	if strings.Contains(out.String(), "catalog watch") {
		t.Errorf("a watch line without a watch:\n%s", out.String())
	}
}
