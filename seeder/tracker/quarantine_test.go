package tracker

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// Quarantined peers are dropped at once, never handed out, and refused
// when they announce again; peers behind the same address but with
// other peer IDs are not touched.
func TestQuarantine(t *testing.T) {
	tr, _ := newTest(Config{})
	ih := hash("quarantine")
	id := Identity{Tenant: "acme", Site: "s", Region: "eu", Role: RoleAgent}
	// Three agents behind one NAT address, one elsewhere.
	for i, remote := range []string{"198.51.100.7:1001", "198.51.100.7:1002", "198.51.100.7:1003", "203.0.113.9:1"} {
		mustOK(t, ann{ih: ih, id: pid(i + 1), remote: remote, port: 7000 + i, left: 10, ident: id}.do(t, tr))
	}
	tr.SetQuarantine(&Quarantine{IDs: map[[20]byte]bool{pid(2): true}})
	if n := stored(tr, ih); n != 3 {
		t.Fatalf("%d peers stored after quarantine, want 3", n)
	}
	r := mustOK(t, ann{ih: ih, id: pid(9), remote: "192.0.2.50:1", left: 10, ident: id}.do(t, tr))
	if len(r.addrs) != 3 {
		t.Fatalf("answer has %d peers, want 3 (the other two behind the NAT and the fourth)", len(r.addrs))
	}
	for _, a := range r.addrs {
		if a.Port() == 7001 {
			t.Errorf("answer hands out the quarantined peer %v", a)
		}
	}
	again := ann{ih: ih, id: pid(2), remote: "198.51.100.7:1002", port: 7001, left: 10, ident: id}.do(t, tr)
	if !strings.Contains(again.Failure, "quarantined") {
		t.Errorf("quarantined peer's announce: %+v, want a refusal", again)
	}
	if v := tr.swarmView(ih, "acme", nil, nil); len(v.Agents) != 4 { // three plus the requester pid(9)
		t.Errorf("swarm view lists %d agents, want 4", len(v.Agents))
	}

	// By address: everyone at it.
	tr.SetQuarantine(&Quarantine{IPs: map[netip.Addr]bool{netip.MustParseAddr("198.51.100.7"): true}})
	r = mustOK(t, ann{ih: ih, id: pid(9), remote: "192.0.2.50:1", left: 10, ident: id}.do(t, tr))
	if len(r.addrs) != 1 || r.addrs[0].Addr() != netip.MustParseAddr("203.0.113.9") {
		t.Errorf("answer after the address quarantine: %v, want only 203.0.113.9", r.addrs)
	}
	tr.SetQuarantine(nil)
	mustOK(t, ann{ih: ih, id: pid(2), remote: "198.51.100.7:1002", port: 7001, left: 10, ident: id}.do(t, tr))
}

// A tenant's entry holds in that tenant's swarms only: another tenant's
// peer with the same peer ID is still stored, served and listed, while a
// fleet-wide entry holds everywhere.
func TestQuarantineTenantScoped(t *testing.T) {
	tr, _ := newTest(Config{})
	ih := hash("quarantine-tenants")
	acme := Identity{Tenant: "acme", Site: "s", Region: "eu", Role: RoleAgent}
	globex := Identity{Tenant: "globex", Site: "s", Region: "eu", Role: RoleAgent}
	for _, id := range []Identity{acme, globex} {
		mustOK(t, ann{ih: ih, id: pid(2), remote: "198.51.100.7:1", port: 7002, left: 10, ident: id}.do(t, tr))
	}
	tr.SetQuarantine(&Quarantine{TenantIDs: map[string]map[[20]byte]bool{"acme": {pid(2): true}}})
	if r := mustOK(t, ann{ih: ih, id: pid(9), remote: "192.0.2.50:1", left: 10, ident: acme}.do(t, tr)); len(r.addrs) != 0 {
		t.Errorf("acme answer %v, want its quarantined peer left out", r.addrs)
	}
	if again := (ann{ih: ih, id: pid(2), remote: "198.51.100.7:1", port: 7002, left: 10, ident: acme}.do(t, tr)); !strings.Contains(again.Failure, "quarantined") {
		t.Errorf("acme's quarantined peer announcing: %+v, want a refusal", again)
	}
	if r := mustOK(t, ann{ih: ih, id: pid(9), remote: "192.0.2.51:1", left: 10, ident: globex}.do(t, tr)); len(r.addrs) != 1 || r.addrs[0].Port() != 7002 {
		t.Errorf("globex answer %v, want globex's peer with the same ID served", r.addrs)
	}
	mustOK(t, ann{ih: ih, id: pid(2), remote: "198.51.100.7:1", port: 7002, left: 10, ident: globex}.do(t, tr))
	if v := tr.swarmView(ih, "globex", nil, nil); len(v.Agents) != 2 {
		t.Errorf("globex swarm view lists %d agents, want 2", len(v.Agents))
	}
	if v := tr.swarmView(ih, "acme", nil, nil); len(v.Agents) != 1 {
		t.Errorf("acme swarm view lists %d agents, want 1 (the requester)", len(v.Agents))
	}

	// Fleet-wide: every tenant's.
	tr.SetQuarantine(&Quarantine{IDs: map[[20]byte]bool{pid(2): true}})
	if again := (ann{ih: ih, id: pid(2), remote: "198.51.100.7:1", port: 7002, left: 10, ident: globex}.do(t, tr)); !strings.Contains(again.Failure, "quarantined") {
		t.Errorf("globex peer under a fleet entry: %+v, want a refusal", again)
	}
}

// With weights, heavy peers are picked far more often than light ones
// when the answer cannot hold everyone, and the light ones still appear.
func TestWeightsFavourCapacity(t *testing.T) {
	tr, _ := newTest(Config{})
	ih := hash("weights")
	id := Identity{Tenant: "acme", Site: "s", Region: "eu", Role: RoleAgent}
	w := map[[20]byte]float64{}
	for i := 1; i <= 20; i++ {
		mustOK(t, ann{ih: ih, id: pid(i), remote: fmt.Sprintf("10.0.0.%d:1", i), left: 10, ident: id}.do(t, tr))
		w[pid(i)] = 1.0 / 16 // slow or saturated
		if i <= 10 {
			w[pid(i)] = 2
		}
	}
	tr.SetWeights(w)
	heavy, light := 0, 0
	for range 200 {
		r := mustOK(t, ann{ih: ih, id: pid(99), remote: "10.9.9.9:1", left: 10, numwant: "5", ident: id}.do(t, tr))
		for _, a := range r.addrs {
			if a.Addr().As4()[3] <= 10 {
				heavy++
			} else {
				light++
			}
		}
	}
	t.Logf("heavy %d, light %d", heavy, light)
	if heavy < 5*light || light == 0 {
		t.Errorf("heavy peers picked %d times, light %d: want heavy far ahead and light still present", heavy, light)
	}
	tr.SetWeights(nil)
	heavy, light = 0, 0
	for range 200 {
		r := mustOK(t, ann{ih: ih, id: pid(99), remote: "10.9.9.9:1", left: 10, numwant: "5", ident: id}.do(t, tr))
		for _, a := range r.addrs {
			if a.Addr().As4()[3] <= 10 {
				heavy++
			} else {
				light++
			}
		}
	}
	if light*2 < heavy || heavy*2 < light {
		t.Errorf("without weights: %d vs %d, want about even", heavy, light)
	}
}

// A site's gateway is an agent that is not slow where there is one, even
// if a slow agent has announced longer.
func TestGatewayElectionUsesCapacity(t *testing.T) {
	tr, c := newTest(Config{})
	ih := hash("gw-capacity")
	id := Identity{Tenant: "acme", Site: "s", Region: "eu", Role: RoleAgent}
	for i := 1; i <= 3; i++ {
		mustOK(t, ann{ih: ih, id: pid(i), remote: fmt.Sprintf("10.0.0.%d:1", i), left: 10, ident: id}.do(t, tr))
		c.add(1e9)
	}
	gateway := func() [20]byte {
		v := tr.swarmView(ih, "acme", nil, nil)
		for _, m := range v.Agents {
			if m.Gateway {
				var g [20]byte
				copy(g[:], []byte(mustUnhex(t, m.PeerID)))
				return g
			}
		}
		t.Fatal("no gateway")
		return [20]byte{}
	}
	if g := gateway(); g != pid(1) {
		t.Fatalf("gateway %q, want the oldest", g[:])
	}
	tr.SetWeights(map[[20]byte]float64{pid(1): 0.1, pid(2): 1.5}) // load alone moves nothing
	if g := gateway(); g != pid(1) {
		t.Fatalf("gateway %q after a weight change, want the oldest still", g[:])
	}
	tr.SetSlow(map[[20]byte]bool{pid(1): true})
	if g := gateway(); g != pid(2) {
		t.Errorf("gateway %q with the oldest slow, want the next oldest", g[:])
	}
	tr.SetSlow(map[[20]byte]bool{pid(1): true, pid(2): true, pid(3): true})
	if g := gateway(); g != pid(1) {
		t.Errorf("gateway %q when all are slow, want the oldest", g[:])
	}
}

func mustUnhex(t *testing.T, s string) string {
	t.Helper()
	var b []byte
	if _, err := fmt.Sscanf(s, "%x", &b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}
