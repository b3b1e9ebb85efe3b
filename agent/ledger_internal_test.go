package agent

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/report"
)

func TestQuarantineSetMatches(t *testing.T) {
	var id [20]byte
	copy(id[:], "-SS0100-abcdefghijkl")
	q := parseQuarantineSet([]string{
		"peer:" + fmt.Sprintf("%x", id[:]),
		"addr:10.0.0.9",
		"addr:10.0.0.7:6881",
		"agent:someone", // mapped by the origin, not matched here
		"garbage",
	})
	other := [20]byte{1}
	for _, c := range []struct {
		k    ledgerKey
		addr string
		want bool
	}{
		{ledgerKey{id: id, ip: netip.MustParseAddr("192.0.2.1")}, "192.0.2.1:1", true},
		{ledgerKey{id: other, ip: netip.MustParseAddr("10.0.0.9")}, "10.0.0.9:5", true},
		{ledgerKey{id: other, ip: netip.MustParseAddr("10.0.0.7")}, "10.0.0.7:6881", true},
		// Another agent behind the quarantined ip:port's NAT address.
		{ledgerKey{id: other, ip: netip.MustParseAddr("10.0.0.7")}, "10.0.0.7:6882", false},
		{ledgerKey{id: other, ip: netip.MustParseAddr("192.0.2.1")}, "192.0.2.1:1", false},
	} {
		if got := q.matches(c.k, c.addr); got != c.want {
			t.Errorf("matches(%x, %s) = %v, want %v", c.k.id[:4], c.addr, got, c.want)
		}
	}
	if q := parseQuarantineSet(nil); q.matches(ledgerKey{id: id}, "") {
		t.Error("empty set matches")
	}
}

// The ledger keeps at most ledgerMaxPeers, evicting the least recently
// seen unconnected peer; a report carries the most misbehaving first and
// at most report.MaxLedgerPeers; what it says passes the origin's checks.
func TestLedgerBoundsAndSnapshot(t *testing.T) {
	l := newLedger(nil)
	now := time.Unix(1_700_000_000, 0)
	l.now = func() time.Time { return now }
	key := func(i int) ledgerKey {
		var id [20]byte
		copy(id[:], fmt.Sprintf("-SS0100-%012d", i))
		return ledgerKey{id: id, ip: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})}
	}
	l.mu.Lock()
	for i := range ledgerMaxPeers + 10 {
		now = now.Add(time.Millisecond)
		e := l.entryLocked(key(i), key(i).ip.String()+":6881", now)
		e.Down = int64(i)
	}
	l.peers[key(ledgerMaxPeers+5)].Stalled = 7
	n := len(l.peers)
	_, oldest := l.peers[key(0)]
	l.mu.Unlock()
	if n != ledgerMaxPeers || oldest {
		t.Errorf("%d peers tracked (oldest kept: %v), want %d and the oldest evicted", n, oldest, ledgerMaxPeers)
	}
	s := l.snapshot(1 << 20)
	if len(s.Peers) != report.MaxLedgerPeers || s.Peers[0].Stalled != 7 || s.UpLimit != 1<<20 {
		t.Errorf("snapshot: %d peers, first %+v, up limit %v", len(s.Peers), s.Peers[0], s.UpLimit)
	}
	r := &report.Report{V: report.Version, AgentID: "a", IntervalSeconds: 1, Ledger: s}
	if err := r.Validate(); err != nil {
		t.Errorf("the origin would refuse the ledger: %v", err)
	}
	if !strings.HasPrefix(s.Peers[0].PeerID, "2d5353") {
		t.Errorf("peer id %q not hex of the peer ID", s.Peers[0].PeerID)
	}
}
