package cmd

import (
	"os"
	"strings"
	"testing"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/seeder"
)

// yamlBlockAfter returns the first ```yaml block after marker in the README.
func yamlBlockAfter(t *testing.T, readme, marker string) string {
	t.Helper()
	i := strings.Index(readme, marker)
	if i < 0 {
		t.Fatalf("README has no %q", marker)
	}
	rest := readme[i:]
	j := strings.Index(rest, "```yaml\n")
	if j < 0 {
		t.Fatalf("no yaml block after %q", marker)
	}
	rest = rest[j+len("```yaml\n"):]
	return rest[:strings.Index(rest, "```")]
}

// TestREADMEConfigExamplesParse: the agent.yaml and origin.yaml the README
// shows pass the strict loaders, so the documentation cannot drift from
// the keys.
func TestREADMEConfigExamplesParse(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	minimal := yamlBlockAfter(t, readme, "A minimal `agent.yaml`")
	if _, err := agent.ParseConfig("agent.yaml", []byte(minimal)); err != nil {
		t.Errorf("minimal agent.yaml: %v", err)
	}
	// The branch policy block adds to the minimal config; its
	// subscriptions replace the minimal ones.
	policy := yamlBlockAfter(t, readme, "## Branch policy")
	base := minimal[:strings.Index(minimal, "subscriptions:")] + minimal[strings.Index(minimal, "hooks:"):]
	if c, err := agent.ParseConfig("agent.yaml", []byte(base+policy)); err != nil {
		t.Errorf("agent.yaml with the branch policy: %v", err)
	} else if c.QuotaBytes() != 20<<30 {
		t.Errorf("cache_quota 20GiB = %d bytes", c.QuotaBytes())
	}
	if _, err := seeder.ParseConfig("origin.yaml", []byte(yamlBlockAfter(t, readme, "An `origin.yaml`")), nil); err != nil {
		t.Errorf("origin.yaml: %v", err)
	}
}
