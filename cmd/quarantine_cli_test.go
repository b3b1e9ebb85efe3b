package cmd

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/swarmship/swarmship/localswarm"
	"github.com/swarmship/swarmship/seeder"
)

// The quarantine verbs against a running origin: add, list (text and
// JSON), peers, rm, and a clear error for a bad entry.
func TestQuarantineCommands(t *testing.T) {
	sw, err := localswarm.New(context.Background(), t.TempDir(), localswarm.OriginOptions{}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	peer := "peer:" + strings.Repeat("2d", 20)
	if out, errOut, code := swarmship(t, "quarantine", "add", peer, "--origin", sw.OriginURL, "--reason", "stalls"); code != 0 || !strings.Contains(out, "quarantined") {
		t.Fatalf("add: %d %s %s", code, out, errOut)
	}
	if _, errOut, code := swarmship(t, "quarantine", "add", "peer:nothex", "--origin", sw.OriginURL); code == 0 || !strings.Contains(errOut, "40 hex") {
		t.Errorf("bad entry: %d %s", code, errOut)
	}
	out, errOut, code := swarmship(t, "quarantine", "list", "--origin", sw.OriginURL)
	if code != 0 || !strings.Contains(out, peer) || !strings.Contains(out, "stalls") {
		t.Fatalf("list: %d %s %s", code, out, errOut)
	}
	out, _, code = swarmship(t, "--output", "json", "quarantine", "list", "--origin", sw.OriginURL)
	var list []seeder.QuarantineEntry
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Entry != peer {
		t.Fatalf("list --output json: %d %s", code, out)
	}
	if out, errOut, code := swarmship(t, "quarantine", "peers", "--origin", sw.OriginURL, "--all"); code != 0 || !strings.Contains(out, "PEER") {
		t.Errorf("peers: %d %s %s", code, out, errOut)
	}
	if out, errOut, code := swarmship(t, "quarantine", "rm", peer, "--origin", sw.OriginURL); code != 0 {
		t.Fatalf("rm: %d %s %s", code, out, errOut)
	}
	if _, errOut, code := swarmship(t, "quarantine", "rm", peer, "--origin", sw.OriginURL); code == 0 || !strings.Contains(errOut, "404") {
		t.Errorf("rm twice: %d %s", code, errOut)
	}
	if _, errOut, code := swarmship(t, "quarantine", "list"); code == 0 || !strings.Contains(errOut, "--origin") {
		t.Errorf("no --origin: %d %s", code, errOut)
	}
}
