package tracker

import (
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/report"
)

// gatewaySwarm announces, one second apart and in this order, agents of
// three sites (a1 is the oldest of site a, so its gateway), a foreign client,
// an origin seeder, a siteless agent and an agent of another tenant.
func gatewaySwarm(t *testing.T) (*Tracker, *clock, [20]byte, map[string]netip.AddrPort) {
	t.Helper()
	tr, clk := newTest(Config{})
	ih := hash("gateway")
	addrs := map[string]netip.AddrPort{}
	for i, p := range []struct {
		name string
		id   Identity
	}{
		{"a1", Identity{Tenant: "t", Site: "a", Region: "eu", Role: RoleAgent}},
		{"b1", Identity{Tenant: "t", Site: "b", Region: "eu", Role: RoleAgent}},
		{"a2", Identity{Tenant: "t", Site: "a", Region: "eu", Role: RoleAgent}},
		{"b2", Identity{Tenant: "t", Site: "b", Region: "eu", Role: RoleAgent}},
		{"c1", Identity{Tenant: "t", Site: "c", Region: "us", Role: RoleAgent}},
		{"a3", Identity{Tenant: "t", Site: "a", Region: "eu", Role: RoleAgent}},
		{"foreign", Identity{Tenant: "t"}},
		{"origin", Identity{Tenant: "t", Role: RoleOrigin}},
		{"siteless", Identity{Tenant: "t", Role: RoleAgent}},
		{"other-tenant", Identity{Tenant: "u", Site: "a", Region: "eu", Role: RoleAgent}},
	} {
		remote := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i), 1}), 6881)
		addrs[p.name] = remote
		mustOK(t, ann{ih: ih, id: pid(i + 1), remote: remote.String(), left: 9, ident: p.id}.do(t, tr))
		clk.add(time.Second)
	}
	return tr, clk, ih, addrs
}

func gatewayAnswer(t *testing.T, tr *Tracker, ih [20]byte, n int, id Identity, addrs map[string]netip.AddrPort) []string {
	t.Helper()
	remote := addrs[[]string{"a1", "b1", "a2", "b2", "c1", "a3"}[n-1]]
	q := ann{ih: ih, id: pid(n), port: 6881, left: 9, ident: id}.values()
	q.Set("locality", "gateway")
	r := mustOK(t, announceRaw(t, tr, q.Encode(), remote.String()))
	var names []string
	for _, a := range r.addrs {
		for name, ap := range addrs {
			if ap == a {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return names
}

func TestGatewayLocality(t *testing.T) {
	tr, clk, ih, addrs := gatewaySwarm(t)
	siteA := Identity{Tenant: "t", Site: "a", Region: "eu", Role: RoleAgent}
	for _, tc := range []struct {
		name string
		n    int // pid and address of the requester
		id   Identity
		want []string
	}{
		// Site a's gateway: its own site, the other sites' gateways, peers
		// of no site; never the origin, a non-gateway of another site or
		// another tenant.
		{"gateway a1", 1, siteA, []string{"a2", "a3", "b1", "c1", "foreign", "siteless"}},
		{"member a2", 3, siteA, []string{"a1", "a3"}},
		{"member a3", 6, siteA, []string{"a1", "a2"}},
		{"gateway c1 alone in its site", 5, Identity{Tenant: "t", Site: "c", Region: "us", Role: RoleAgent}, []string{"a1", "b1", "foreign", "siteless"}},
		{"member b2", 4, Identity{Tenant: "t", Site: "b", Region: "eu", Role: RoleAgent}, []string{"b1"}},
	} {
		if got := gatewayAnswer(t, tr, ih, tc.n, tc.id, addrs); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}

	// Re-announcing keeps the gateway: a1 stays oldest.
	if got := gatewayAnswer(t, tr, ih, 1, siteA, addrs); !slices.Contains(got, "b1") {
		t.Errorf("a1 lost its gateway role after re-announcing: %v", got)
	}
	// a1 leaves: the next oldest of site a (a2) takes over, a3 stays inside.
	mustOK(t, ann{ih: ih, id: pid(1), remote: addrs["a1"].String(), left: 9, event: "stopped", ident: siteA}.do(t, tr))
	if got, want := gatewayAnswer(t, tr, ih, 3, siteA, addrs), []string{"a3", "b1", "c1", "foreign", "siteless"}; !slices.Equal(got, want) {
		t.Errorf("after a1 left, a2 got %v, want %v", got, want)
	}
	if got, want := gatewayAnswer(t, tr, ih, 6, siteA, addrs), []string{"a2"}; !slices.Equal(got, want) {
		t.Errorf("after a1 left, a3 got %v, want %v", got, want)
	}
	// A gateway that stops announcing is replaced once it expires.
	clk.add(2 * time.Minute) // every announce above is now 2 min old
	for _, n := range []int{4, 6} {
		id := siteA
		if n == 4 {
			id.Site = "b"
		}
		gatewayAnswer(t, tr, ih, n, id, addrs)
	}
	clk.add(90 * time.Second) // a2, b1 (and the rest) expire; a3 and b2 are fresh
	if got, want := gatewayAnswer(t, tr, ih, 6, siteA, addrs), []string{"b2"}; !slices.Equal(got, want) {
		t.Errorf("after a2 and b1 expired, a3 got %v, want %v", got, want)
	}
}

func TestSwarmView(t *testing.T) {
	tr, _, ih, _ := gatewaySwarm(t)
	q := url.Values{"info_hash": {string(ih[:])}, "tenant": {"t"}}
	rec := get(t, tr, "/swarm?"+q.Encode(), "10.9.9.9:1")
	var view report.SwarmView
	if err := json.Unmarshal(rec, &view); err != nil {
		t.Fatalf("decode %q: %v", rec, err)
	}
	got := map[string]report.SwarmMember{}
	for _, m := range view.Agents {
		got[m.PeerID] = m
	}
	// Agents only (no foreign client, no origin), tenant t only.
	wantGateway := map[int]bool{1: true, 2: true, 3: false, 4: false, 5: true, 6: false, 9: false}
	if len(got) != len(wantGateway) {
		t.Errorf("view lists %d agents, want %d: %+v", len(got), len(wantGateway), view.Agents)
	}
	for n, gw := range wantGateway {
		id := pid(n)
		m, ok := got[hex.EncodeToString(id[:])]
		if !ok {
			t.Errorf("agent %d missing from the view", n)
			continue
		}
		if m.Gateway != gw || m.Left != 9 {
			t.Errorf("agent %d: %+v, want gateway %v, left 9", n, m, gw)
		}
	}
	if view.Interval != 60 {
		t.Errorf("interval %d", view.Interval)
	}

	// Malformed requests are refused, as announces are.
	for _, target := range []string{"/swarm", "/swarm?info_hash=short", "/swarm?info_hash=" + url.QueryEscape(string(ih[:])) + "&role=king"} {
		r := decode(t, get(t, tr, target, "10.9.9.9:1"))
		if r.Failure == "" {
			t.Errorf("%s: accepted", target)
		}
	}
	if b := get(t, tr, "/swarm?"+url.Values{"info_hash": {string(ih[:])}, "tenant": {"nobody"}}.Encode(), "10.9.9.9:1"); !strings.Contains(string(b), `"agents":[]`) {
		t.Errorf("unknown tenant: %s", b)
	}
}

// With a rendezvous peer set, a site's gateway gets it first (within
// numwant, in compact and list answers); a site member, a relay-mode
// agent and a non-gateway announce do not.
func TestGatewayRendezvous(t *testing.T) {
	tr, _, ih, addrs := gatewaySwarm(t)
	rz := netip.MustParseAddrPort("192.0.2.7:6890")
	tr.SetRendezvous(rz)
	siteA := Identity{Tenant: "t", Site: "a", Region: "eu", Role: RoleAgent}
	got := func(n int, locality string, edit func(url.Values)) []netip.AddrPort {
		t.Helper()
		q := ann{ih: ih, id: pid(n), port: 6881, left: 9, ident: siteA}.values()
		if locality != "" {
			q.Set("locality", locality)
		}
		if edit != nil {
			edit(q)
		}
		r := mustOK(t, announceRaw(t, tr, q.Encode(), addrs[[]string{"a1", "", "a2"}[n-1]].String()))
		out := r.addrs
		for _, d := range r.dicts {
			out = append(out, netip.AddrPortFrom(netip.MustParseAddr(d.IP), uint16(d.Port)))
		}
		return out
	}
	if a := got(1, "gateway", nil); len(a) == 0 || a[0] != rz {
		t.Errorf("gateway a1: %v, want %v first", a, rz)
	}
	if a := got(1, "gateway", func(q url.Values) { q.Set("numwant", "1") }); !slices.Equal(a, []netip.AddrPort{rz}) {
		t.Errorf("gateway a1, numwant 1: %v, want only %v", a, rz)
	}
	if a := got(1, "gateway", func(q url.Values) { q.Set("compact", "0") }); !slices.Contains(a, rz) {
		t.Errorf("gateway a1, list answer: %v, want %v", a, rz)
	}
	for _, tc := range []struct {
		name     string
		n        int
		locality string
	}{{"member a2", 3, "gateway"}, {"a1 without gateway locality", 1, "site"}} {
		if a := got(tc.n, tc.locality, nil); slices.Contains(a, rz) {
			t.Errorf("%s: got the rendezvous %v", tc.name, a)
		}
	}
}
