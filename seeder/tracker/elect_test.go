package tracker

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"unique"
)

// TestElectSiteAgrees: the one-site election an answer runs first picks the
// same gateway as the full election, for every site, with stale peers,
// other roles, residency and trust in the mix.
func TestElectSiteAgrees(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sites := []siteKey{{noSite, noSite}}
	for i := range 6 {
		sites = append(sites, siteKey{unique.Make(fmt.Sprint("s", i%3)), unique.Make(fmt.Sprint("r", i/3))})
	}
	allowed := &regionSet{names: []string{"r0"}, handles: []unique.Handle[string]{unique.Make("r0")}}
	const cutoff = 100
	for round := range 500 {
		peers := make([]entry, rng.IntN(40))
		for i := range peers {
			k := sites[rng.IntN(len(sites))]
			peers[i] = entry{site: k.site, region: k.region, seen: int64(rng.IntN(200)),
				joined: int64(rng.IntN(5)), role: uint8(rng.IntN(3))}
			peers[i].id = pid(rng.IntN(1000))
		}
		var trusted []bool
		if round%2 == 1 {
			trusted = make([]bool, len(peers))
			for i := range trusted {
				trusted[i] = rng.IntN(3) == 0
			}
		}
		var rs *regionSet
		if round%3 == 2 {
			rs = allowed
		}
		s := new(scratch)
		electGateways(s, peers, cutoff, rs, trusted, nil)
		for _, k := range sites {
			wg, wok := s.gw[k]
			g, ok := electSite(peers, cutoff, rs, trusted, nil, k)
			if g != wg || ok != wok {
				t.Fatalf("round %d site %v: electSite (%d, %v), electGateways (%d, %v)", round, k, g, ok, wg, wok)
			}
		}
	}
}
