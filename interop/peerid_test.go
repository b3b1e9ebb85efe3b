package interop

import (
	"context"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/btclient"
)

// Foreign clients must not show swarmship's agents and origins as another
// client: libtorrent's own peer-ID table names an unregistered Azureus-style
// code by the code itself and its version ("SH 0.1.0").
func TestPeerIDPrefixIsUnregistered(t *testing.T) {
	python := requireLibtorrent(t)
	ids := map[string]string{}
	for _, prefix := range []string{btclient.AgentPeerIDPrefix, btclient.OriginPeerIDPrefix} {
		if len(prefix) != 8 || prefix[0] != '-' || prefix[7] != '-' {
			t.Fatalf("prefix %q is not Azureus style (-XX1234-)", prefix)
		}
		ids[prefix] = hex.EncodeToString([]byte(prefix + "abcdefghijkl"))
	}
	script := `import sys, libtorrent as lt
for h in sys.argv[1:]:
    print(lt.identify_client(lt.sha1_hash(bytes.fromhex(h))))`
	args := []string{"-c", script}
	prefixes := []string{btclient.AgentPeerIDPrefix, btclient.OriginPeerIDPrefix}
	for _, p := range prefixes {
		args = append(args, ids[p])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("identify_client: %v\n%s", err, out)
	}
	names := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(names) != len(prefixes) {
		t.Fatalf("identify_client printed %q", out)
	}
	for i, p := range prefixes {
		code, digits := p[1:3], p[3:7]
		// libtorrent prints the first three digits as a dotted version.
		want := code + " " + digits[0:1] + "." + digits[1:2] + "." + digits[2:3]
		if names[i] != want {
			t.Errorf("libtorrent names peer id prefix %s %q, want %q (an unregistered code)", p, names[i], want)
		}
	}
}
