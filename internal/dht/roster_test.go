package dht

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/testenv"
)

// Downloaders of two sites on one roster each see themselves and the
// others, whatever site; a roster member is never handed over as a peer
// to dial (the site scopes keep them apart), and a node without a peer
// port is on no roster.
func TestRosterListsEveryDownloader(t *testing.T) {
	k := NewKey([]byte("tenant secret"), "acme")
	origin := startNode(t, k, 0)
	a := startNode(t, k, 7001, origin.Addr())
	b := startNode(t, k, 7002, origin.Addr())
	c := startNode(t, k, 7003, origin.Addr())
	a.Add(ih1, []Scope{SiteScope("eu", "berlin")}, nil)
	b.Add(ih1, []Scope{SiteScope("eu", "berlin")}, nil)
	c.Add(ih1, []Scope{SiteScope("eu", "paris")}, nil)
	for _, n := range []testNode{a, b, c} {
		n.AddRoster(ih1, TenantScope())
	}
	origin.AddRoster(ih1, TenantScope()) // no port: ignored
	want := func(n testNode, self int, others ...int) error {
		s, m, ok := n.Roster(ih1, time.Minute)
		if !ok {
			return fmt.Errorf("node %d: no roster yet", self)
		}
		if s != netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(self)) {
			return fmt.Errorf("node %d: self %v", self, s)
		}
		got := map[int]bool{}
		for _, a := range m {
			got[int(a.Port())] = true
		}
		for _, o := range others {
			if !got[o] {
				return fmt.Errorf("node %d: roster %v lacks %d", self, m, o)
			}
		}
		if len(got) != len(others) {
			return fmt.Errorf("node %d: roster %v, want %v", self, m, others)
		}
		return nil
	}
	testenv.Eventually(t, 60*time.Second, 50*time.Millisecond, func() error {
		for _, e := range []error{want(a, 7001, 7002, 7003), want(b, 7002, 7001, 7003), want(c, 7003, 7001, 7002)} {
			if e != nil {
				return e
			}
		}
		return nil
	})
	if p := c.log.ports(ih1); p[7001] || p[7002] {
		t.Fatalf("the roster handed another site's agents over as peers: %v", p)
	}
	if _, _, ok := origin.Roster(ih1, time.Minute); ok {
		t.Fatal("a node without a peer port has a roster")
	}
	c.RemoveRoster(ih1)
	if _, _, ok := c.Roster(ih1, time.Minute); ok {
		t.Fatal("roster kept after RemoveRoster")
	}
}
