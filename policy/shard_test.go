package policy

import (
	"encoding/binary"
	"hash/fnv"
	"testing"
)

// testRank is a rendezvous rank like the agent's: a hash of seed, site and
// piece.
func testRank(seed uint64) func(p, s int) uint64 {
	return func(p, s int) uint64 {
		h := fnv.New64a()
		var b [24]byte
		binary.LittleEndian.PutUint64(b[0:], seed)
		binary.LittleEndian.PutUint64(b[8:], uint64(s))
		binary.LittleEndian.PutUint64(b[16:], uint64(p))
		h.Write(b[:])
		x := h.Sum64()
		x ^= x >> 33
		x *= 0xff51afd7ed558ccd
		x ^= x >> 33
		return x
	}
}

func TestSiteShards(t *testing.T) {
	tests := []struct {
		name      string
		n, sites  int
		slack     float64
		maxShare  int // most pieces any site may get
		minOnTop  float64
		wantPlain bool // too much work: left to rendezvous order
	}{
		{name: "testbed: 512 pieces, 3 sites", n: 512, sites: 3, slack: ShardSlack, maxShare: 173, minOnTop: 0.85},
		{name: "no slack", n: 512, sites: 3, maxShare: 171, minOnTop: 0.85},
		{name: "two sites", n: 1000, sites: 2, slack: ShardSlack, maxShare: 505, minOnTop: 0.9},
		{name: "uneven division", n: 10, sites: 4, maxShare: 3, minOnTop: 0.5},
		{name: "more sites than pieces", n: 3, sites: 5, maxShare: 1, minOnTop: 0.3},
		{name: "one site", n: 7, sites: 1, maxShare: 7, minOnTop: 1},
		{name: "too many to balance", n: 1 << 20, sites: 8, wantPlain: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rank := testRank(42)
			got, ok := SiteShards(tc.n, tc.sites, rank, tc.slack)
			if tc.wantPlain {
				if ok || got != nil {
					t.Fatalf("got ok=%v len %d, want plain rendezvous (ok=false, nil)", ok, len(got))
				}
				return
			}
			if !ok || len(got) != tc.n {
				t.Fatalf("ok=%v len %d, want true and %d", ok, len(got), tc.n)
			}
			load := make([]int, tc.sites)
			onTop := 0
			for p, s := range got {
				if s < 0 || s >= tc.sites {
					t.Fatalf("piece %d: site %d out of range", p, s)
				}
				load[s]++
				top := 0
				for s2 := 1; s2 < tc.sites; s2++ {
					if rank(p, s2) > rank(p, top) {
						top = s2
					}
				}
				if top == s {
					onTop++
				}
			}
			for s, l := range load {
				if l > tc.maxShare {
					t.Errorf("site %d holds %d pieces, cap %d (loads %v)", s, l, tc.maxShare, load)
				}
			}
			if f := float64(onTop) / float64(tc.n); f < tc.minOnTop {
				t.Errorf("%.2f of pieces at their top-ranked site, want >= %.2f", f, tc.minOnTop)
			}
			again, _ := SiteShards(tc.n, tc.sites, rank, tc.slack)
			for p := range got {
				if again[p] != got[p] {
					t.Fatalf("piece %d: %d then %d: not deterministic", p, got[p], again[p])
				}
			}
		})
	}
}

// Plain rendezvous order spreads the shares; the cap is what evens them.
func TestSiteSharesEvenWherePlainIsNot(t *testing.T) {
	const n, sites = 512, 3
	worstPlain, worstCapped := 0, 0
	for seed := range uint64(20) {
		rank := testRank(seed)
		plain := make([]int, sites)
		for p := range n {
			top := 0
			for s := 1; s < sites; s++ {
				if rank(p, s) > rank(p, top) {
					top = s
				}
			}
			plain[top]++
		}
		capped := make([]int, sites)
		shard, _ := SiteShards(n, sites, rank, ShardSlack)
		for _, s := range shard {
			capped[s]++
		}
		worstPlain = max(worstPlain, plain[0], plain[1], plain[2])
		worstCapped = max(worstCapped, capped[0], capped[1], capped[2])
	}
	if worstCapped > ShareCap(n, sites, ShardSlack) {
		t.Errorf("capped: largest share %d > cap %d", worstCapped, ShareCap(n, sites, ShardSlack))
	}
	if worstPlain <= worstCapped {
		t.Errorf("plain rendezvous's largest share %d is not above the capped %d: the test shows nothing", worstPlain, worstCapped)
	}
}

func TestShareCap(t *testing.T) {
	tests := []struct {
		n, sites int
		slack    float64
		want     int
	}{
		{512, 3, 0, 171},
		{512, 3, 0.01, 173},
		{9, 3, 0, 3},
		{10, 3, 0, 4},
		{10, 3, -1, 4}, // a negative slack is no slack
		{1, 8, 0.5, 1},
	}
	for _, tc := range tests {
		if got := ShareCap(tc.n, tc.sites, tc.slack); got != tc.want {
			t.Errorf("ShareCap(%d, %d, %v) = %d, want %d", tc.n, tc.sites, tc.slack, got, tc.want)
		}
	}
}
