package seeder

import (
	"context"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"time"

	"github.com/swarmship/swarmship/catalog"
)

// allowlist is the tracker's view of the catalog (tracker.Catalog and
// tracker.Reloader): the infohash of every current release and the tenant
// it belongs to. Announces, scrapes and swarm views for anything else are
// refused with nothing stored, so random infohashes cannot grow the
// tracker (20,000 of them took the origin from 52 to 107 MiB before).
type allowlist struct {
	m atomic.Pointer[map[[20]byte]string] // infohash -> release tenant; "" = every tenant

	// byRef keeps each release's entry across refreshes, so a manifest
	// that fails to load for a moment does not drop a live swarm.
	mu    sync.Mutex
	byRef map[string]allowEntry

	reloadMu   sync.Mutex
	lastReload time.Time
	reload     func(ctx context.Context) error // re-reads the catalog and calls update
}

type allowEntry struct {
	ih     [20]byte
	tenant string
}

// reloadEvery limits catalog re-reads caused by unknown infohashes, which
// hostile clients can send at will.
const reloadEvery = time.Second

// Allows implements tracker.Catalog: the release's own tenant, or any
// tenant for a release without one (as policy.AllowedRelease).
func (a *allowlist) Allows(tenant string, ih [20]byte) bool {
	m := a.m.Load()
	if m == nil {
		return false // catalog not loaded yet
	}
	rt, ok := (*m)[ih]
	return ok && (rt == "" || rt == tenant)
}

// Reload implements tracker.Reloader: an agent can see a new release before
// the origin's next refresh, and a refused announce is retried only a
// minute later, so a miss re-reads the catalog, at most once a second.
// Misses coalesce: one that arrived before a re-read started takes that
// re-read's result; the others wait (up to reloadEvery) for the next one.
// A flood of unknown infohashes thus costs one catalog read a second and
// holds each of its requests for at most about two seconds.
func (a *allowlist) Reload(ctx context.Context) bool {
	if a.reload == nil {
		return false
	}
	asked := time.Now()
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	if a.lastReload.After(asked) {
		return true
	}
	if wait := reloadEvery - time.Since(a.lastReload); wait > 0 {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
	a.lastReload = time.Now()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return a.reload(ctx) == nil
}

// update installs the allowlist for the current releases: ms holds the
// manifests that loaded, current every release that is neither yanked nor
// expired (by ref), including those whose manifest failed this time.
func (a *allowlist) update(ms []*catalog.Manifest, current map[string]bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	next := make(map[string]allowEntry, len(current))
	for _, m := range ms {
		var e allowEntry
		b, err := hex.DecodeString(m.InfoHash)
		if err != nil || len(b) != 20 {
			continue
		}
		copy(e.ih[:], b)
		e.tenant = m.Tenant
		next[m.Ref().String()] = e
	}
	for ref := range current {
		if _, ok := next[ref]; !ok {
			if e, ok := a.byRef[ref]; ok {
				next[ref] = e
			}
		}
	}
	a.byRef = next
	m := make(map[[20]byte]string, len(next))
	for _, e := range next {
		m[e.ih] = e.tenant
	}
	a.m.Store(&m)
}
