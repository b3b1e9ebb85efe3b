package cmd

import (
	"bytes"
	"regexp"
	"testing"

	"github.com/swarmship/swarmship/agent"
)

// TestStatusPrintsReusedBytes: the release table shows the bytes a
// release took from releases already held (delta releases).
func TestStatusPrintsReusedBytes(t *testing.T) {
	var out bytes.Buffer
	printStatus(&out, agent.Status{Releases: []agent.ReleaseStatus{{ReleaseState: agent.ReleaseState{
		Name: "app", Version: "2.0", Phase: agent.PhaseActive, Size: 10 << 20, Completed: 10 << 20,
		Downloaded: agent.Bytes{Origin: 1 << 20}, Reused: 9 << 20,
	}}}})
	if !regexp.MustCompile(`(?m)^RELEASE\s.*\bREUSED\b`).MatchString(out.String()) ||
		!regexp.MustCompile(`(?m)^app@2\.0\s+active\s+100%\s+\S+( \S+)?\s+1(\.0)? MiB\s+9(\.0)? MiB\b`).MatchString(out.String()) {
		t.Errorf("status does not show 9 MiB reused for app@2.0:\n%s", out.String())
	}
}
