package agent

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/report"
)

// TestRosterViewShards: agents of three sites that see the same DHT
// roster (each without itself, as the DHT answers) divide the pieces into
// disjoint shards that cover the release, each site getting a part; a
// member seen complete holds no shard.
func TestRosterViewShards(t *testing.T) {
	var addrs []netip.AddrPort
	for s := 1; s <= 3; s++ {
		for a := 1; a <= 4; a++ {
			addrs = append(addrs, netip.MustParseAddrPort(fmt.Sprintf("10.200.%d.%d:6881", s, 10+a)))
		}
	}
	done := addrs[len(addrs)-1] // finished: seen complete by everyone
	others := func(self netip.AddrPort) []netip.AddrPort {
		var out []netip.AddrPort
		for _, a := range addrs {
			if a != self {
				out = append(out, a)
			}
		}
		return out
	}
	var ih [20]byte
	const n = 600
	home := func([20]byte) (string, bool) { return "", false } // no tracker: sites unknown
	owned := map[int]int{}
	bySite := map[byte]int{}
	for _, self := range addrs[:len(addrs)-1] {
		view := rosterView(self, others(self), map[netip.Addr]bool{done.Addr(): true})
		if view[0] != rosterID(self) || len(view) != len(addrs)-1 {
			t.Fatalf("view of %v: %d members, self first %v", self, len(view), view[0] == rosterID(self))
		}
		plan := newShardPlan(ih, n, view, home, "x", nil)
		for p := range n {
			if plan.owner(p) == view[0] {
				owned[p]++
				bySite[self.Addr().As4()[2]]++
			}
		}
	}
	for p := range n {
		if owned[p] != 1 {
			t.Fatalf("piece %d has %d owners, want 1", p, owned[p])
		}
	}
	for s := byte(1); s <= 3; s++ {
		if bySite[s] < n/6 {
			t.Errorf("site %d owns %d of %d pieces", s, bySite[s], n)
		}
	}
}

// TestRosterOnlyWhileTrackersFail: the offload leaves the DHT roster
// while a tracker's list is fresh, once, and joins again when it goes
// stale.
func TestRosterOnlyWhileTrackersFail(t *testing.T) {
	w := &swarmWatcher{site: "a", fetched: time.Now(), members: map[[20]byte]report.SwarmMember{}}
	var joins, leaves int
	o := &offloader{watch: w,
		roster:      func() (netip.AddrPort, []netip.AddrPort, bool) { return netip.AddrPort{}, nil, false },
		joinRoster:  func() { joins++ },
		leaveRoster: func() { leaves++ },
	}
	for range 2 {
		if _, ok := o.rosterMembers(); ok {
			t.Fatal("roster used with a fresh tracker list")
		}
	}
	if joins != 0 || leaves != 1 {
		t.Fatalf("fresh list: %d joins, %d leaves; want 0, 1", joins, leaves)
	}
	w.fetched = time.Now().Add(-2 * listMaxAge)
	for range 2 {
		o.rosterMembers()
	}
	if joins != 1 || leaves != 1 {
		t.Fatalf("stale list: %d joins, %d leaves; want 1, 1", joins, leaves)
	}
}
