package tracker

import (
	"time"

	"github.com/swarmship/swarmship/internal/fielderr"
)

// withDefaults returns c with zero values replaced by the defaults and
// caps in force (a negative cap, none, becomes 0 from here on).
func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = defaultInterval
	}
	if c.PeerTTL <= 0 {
		c.PeerTTL = 3 * c.Interval
	}
	if c.MaxPeers <= 0 {
		c.MaxPeers = defaultMaxPeers
	}
	if c.SharedViewAge <= 0 {
		c.SharedViewAge = defaultSharedViewAge
	}
	c.MaxPeersPerAddress = capOr(c.MaxPeersPerAddress, defaultPeersPerAddress)
	c.MaxSwarmsPerAddress = capOr(c.MaxSwarmsPerAddress, defaultSwarmsPerAddress)
	c.MaxPeersPerToken = capOr(c.MaxPeersPerToken, defaultPeersPerToken)
	c.MaxSwarmsPerToken = capOr(c.MaxSwarmsPerToken, defaultSwarmsPerToken)
	c.MaxTotalPeers = capOr(c.MaxTotalPeers, defaultTotalPeers)
	return c
}

// Validate checks the tracker section of origin.yaml; errors name the field
// relative to it (internal/fielderr). Zero values are defaults and a
// negative cap means no cap, so only what can never work is refused.
func (c Config) Validate() error {
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"interval", c.Interval}, {"peer_ttl", c.PeerTTL}, {"shared_view_age", c.SharedViewAge}} {
		if d.v < 0 {
			return fielderr.New(d.field, "must not be negative")
		}
	}
	if c.Interval > 0 && c.Interval < time.Second {
		return fielderr.New("interval", "must be at least 1s (clients are told whole seconds)")
	}
	if c.PeerTTL > 0 && c.Interval > 0 && c.PeerTTL < c.Interval {
		return fielderr.New("peer_ttl", "%v is shorter than the announce interval %v: every peer would expire between announces", c.PeerTTL, c.Interval)
	}
	if c.MaxPeers < 0 {
		return fielderr.New("max_peers", "must not be negative")
	}
	return nil
}
