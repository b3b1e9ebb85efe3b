package e2e

import (
	"context"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/internal/peertls/peertlstest"
	"github.com/swarmship/swarmship/internal/relay"
	"github.com/swarmship/swarmship/localswarm"
	"github.com/swarmship/swarmship/seeder"
)

// With tokens and peer TLS, relay-mode agents complete through the relay
// (TLS end to end over it); a stranger without a token, or an agent of
// another tenant, cannot use it to reach them.
func TestRelayWithTokensRefusesStrangers(t *testing.T) {
	ctx := context.Background()
	// A slowed origin leaves time for the relayed peers (TLS over the
	// relay is a slow start) to carry part of the release: peerBytes > 0.
	ts := newTokenSwarm(t, localswarm.OriginOptions{WrapHandler: slowPayload(20 * time.Millisecond)}, func(c *seeder.Config) {
		c.Relay = relay.Config{Mode: relay.ModeOn}
	}, []tokenAgent{{"acme-1", "acme", "store-1"}, {"acme-2", "acme", "store-2"}}, "acme relayed payload\n", 200000)
	sw := ts.sw
	issue := func(tenant, site string) string { return ts.issue(t, tenant, site) }
	var agents []*localswarm.RunningAgent
	for _, a := range []struct{ name, site string }{{"acme-1", "store-1"}, {"acme-2", "store-2"}} {
		cfg := sw.AgentConfig(a.name, a.site, "eu", agent.Subscription{Name: "app", Channel: "stable"})
		cfg.Tenant, cfg.Token = "acme", issue("acme", a.site)
		cfg.PeerTLS = peertlstest.Config(ts.pki, a.name)
		cfg.Swarm.Relay = agent.RelayOrigin
		cfg.Swarm.Locality = "region"
		ra, err := sw.StartAgent(ctx, a.name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		agents = append(agents, ra)
	}
	waitActive(t, "app", "1.0", 90*time.Second, agents...)
	var peerBytes int64
	for _, ra := range agents {
		peerBytes += releaseStatus(ra, "app", "1.0").Downloaded.Peer
	}
	t.Logf("peer bytes over the relay %d, relay stats %+v", peerBytes, sw.Origin.Relay().Stats())

	if peerBytes == 0 || sw.Origin.Relay().Stats().Bytes < peerBytes {
		t.Errorf("relay carried %d bytes for %d peer bytes", sw.Origin.Relay().Stats().Bytes, peerBytes)
	}
	target := agents[0].Agent.Status().Relay.Handle
	if _, ok := relay.ParseHandle(target); !ok {
		t.Fatalf("agent's relay handle %q", target)
	}

	// Without a token: refused, for registering and for dialling.
	req, _ := http.NewRequest(http.MethodGet, sw.OriginURL+"/relay/control?peer_id=0000000000000000000000000000000000000000&tenant=acme&site=x", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", relay.Protocol)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("control without a token: %d, want 401", resp.StatusCode)
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var pid [20]byte
	stranger, err := relay.NewClient(relay.ClientConfig{URL: sw.OriginURL, PeerID: pid, Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if _, err := stranger.Dial(dctx, target); !relay.IsRefused(err, http.StatusUnauthorized) {
		t.Errorf("dial without a token: %v, want 401", err)
	}
	// Another tenant's valid token does not find acme's agent.
	globexTok := issue("globex", "g1")
	globex, err := relay.NewClient(relay.ClientConfig{URL: sw.OriginURL, PeerID: pid, Tenant: "globex", Authorize: func(r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+globexTok)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer globex.Close()
	if _, err := globex.Dial(dctx, target); !relay.IsRefused(err, http.StatusNotFound) {
		t.Errorf("dial with another tenant's token: %v, want 404", err)
	}
	// And the tracker gave the acme agents only handles.
	for _, ra := range agents {
		for _, a := range releaseStatus(ra, "app", "1.0").PeerAddrs {
			if ap, err := netip.ParseAddrPort(a); err != nil || !relay.IsHandle(ap) {
				t.Errorf("%s connected to %s", ra.Name, a)
			}
		}
	}
	if st := sw.Origin.Relay().Stats(); st.Refused[relay.ReasonUnauthorized] < 2 || st.Refused[relay.ReasonUnknown] < 1 {
		t.Errorf("refusals counted: %v", st.Refused)
	}
}
