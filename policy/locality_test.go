package policy

import (
	"slices"
	"testing"
)

func TestAllowedRelease(t *testing.T) {
	eu := Residency{Tenant: "acme", Regions: []string{"eu-west", "eu-central"}}
	tests := []struct {
		name   string
		r      Residency
		self   Identity
		ok     bool
		reason string
	}{
		{"unrestricted", Residency{}, Identity{Tenant: "acme"}, true, ""},
		{"unrestricted, no tenant", Residency{}, Identity{}, true, ""},
		{"untenanted release, any tenant", Residency{}, Identity{Tenant: "globex"}, true, ""},
		{"own tenant, allowed region", eu, Identity{Tenant: "acme", Region: "eu-west"}, true, ""},
		{"other tenant", eu, Identity{Tenant: "globex", Region: "eu-west"}, false, `release belongs to tenant "acme", this agent to "globex"`},
		{"no tenant", eu, Identity{Region: "eu-west"}, false, `release belongs to tenant "acme", this agent to ""`},
		{"forbidden region", eu, Identity{Tenant: "acme", Region: "us-east"}, false, "release is restricted to regions eu-west, eu-central; this agent is in region us-east"},
		{"no region", eu, Identity{Tenant: "acme"}, false, "release is restricted to regions eu-west, eu-central and this agent has no region"},
	}
	for _, tc := range tests {
		ok, reason := AllowedRelease(tc.r, tc.self)
		if ok != tc.ok || reason != tc.reason {
			t.Errorf("%s: %v %q, want %v %q", tc.name, ok, reason, tc.ok, tc.reason)
		}
	}
}

func TestAllowedPeer(t *testing.T) {
	eu := Residency{Tenant: "acme", Regions: []string{"eu-west", "eu-central"}}
	me := Identity{Tenant: "acme", Site: "ber1", Region: "eu-central"}
	tests := []struct {
		name string
		r    Residency
		self Identity
		peer Identity
		want bool
	}{
		{"same tenant, allowed region", eu, me, Identity{Tenant: "acme", Site: "dub1", Region: "eu-west"}, true},
		{"same site", eu, me, me, true},
		{"peer outside the regions", eu, me, Identity{Tenant: "acme", Site: "nyc1", Region: "us-east"}, false},
		{"peer without region", eu, me, Identity{Tenant: "acme"}, false},
		{"peer of another tenant", eu, me, Identity{Tenant: "globex", Site: "ber1", Region: "eu-central"}, false},
		{"self outside the regions", eu, Identity{Tenant: "acme", Region: "us-east"}, Identity{Tenant: "acme", Region: "us-east"}, false},
		{"unrestricted, any region", Residency{Tenant: "acme"}, me, Identity{Tenant: "acme", Region: "us-east"}, true},
		{"unrestricted, tenants never mix", Residency{}, me, Identity{Tenant: "globex", Region: "eu-central"}, false},
		{"unrestricted, tenant '' is its own", Residency{}, Identity{}, Identity{Tenant: "acme"}, false},
		{"unrestricted, both without tenant", Residency{}, Identity{}, Identity{}, true},
	}
	for _, tc := range tests {
		if got := AllowedPeer(tc.r, tc.self, tc.peer); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLocality(t *testing.T) {
	me := Identity{Tenant: "acme", Site: "ber1", Region: "eu-central"}
	tests := []struct {
		self, peer Identity
		want       Tier
	}{
		{me, Identity{Site: "ber1", Region: "eu-central"}, TierSite},
		{me, Identity{Site: "muc1", Region: "eu-central"}, TierRegion},
		{me, Identity{Region: "eu-central"}, TierRegion},
		{me, Identity{Site: "ber1", Region: "eu-west"}, TierOther}, // a site is named within its region
		{me, Identity{Site: "ber1"}, TierOther},
		{me, Identity{}, TierOther},
		{Identity{Site: "ber1"}, Identity{Site: "ber1"}, TierOther},                             // no region: no locality
		{Identity{Region: "eu-central"}, Identity{Region: "eu-central"}, TierRegion},            // empty sites never match
		{Identity{Region: "eu-central"}, Identity{Region: "eu-central", Site: "x"}, TierRegion}, // ...
	}
	for _, tc := range tests {
		if got := Locality(tc.self, tc.peer); got != tc.want {
			t.Errorf("Locality(%+v, %+v) = %d, want %d", tc.self, tc.peer, got, tc.want)
		}
	}
}

func TestPeerOrder(t *testing.T) {
	me := Identity{Site: "ber1", Region: "eu-central"}
	peers := []Identity{
		{Site: "nyc1", Region: "us-east"},    // 0 other
		{Site: "muc1", Region: "eu-central"}, // 1 region
		{Site: "ber1", Region: "eu-central"}, // 2 site
		{},                                   // 3 other
		{Site: "ber1", Region: "eu-central"}, // 4 site
		{Site: "ham1", Region: "eu-central"}, // 5 region
		{Site: "ber1", Region: "eu-west"},    // 6 other
	}
	if got, want := PeerOrder(me, peers), []int{2, 4, 1, 5, 0, 3, 6}; !slices.Equal(got, want) {
		t.Fatalf("PeerOrder = %v, want %v", got, want)
	}
	if got := PeerOrder(me, nil); len(got) != 0 {
		t.Fatalf("PeerOrder(nil) = %v", got)
	}
	if got, want := PeerOrder(Identity{}, peers), []int{0, 1, 2, 3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Fatalf("PeerOrder without locality = %v, want %v", got, want)
	}
}
