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

// AllowedPeer reports whether self may exchange the release with peer:
// self may hold it (AllowedRelease), the peer is of the same tenant
// (tenants never mix, "" being a tenant of its own), and, for a release
// restricted to regions, the peer is in one of them.
func AllowedPeer(r Residency, self, peer Identity) bool {
	ok, _ := AllowedRelease(r, self)
	return ok && peer.Tenant == self.Tenant && inRegions(r.Regions, peer.Region)
}

// inRegions: an empty list allows every region; an empty region matches none.
func inRegions(regions []string, region string) bool {
	return len(regions) == 0 || region != "" && slices.Contains(regions, region)
}

// Tier is how near a peer is.
type Tier int

// Tiers, nearest first.
const (
	TierSite   Tier = iota // same region and site
	TierRegion             // same region, another site
	TierOther              // anywhere else, or unknown
)

// Locality returns peer's tier seen from self, as the tracker ranks peers:
// empty regions and sites never match, and a site counts only within the
// same region (site names are per region). Traffic with peers outside
// TierSite crosses the WAN.
func Locality(self, peer Identity) Tier {
	switch {
	case self.Region == "" || peer.Region != self.Region:
		return TierOther
	case self.Site != "" && peer.Site == self.Site:
		return TierSite
	}
	return TierRegion
}

// PeerOrder returns the indices of peers, same site first, then same
// region, then the rest; the order within a tier is kept.
func PeerOrder(self Identity, peers []Identity) []int {
	order := make([]int, len(peers))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return int(Locality(self, peers[a])) - int(Locality(self, peers[b]))
	})
	return order
}
