package tracker

import (
	"math"
	"math/bits"
	"net/netip"
	"slices"
)

// Quarantine and weights (issue 20). The origin sets both from its
// operators' quarantine list and the agents' contribution ledgers; the
// tracker applies them to every announce, answer and swarm view.

// reasonQuarantined labels refusals of quarantined announcers.
const reasonQuarantined = "quarantined"

// Quarantine is the set of peers the tracker refuses and never hands
// out: by peer ID (agents behind one NAT address differ by it), by IP
// address, or by ip:port. IDs, IPs and Addrs apply to every tenant (a
// fleet operator's entries); TenantIDs only to the named tenant's swarms,
// so a tenant's operator cannot cut off another tenant's peer that uses
// (or is made to look like it uses) the same peer ID.
type Quarantine struct {
	IDs       map[[20]byte]bool
	TenantIDs map[string]map[[20]byte]bool
	IPs       map[netip.Addr]bool
	Addrs     map[netip.AddrPort]bool
}

// Len is the number of entries.
func (q *Quarantine) Len() int {
	if q == nil {
		return 0
	}
	n := len(q.IDs) + len(q.IPs) + len(q.Addrs)
	for _, ids := range q.TenantIDs {
		n += len(ids)
	}
	return n
}

// has reports whether e, a peer of tenant's swarms, is quarantined: by a
// fleet-wide entry or by one of its own tenant.
func (q *Quarantine) has(e *entry, tenant string) bool {
	if q == nil {
		return false
	}
	return q.IDs[e.id] || q.TenantIDs[tenant][e.id] || q.IPs[e.addr.Addr()] || q.Addrs[e.addr]
}

// SetQuarantine replaces the quarantined peers (nil: none). Stored peers
// it names are dropped at once; their next announces are refused.
func (t *Tracker) SetQuarantine(q *Quarantine) {
	if q.Len() == 0 {
		t.quarantine.Store(nil)
		return
	}
	t.quarantine.Store(q)
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for ih, tenants := range sh.byHash {
			for tenant, sw := range tenants {
				t.filter(sh, ih, tenant, sw, func(e *entry) bool { return !q.has(e, tenant) })
			}
		}
		sh.mu.Unlock()
	}
}

// SetWeights gives agents weights by peer ID: 1 is an average agent,
// less a slow or saturated one, more a fast idle one; agents not listed
// weigh 1. Answers then pick peers with a chance in proportion to their
// weight (within each locality tier) and list them heaviest-first at
// random. nil: every peer weighs the same.
func (t *Tracker) SetWeights(w map[[20]byte]float64) {
	if len(w) == 0 {
		t.weights.Store(nil)
		return
	}
	t.weights.Store(&w)
}

func (t *Tracker) weightMap() map[[20]byte]float64 {
	if p := t.weights.Load(); p != nil {
		return *p
	}
	return nil
}

// SetSlow names the agents that are slow by their capacity figures: a
// site's gateway is one of the others where there is one. Momentary load
// is left out on purpose: a gateway that moved with every burst would
// leave a site with two agents holding WAN connections. nil: none.
func (t *Tracker) SetSlow(slow map[[20]byte]bool) {
	if len(slow) == 0 {
		t.slow.Store(nil)
		return
	}
	t.slow.Store(&slow)
}

func (t *Tracker) slowSet() map[[20]byte]bool {
	if p := t.slow.Load(); p != nil {
		return *p
	}
	return nil
}

// weightOf is id's weight, 1 when unknown; never 0 or negative.
func weightOf(w map[[20]byte]float64, id [20]byte) float64 {
	if v, ok := w[id]; ok && v > 0 && !math.IsInf(v, 0) {
		return v
	}
	return 1
}

// unit returns a pseudo-random float64 in (0, 1].
func (s *scratch) unit() float64 {
	s.rng += 0xa0761d6478bd642f
	hi, lo := bits.Mul64(s.rng, s.rng^0xe7037ed1a0b428db)
	return (float64((hi^lo)>>11) + 1) / (1 << 53)
}

// offerWeighted is offer with weights (Efraimidis-Spirakis A-Res): each
// candidate draws key log(u)/w and the n largest keys stay, so a peer's
// chance to be kept grows with its weight.
func (s *scratch) offerWeighted(tier, i, n int, w float64) {
	s.seen[tier]++
	k := math.Log(s.unit()) / w
	res, keys := s.res[tier], s.keys[tier]
	if len(res) < n {
		s.res[tier] = append(res, i)
		s.keys[tier] = append(keys, k)
		return
	}
	lo := 0
	for j := 1; j < len(keys); j++ {
		if keys[j] < keys[lo] {
			lo = j
		}
	}
	if k > keys[lo] {
		res[lo], keys[lo] = i, k
	}
}

// orderWeighted lists each tier's reservoir by key, largest first: a
// random order in which heavier peers tend to come first.
func (s *scratch) orderWeighted() {
	for t := range s.res {
		res, keys := s.res[t], s.keys[t]
		idx := make([]int, len(res))
		for j := range idx {
			idx[j] = j
		}
		slices.SortFunc(idx, func(a, b int) int {
			switch {
			case keys[a] > keys[b]:
				return -1
			case keys[a] < keys[b]:
				return 1
			}
			return 0
		})
		sorted := make([]int, len(res))
		for j, x := range idx {
			sorted[j] = res[x]
		}
		copy(res, sorted)
	}
}
