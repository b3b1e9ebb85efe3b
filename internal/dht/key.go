// Package dht is a private BitTorrent DHT per tenant (anacrolix/dht/v2
// underneath): every datagram is sealed with a key derived from the
// tenant's secret, so nodes without that key can neither read the DHT nor
// take part in it, and torrents are announced under keys derived from
// the tenant key, the scope they may be shared in (site, region, tenant)
// and the infohash, so an agent finds only the peers it may use.
package dht

import (
	"crypto/hmac"
	"crypto/sha256"
)

// Key is a tenant's DHT key. Two subkeys are derived from it: one seals
// datagrams, one makes announce targets.
type Key struct {
	seal, target [32]byte
}

// NewKey derives the key of tenant from secret, the way LSD's scope is
// derived (internal/lsd). secret may be empty: then tenants are still
// kept apart, but anyone who knows a tenant's name can join its DHT.
func NewKey(secret []byte, tenant string) Key {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("swarmship dht v1\x00"))
	// Names cannot hold a NUL (release.ValidateName): unambiguous.
	mac.Write([]byte(tenant))
	mac.Write([]byte{0})
	root := mac.Sum(nil)
	var k Key
	copy(k.seal[:], sub(root, "seal"))
	copy(k.target[:], sub(root, "target"))
	return k
}

func sub(root []byte, label string) []byte {
	mac := hmac.New(sha256.New, root)
	mac.Write([]byte(label))
	return mac.Sum(nil)
}

// Scope names the group of agents a torrent is shared with under one
// announce target. Build it with SiteScope, RegionScope or TenantScope.
type Scope string

// SiteScope is one site's agents (a site name is scoped by its region).
func SiteScope(region, site string) Scope { return Scope("site\x00" + region + "\x00" + site) }

// RegionScope is one region's agents.
func RegionScope(region string) Scope { return Scope("region\x00" + region) }

// TenantScope is every agent of the tenant.
func TenantScope() Scope { return "tenant" }

// Target is where peers of infohash ih are announced and looked up within
// scope: the DHT never sees the infohash itself, and a node of the
// tenant that looks up another scope's target finds nothing there.
func (k Key) Target(scope Scope, ih [20]byte) [20]byte {
	mac := hmac.New(sha256.New, k.target[:])
	mac.Write([]byte(scope))
	mac.Write([]byte{0})
	mac.Write(ih[:])
	var t [20]byte
	copy(t[:], mac.Sum(nil))
	return t
}
