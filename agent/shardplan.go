package agent

import (
	"crypto/sha1"
	"slices"

	"github.com/swarmship/swarmship/policy"
)

// shardPlan says which member fetches each piece from the origin: first
// the piece's site, from policy.SiteShards over the sites that have live
// members (so no site holds much more than its fair share of the origin's
// pieces), then the member of that site that ranks first for the piece
// (rendezvous hashing, as before). Within a site, a member that leaves
// moves only its own pieces; a site that joins or leaves may move more.
type shardPlan struct {
	ih    [20]byte
	keys  []string     // sites, sorted
	ids   [][20]byte   // their rendezvous identities
	sites [][][20]byte // members of each site
	// shard[p] is piece p's site; nil: the site ranked first for p.
	shard []int
	// wants, if set, says whether agents of a site (by key) need piece
	// p (watermarked releases: each site fetches its own variants). A
	// piece goes only to a site that wants it.
	wants func(key string, p int) bool
}

// siteKey names a member's site for the plan.
func siteKey(site, region string) string { return site + "\x00" + region }

// newShardPlan groups members by siteOf (members siteOf does not know are
// counted in home's site: peers found on the LAN or before the tracker's
// list arrived). prev is reused when it was computed for the same sites
// and piece count.
func newShardPlan(ih [20]byte, n int, members [][20]byte, siteOf func([20]byte) (string, bool), home string, prev *shardPlan) *shardPlan {
	bySite := map[string][][20]byte{}
	for _, m := range members {
		k, ok := siteOf(m)
		if !ok {
			k = home
		}
		bySite[k] = append(bySite[k], m)
	}
	keys := make([]string, 0, len(bySite))
	for k := range bySite {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	sp := &shardPlan{ih: ih, keys: keys}
	for _, k := range keys {
		sp.sites = append(sp.sites, bySite[k])
	}
	if prev != nil && len(prev.shard) == n && slices.Equal(prev.keys, keys) {
		sp.ids, sp.shard = prev.ids, prev.shard
		return sp
	}
	for _, k := range keys {
		sp.ids = append(sp.ids, sha1.Sum([]byte("swarmship site\x00"+k)))
	}
	sp.shard, _ = policy.SiteShards(n, len(keys), func(p, s int) uint64 {
		return pieceScore(ih, sp.ids[s], p)
	}, policy.ShardSlack)
	return sp
}

// site is the index of piece p's site.
func (sp *shardPlan) site(p int) int {
	if p < len(sp.shard) {
		return sp.shard[p]
	}
	if len(sp.keys) == 1 {
		return 0
	}
	ids := sp.ids
	best := 0
	for s := 1; s < len(ids); s++ {
		if outranks(pieceScore(sp.ih, ids[s], p), ids[s], pieceScore(sp.ih, ids[best], p), ids[best]) {
			best = s
		}
	}
	return best
}

// owner is the member that fetches piece p from the origin; the zero ID
// when no member's site wants it.
func (sp *shardPlan) owner(p int) [20]byte {
	s := sp.site(p)
	if sp.wants != nil && !sp.wants(sp.keys[s], p) {
		// The even share went to a site that does not want p: the
		// wanting site ranked first for it takes it instead.
		s = -1
		for i, k := range sp.keys {
			if sp.wants(k, p) && (s < 0 || outranks(pieceScore(sp.ih, sp.ids[i], p), sp.ids[i], pieceScore(sp.ih, sp.ids[s], p), sp.ids[s])) {
				s = i
			}
		}
		if s < 0 {
			return [20]byte{}
		}
	}
	return pieceOwner(sp.ih, sp.sites[s], p)
}
