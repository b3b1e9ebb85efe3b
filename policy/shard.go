package policy

import "math"

// Origin shards per site.
//
// Each piece of a release is fetched from the origin by one agent, and the
// other sites then take it over the WAN from that agent's site. A site's
// uplink has to carry its share of the origin's pieces to every other
// site, so the site with the largest share finishes its uplink work last.
// Plain rendezvous hashing gives shares that spread with the square root
// of the piece count (512 pieces, 3 sites: about ±6% of a third), which
// left one site of the branch testbed waiting on the others' uplinks.

// ShardSlack is how far above an even split a site's share may go: room
// for the ordering of rendezvous ranks, not for imbalance.
const ShardSlack = 0.01

// maxShardWork bounds pieces × sites for one balanced assignment; above
// it SiteShards leaves the pieces to plain rendezvous order (many sites
// make the shares small and the work large: an agent recomputes when the
// set of sites changes).
const maxShardWork = 1 << 22

// SiteShards assigns each of n pieces to one of sites sites: the site of
// highest rank(piece, site) whose share is not yet full, a share holding
// at most ceil(n/sites·(1+slack)) pieces. Pieces are taken in index order,
// so every agent that has the same sites (in the same order) and the same
// rank computes the same assignment. ok is false (and the result nil)
// when balancing would cost too much: then each piece goes to its
// highest-ranked site.
func SiteShards(n, sites int, rank func(piece, site int) uint64, slack float64) (shard []int, ok bool) {
	if n <= 0 || sites <= 0 {
		return nil, true
	}
	if sites == 1 {
		return make([]int, n), true
	}
	if n*sites > maxShardWork {
		return nil, false
	}
	limit := ShareCap(n, sites, slack)
	load := make([]int, sites)
	shard = make([]int, n)
	ranks := make([]uint64, sites)
	for p := range n {
		for s := range sites {
			ranks[s] = rank(p, s)
		}
		best := -1
		for s := range sites {
			if load[s] >= limit {
				continue
			}
			// Ties go to the lower index, so the result is the same
			// whatever order equal ranks are met in.
			if best < 0 || ranks[s] > ranks[best] {
				best = s
			}
		}
		shard[p] = best
		load[best]++
	}
	return shard, true
}

// ShareCap is the most pieces of n one of sites sites may hold:
// ceil(n/sites·(1+slack)), at least ceil(n/sites) so that every piece has
// room.
func ShareCap(n, sites int, slack float64) int {
	even := (n + sites - 1) / sites
	c := int(math.Ceil(float64(n) / float64(sites) * (1 + max(0, slack))))
	return max(even, c)
}
