package agent

import (
	"strings"
	"testing"
)

func TestRelayConfig(t *testing.T) {
	c, err := ParseConfig("agent.yaml", []byte(goodConfig+"swarm:\n  relay: origin\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Swarm.Relay != RelayOrigin || c.Swarm.LSD != LSDOff {
		t.Errorf("relay %q lsd %q: relay mode must default LSD off", c.Swarm.Relay, c.Swarm.LSD)
	}
	if c, err := ParseConfig("agent.yaml", []byte(goodConfig)); err != nil || c.Swarm.Relay != RelayNever {
		t.Errorf("default relay %q, %v", c.Swarm.Relay, err)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"swarm:\n  relay: origin\n  lsd: on\n", "swarm.lsd: "},
		{"swarm:\n  relay: origin\n  locality: any\n", "swarm.locality: "},
		{"swarm:\n  relay: sometimes\n", "swarm.relay: "},
	} {
		if _, err := ParseConfig("agent.yaml", []byte(goodConfig+tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error naming %s", tc.yaml, err, tc.want)
		}
	}
	if b, err := relayBase([]string{"udp://x:1", "https://origin.example:7070/t/announce?x=1"}); err != nil || b != "https://origin.example:7070/t" {
		t.Errorf("relay base %q, %v", b, err)
	}
	if _, err := relayBase([]string{"udp://x:1/announce2"}); err == nil {
		t.Error("relay base without a swarmship tracker")
	}
}
