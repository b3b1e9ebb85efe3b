package tracker

import (
	"context"
	"errors"
)

// swarmStore is where the swarms live. Both implementations keep the
// swarms the answer path reads in the tracker's shards (so answers,
// gateway elections and swarm views are built from memory the same way);
// they differ in what is authoritative: the shards themselves (memStore,
// one origin) or a Redis the origins share, of which the shards hold a
// per-swarm copy (redisStore).
type swarmStore interface {
	// put stores or refreshes e in the (tenant, infohash) swarm, or
	// removes it when stopped. completed counts a download for scrape.
	put(ctx context.Context, infoHash [20]byte, tenant string, e *entry, stopped, completed bool, cutoff int64) (reason string, err error)
	// report records what reporter says it is connected to (trust.go).
	report(ctx context.Context, infoHash [20]byte, tenant string, reporter *entry, ids [][20]byte, cutoff int64) (bool, error)
	// fresh makes the shards' copy of the swarm recent enough to answer
	// from. An error leaves the last copy in place.
	fresh(ctx context.Context, infoHash [20]byte, tenant string) error
}

// memStore keeps the swarms in the tracker's shards only: one origin.
type memStore struct{ t *Tracker }

func (m memStore) put(_ context.Context, infoHash [20]byte, tenant string, e *entry, stopped, completed bool, cutoff int64) (string, error) {
	sh := m.t.shard(infoHash)
	if stopped {
		if err := m.t.remove(sh, infoHash, tenant, e); err != nil {
			return reasonPeerID, err
		}
		return "", nil
	}
	return m.t.upsert(sh, infoHash, tenant, e, completed, cutoff)
}

func (m memStore) report(_ context.Context, infoHash [20]byte, tenant string, reporter *entry, ids [][20]byte, cutoff int64) (bool, error) {
	return m.t.storeReport(m.t.shard(infoHash), infoHash, tenant, reporter, ids, cutoff)
}

func (memStore) fresh(context.Context, [20]byte, string) error { return nil }

// errPeerIDBound refuses an announce that reuses a live peer's ID from
// another address, credential or identity: it may neither replace nor
// remove that peer.
var errPeerIDBound = errors.New("peer_id is in use by another peer until it expires")

// upsert stores or refreshes e in the (tenant, infohash) swarm. A peer ID
// stays bound to the address, credential and identity of its first
// announce until it expires; a new peer must fit the caps.
func (t *Tracker) upsert(sh *shard, infoHash [20]byte, tenant string, e *entry, completed bool, cutoff int64) (string, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sw := sh.byHash[infoHash][tenant]
	if sw != nil {
		if i, ok := sw.index[e.id]; ok {
			old := &sw.peers[i]
			if old.seen >= cutoff && !sameOwner(old, e) {
				return reasonPeerID, errPeerIDBound
			}
			if sameOwner(old, e) {
				e.joined = old.joined
				if old.seen < cutoff {
					e.joined = e.seen // a new life for an expired ID
				}
				sw.peers[i] = *e
				if completed {
					sw.downloaded++
				}
				return "", nil
			}
			// An expired peer with this ID: let it go, then admit e as new.
			t.removeAt(sh, infoHash, tenant, sw, i)
			sw = sh.byHash[infoHash][tenant]
		}
	}
	if reason, err := t.lim.acquire(infoHash, tenant, e.addr.Addr(), e.tok); err != nil {
		return reason, err
	}
	tenants := sh.byHash[infoHash]
	if tenants == nil {
		tenants = make(map[string]*swarm, 1)
		sh.byHash[infoHash] = tenants
	}
	if sw == nil {
		sw = &swarm{index: make(map[[20]byte]int)}
		tenants[tenant] = sw
	}
	e.joined = e.seen
	sw.index[e.id] = len(sw.peers)
	sw.peers = append(sw.peers, *e)
	sh.active[tenant]++
	if completed {
		sw.downloaded++
	}
	return "", nil
}

// sameOwner tells whether b comes from the peer that stored a: same
// address (the port may change), credential and identity.
func sameOwner(a, b *entry) bool {
	return a.addr.Addr() == b.addr.Addr() && a.tok == b.tok && a.site == b.site && a.region == b.region && a.role == b.role
}

// remove deletes a peer (event=stopped) if e, the stopping announce, comes
// from its owner; a stop for an unknown ID is a no-op.
func (t *Tracker) remove(sh *shard, infoHash [20]byte, tenant string, e *entry) error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sw := sh.byHash[infoHash][tenant]
	if sw == nil {
		return nil
	}
	i, ok := sw.index[e.id]
	if !ok {
		return nil
	}
	if !sameOwner(&sw.peers[i], e) {
		return errPeerIDBound
	}
	t.removeAt(sh, infoHash, tenant, sw, i)
	return nil
}

// removeAt deletes peer i of sw. Callers hold sh.mu.
func (t *Tracker) removeAt(sh *shard, infoHash [20]byte, tenant string, sw *swarm, i int) {
	p := &sw.peers[i]
	id := p.id
	t.lim.release(infoHash, tenant, p.addr.Addr(), p.tok)
	delete(sw.reports, id)
	last := len(sw.peers) - 1
	if i != last {
		sw.peers[i] = sw.peers[last]
		sw.index[sw.peers[i].id] = i
	}
	sw.peers[last] = entry{}
	sw.peers = sw.peers[:last]
	delete(sw.index, id)
	sh.active[tenant]--
	sh.dropIfEmpty(infoHash, tenant)
}

// dropIfEmpty forgets an empty swarm, and the infohash once no tenant has
// one, so announces for many short-lived releases do not leak memory.
// Callers hold sh.mu.
func (sh *shard) dropIfEmpty(infoHash [20]byte, tenant string) {
	tenants := sh.byHash[infoHash]
	if sw := tenants[tenant]; sw != nil && len(sw.peers) == 0 {
		delete(tenants, tenant)
	}
	if len(tenants) == 0 {
		delete(sh.byHash, infoHash)
	}
	if sh.active[tenant] == 0 {
		delete(sh.active, tenant) // no zero-valued series for departed tenants
	}
}

// filter keeps the peers of sw for which keep is true, in place, releases
// the others' caps and drops sw if it is left empty. Callers hold sh.mu.
func (t *Tracker) filter(sh *shard, infoHash [20]byte, tenant string, sw *swarm, keep func(*entry) bool) {
	n := 0
	for i := range sw.peers {
		p := &sw.peers[i]
		if keep(p) {
			sw.peers[n] = *p
			n++
			continue
		}
		t.lim.release(infoHash, tenant, p.addr.Addr(), p.tok)
		delete(sw.reports, p.id)
	}
	removed := len(sw.peers) - n
	if removed == 0 {
		return
	}
	clear(sw.peers[n:])
	sw.peers = sw.peers[:n]
	clear(sw.index)
	for i := range sw.peers {
		sw.index[sw.peers[i].id] = i
	}
	sh.active[tenant] -= removed
	sh.dropIfEmpty(infoHash, tenant)
}
