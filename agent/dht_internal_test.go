package agent

import (
	"slices"
	"strings"
	"testing"

	"github.com/swarmship/swarmship/internal/dht"
)

func TestDHTConfig(t *testing.T) {
	c, err := ParseConfig("agent.yaml", []byte(goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.Swarm.DHT != DHTOff {
		t.Fatalf("swarm.dht defaults to %q, want off", c.Swarm.DHT)
	}
	for _, tc := range []struct{ swarm, want string }{
		{"swarm: {dht: on}\n", "swarm.dht_secret_file: is required with dht: on"},
		{"swarm: {dht: on, dht_secret_file: /s}\n", ""},
		{"swarm: {dht: on, dht_secret_file: /etc/swarmship/dht.secret, dht_bootstrap: [\"origin:6881\", \"[::1]:7\"], dht_port: 6881}\n", ""},
		{"swarm: {dht: maybe}\n", "swarm.dht: \"maybe\": want on or off"},
		{"swarm: {dht: off, dht_secret_file: /x}\n", "is set but dht is off"},
		{"swarm: {dht_bootstrap: [\"origin:6881\"]}\n", "is set but dht is off"},
		{"swarm: {dht: on, dht_secret_file: /s, dht_bootstrap: [origin]}\n", "swarm.dht_bootstrap[0]: \"origin\": want host:port"},
		{"swarm: {dht: on, dht_secret_file: /s, dht_bootstrap: [\"origin:0\"]}\n", "want host:port"},
		{"swarm: {dht: on, dht_secret_file: /s, dht_port: 70000}\n", "swarm.dht_port: 70000 is not a port"},
		{"swarm: {dht: on, dht_secret_file: /s, relay: origin, lsd: off}\n", "relay: origin keeps private"},
		{"swarm: {dht: on, dht_secret_file: /s, dht_port: 6881, listen_port: 6881, utp: on}\n", "whose UDP side uTP uses"},
		{"swarm: {dht: on, dht_secret_file: /s, dht_port: 6881, listen_port: 6881}\n", ""},
	} {
		_, err := ParseConfig("agent.yaml", []byte(goodConfig+tc.swarm))
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: %v, want %q", tc.swarm, err, tc.want)
		}
	}
}

// The scopes follow the locality and the residency: nothing wider than
// the locality allows, nothing beyond the region for a restricted release.
func TestDHTScopes(t *testing.T) {
	site, region, tenant := dht.SiteScope("eu", "berlin"), dht.RegionScope("eu"), dht.TenantScope()
	for _, tc := range []struct {
		locality, site string
		restricted     bool
		scopes, fb     []dht.Scope
	}{
		{"site", "berlin", false, []dht.Scope{site}, nil},
		{"region", "berlin", false, []dht.Scope{site, region}, nil},
		{"region", "berlin", true, []dht.Scope{site, region}, nil},
		{"any", "berlin", false, []dht.Scope{site, region, tenant}, nil},
		{"any", "berlin", true, []dht.Scope{site, region}, nil},
		{"gateway", "berlin", false, []dht.Scope{site}, []dht.Scope{region, tenant}},
		{"gateway", "berlin", true, []dht.Scope{site}, []dht.Scope{region}},
		{"gateway", "", false, []dht.Scope{dht.SiteScope("eu", ""), region, tenant}, nil},
	} {
		s, fb := dhtScopes(tc.locality, "eu", tc.site, tc.restricted)
		if !slices.Equal(s, tc.scopes) || !slices.Equal(fb, tc.fb) {
			t.Errorf("%+v: %q %q", tc, s, fb)
		}
	}
}
