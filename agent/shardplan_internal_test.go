package agent

import (
	"fmt"
	"testing"

	"github.com/swarmship/swarmship/policy"
)

// Three sites of four agents, as in the branch testbed: every agent,
// whatever order it lists the members in, computes the same owner for
// each piece; no site holds more than its fair share (plus the slack);
// a member that leaves moves only its own site's pieces.
func TestShardPlanBalancesSites(t *testing.T) {
	ih := [20]byte{7, 7, 7}
	const pieces = 512
	site := map[[20]byte]string{}
	var all [][20]byte
	for s := range 3 {
		for a := range 4 {
			id := [20]byte{byte(s + 1), byte(a + 1)}
			site[id] = siteKey(fmt.Sprintf("branch-%d", s+1), "eu")
			all = append(all, id)
		}
	}
	siteOf := func(id [20]byte) (string, bool) { k, ok := site[id]; return k, ok }
	// Each agent lists itself first, the others in its own order.
	view := func(self int, members [][20]byte) [][20]byte {
		out := [][20]byte{members[self]}
		for i := len(members) - 1; i >= 0; i-- {
			if i != self {
				out = append(out, members[i])
			}
		}
		return out
	}
	owners := func(members [][20]byte) [][20]byte {
		var ref [][20]byte
		for i := range members {
			sp := newShardPlan(ih, pieces, view(i, members), siteOf, site[members[i]], nil)
			got := make([][20]byte, pieces)
			for p := range pieces {
				got[p] = sp.owner(p)
			}
			if ref == nil {
				ref = got
				continue
			}
			for p := range pieces {
				if got[p] != ref[p] {
					t.Fatalf("piece %d: agent %d says %x, agent 0 says %x", p, i, got[p][:2], ref[p][:2])
				}
			}
		}
		return ref
	}
	before := owners(all)
	perSite := map[string]int{}
	perMember := map[[20]byte]int{}
	for _, o := range before {
		perSite[site[o]]++
		perMember[o]++
	}
	limit := policy.ShareCap(pieces, 3, policy.ShardSlack)
	for k, c := range perSite {
		// The other two hold at most limit each.
		if c > limit || c < pieces-2*limit {
			t.Errorf("site %q holds %d pieces, want %d..%d", k, c, pieces-2*limit, limit)
		}
	}
	for m, c := range perMember {
		// 43 expected each; rendezvous within a site stays near that.
		if c < 20 || c > 70 {
			t.Errorf("member %x owns %d pieces", m[:2], c)
		}
	}
	// One agent of branch-2 leaves: only branch-2's pieces move, and
	// only its own.
	gone := all[5]
	var rest [][20]byte
	for _, m := range all {
		if m != gone {
			rest = append(rest, m)
		}
	}
	after := owners(rest)
	for p := range pieces {
		if before[p] != gone && after[p] != before[p] {
			t.Fatalf("piece %d moved from %x, which stayed", p, before[p][:2])
		}
	}
}

// Members the tracker's list does not name count in our own site; alone,
// an agent owns everything.
func TestShardPlanUnknownAndAlone(t *testing.T) {
	ih := [20]byte{9}
	self, lan := [20]byte{1}, [20]byte{2}
	none := func([20]byte) (string, bool) { return "", false }
	sp := newShardPlan(ih, 100, [][20]byte{self, lan}, none, siteKey("a", ""), nil)
	if len(sp.keys) != 1 {
		t.Fatalf("unknown members made %d sites, want 1", len(sp.keys))
	}
	mine := 0
	for p := range 100 {
		if sp.owner(p) == self {
			mine++
		}
	}
	if mine < 25 || mine > 75 {
		t.Errorf("self owns %d of 100 pieces with one other member", mine)
	}
	alone := newShardPlan(ih, 100, [][20]byte{self}, none, "", sp)
	for p := range 100 {
		if alone.owner(p) != self {
			t.Fatal("a lone agent does not own every piece")
		}
	}
}
