package policy

import (
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
