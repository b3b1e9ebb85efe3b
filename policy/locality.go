package policy

import (
	"fmt"
	"slices"
	"strings"
)

// Identity is who an agent (or peer) is: its tenant, site and region, as
// in its tracker token and announce URL.
type Identity struct {
	Tenant string `yaml:"tenant"`
	Site   string `yaml:"site"`
	Region string `yaml:"region"`
}

// Residency is a release's placement labels from its signed manifest.
type Residency struct {
	// Tenant owns the release; only its agents may fetch it. "" means the
	// release is not tenant-specific.
	Tenant string
	// Regions are the regions the release may be in; empty means anywhere.
	Regions []string
}

// AllowedRelease reports whether self may fetch and hold the release at
// all, and why not: another tenant's release, or a region outside r.Regions
// (an agent without a region is outside every restricted release).
func AllowedRelease(r Residency, self Identity) (ok bool, reason string) {
	if r.Tenant != "" && r.Tenant != self.Tenant {
		return false, fmt.Sprintf("release belongs to tenant %q, this agent to %q", r.Tenant, self.Tenant)
	}
	if !inRegions(r.Regions, self.Region) {
		if self.Region == "" {
			return false, "release is restricted to regions " + strings.Join(r.Regions, ", ") + " and this agent has no region"
		}
		return false, "release is restricted to regions " + strings.Join(r.Regions, ", ") + "; this agent is in region " + self.Region
	}
	return true, ""
}

// inRegions: an empty list allows every region; an empty region matches none.
func inRegions(regions []string, region string) bool {
	return len(regions) == 0 || region != "" && slices.Contains(regions, region)
}
