package tracker

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"testing"

	"github.com/swarmship/swarmship/internal/relay"
	"github.com/swarmship/swarmship/internal/report"
)

// relayAnn announces a with relay=origin.
func relayAnn(t *testing.T, tr *Tracker, a ann) resp {
	t.Helper()
	a.port = 6881
	v := a.values()
	v.Set("relay", "origin")
	return mustOK(t, decode(t, get(t, tr, "/announce?"+v.Encode(), a.remote)))
}

func TestRelayModeNeverSeesOrGivesAddresses(t *testing.T) {
	tr, _ := newTest(Config{})
	ih := hash("private-release")
	id := Identity{Tenant: "acme", Site: "s1", Region: "eu", Role: RoleAgent}
	// Two direct agents and two relay-mode agents, all of one site.
	for i := range 2 {
		mustOK(t, ann{ih: ih, id: pid(i), remote: fmt.Sprintf("10.1.0.%d:1", i+1), left: 5, ident: id}.do(t, tr))
	}
	relayAnn(t, tr, ann{ih: ih, id: pid(10), remote: "10.1.0.10:1", left: 5, ident: id})
	r := relayAnn(t, tr, ann{ih: ih, id: pid(11), remote: "10.1.0.11:1", left: 5, ident: id})

	// The relay-mode agent gets exactly the other relay-mode agent's handle.
	if want := []netip.AddrPort{relay.HandleFor("acme", pid(10))}; !slices.Equal(r.addrs, want) {
		t.Errorf("relay-mode agent got %v, want only %v", r.addrs, want)
	}
	// A direct agent gets the direct agents only: no handle, no relay-mode address.
	d := mustOK(t, ann{ih: ih, id: pid(2), remote: "10.1.0.3:1", left: 5, ident: id}.do(t, tr))
	for _, a := range d.addrs {
		if relay.IsHandle(a) || a.Addr() == netip.MustParseAddr("10.1.0.10") || a.Addr() == netip.MustParseAddr("10.1.0.11") {
			t.Errorf("direct agent got %v", a)
		}
	}
	if len(d.addrs) != 2 {
		t.Errorf("direct agent got %v, want the 2 other direct agents", d.addrs)
	}
	// Nothing stored under the relay-mode agents' real addresses.
	for _, p := range tr.Peers(ih) {
		if p.Addr.Addr() == netip.MustParseAddr("10.1.0.10") || p.Addr.Addr() == netip.MustParseAddr("10.1.0.11") {
			t.Errorf("stored real address %v of a relay-mode agent", p.Addr)
		}
	}

	// The swarm view a relay-mode agent gets names no real address.
	q := url.Values{"info_hash": {string(ih[:])}, "tenant": {"acme"}, "site": {"s1"}, "region": {"eu"}, "role": {RoleAgent}, "relay": {"origin"}, "peer_id": {pidString(11)}}
	var view report.SwarmView
	if err := json.Unmarshal(get(t, tr, "/swarm?"+q.Encode(), "10.1.0.11:1"), &view); err != nil {
		t.Fatal(err)
	}
	if len(view.Agents) != 5 {
		t.Errorf("view has %d agents, want 5", len(view.Agents))
	}
	for _, m := range view.Agents {
		if m.Addr == "" {
			continue
		}
		if ap, err := netip.ParseAddrPort(m.Addr); err != nil || !relay.IsHandle(ap) {
			t.Errorf("relay-mode swarm view shows address %q", m.Addr)
		}
	}
	// A bad value is refused.
	v := ann{ih: ih, id: pid(12), port: 1, left: 5, ident: id}.values()
	v.Set("relay", "sometimes")
	if r := decode(t, get(t, tr, "/announce?"+v.Encode(), "10.1.0.12:1")); r.Failure == "" {
		t.Error("relay=sometimes accepted")
	}
}
