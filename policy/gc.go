package policy

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/swarmship/swarmship/internal/bytesize"
	"github.com/swarmship/swarmship/internal/release"
)

// ErrQuota is returned (wrapped) when something does not fit in the cache
// quota; test with errors.Is.
var ErrQuota = errors.New("cache quota exceeded")

// CachedRelease is one release in the agent's cache, as PlanGC sees it.
type CachedRelease struct {
	Name, Version string
	Size          int64     // bytes it takes (a download in progress: its full size)
	Active        bool      // the activated version of Name: never evicted
	Pinned        bool      // a subscription pins this version: kept unless yanked or expired
	Yanked        bool      // withdrawn from the catalog
	Expires       time.Time // zero: never; expired once now >= Expires
	LastUsed      time.Time // last activated, served or verified; LRU order
	// Downloading is true while the release is being downloaded or waits
	// for its activation time: it is never evicted.
	Downloading bool
}

// Expired reports whether r has expired at now (now >= Expires).
func (r CachedRelease) Expired(now time.Time) bool {
	return !r.Expires.IsZero() && !now.Before(r.Expires)
}

func (r CachedRelease) String() string { return release.Format(r.Name, r.Version) }

// CheckFits refuses a release larger than the whole quota; quota <= 0
// means no quota. The error wraps ErrQuota.
func CheckFits(size, quota int64) error {
	if quota > 0 && size > quota {
		return fmt.Errorf("%w: release of %s is larger than the whole cache quota of %s",
			ErrQuota, bytesText(size), bytesText(quota))
	}
	return nil
}

// PlanGC decides which cached releases to evict so that the cache plus need
// more bytes (a release about to be downloaded, not yet in releases) fits
// in quota bytes. quota <= 0 means no quota. keep[name] is how many
// previous versions of name stay for rollback; a name missing from keep
// keeps 1 (an explicit 0 keeps none).
//
// Never evicted: Active and Downloading releases.
//
// Eviction order (the order of the result):
//
//  1. Every expired or yanked release, whether or not space is needed and
//     even if pinned or kept for rollback: it must not be served any more.
//  2. Then, only while the cache plus need exceeds quota, releases that are
//     not Pinned and not kept for rollback, least recently used first.
//
// Within each step the order is LastUsed ascending, then Name, then Version
// ascending. The versions kept for rollback are, per name, the keep[name]
// highest versions below the name's active version that are neither
// expired nor yanked nor downloading; a name with no active version (e.g.
// no longer subscribed) has nothing to roll back to and keeps none. Versions
// compare like release.CompareVersions: numeric parts as numbers, so 1.10
// is above 1.9.
//
// If even evicting everything of step 2 cannot make room, PlanGC returns an
// error wrapping ErrQuota that says what holds the space; evict then holds
// only step 1, which should be removed anyway. A need larger than quota is
// refused as by CheckFits.
func PlanGC(releases []CachedRelease, quota int64, need int64, keep map[string]int, now time.Time) (evict []CachedRelease, err error) {
	need = max(need, 0)
	if err := CheckFits(need, quota); err != nil {
		return nil, err
	}
	kept := keptForRollback(releases, keep, now)
	var used int64
	var garbage, lru []CachedRelease
	for i, r := range releases {
		used += r.Size
		switch {
		case r.Active || r.Downloading:
		case r.Yanked || r.Expired(now):
			garbage = append(garbage, r)
		case r.Pinned || kept[i]:
		default:
			lru = append(lru, r)
		}
	}
	byLRU := func(a, b CachedRelease) int {
		return cmp.Or(a.LastUsed.Compare(b.LastUsed), strings.Compare(a.Name, b.Name), release.CompareVersions(a.Version, b.Version))
	}
	slices.SortStableFunc(garbage, byLRU)
	slices.SortStableFunc(lru, byLRU)

	for _, r := range garbage {
		evict = append(evict, r)
		used -= r.Size
	}
	if quota <= 0 {
		return evict, nil
	}
	steps := len(evict)
	for _, r := range lru {
		if used+need <= quota {
			return evict, nil
		}
		evict = append(evict, r)
		used -= r.Size
	}
	if used+need <= quota {
		return evict, nil
	}
	// It does not fit: say what holds the space.
	var active, pinned, rollback, downloading int64
	for i, r := range releases {
		switch {
		case r.Active:
			active += r.Size
		case r.Downloading:
			downloading += r.Size
		case r.Yanked || r.Expired(now):
		case r.Pinned:
			pinned += r.Size
		case kept[i]:
			rollback += r.Size
		}
	}
	return evict[:steps], fmt.Errorf("%w: cannot make room for %s: after evicting everything evictable the cache still holds %s of its %s quota (active %s, pinned %s, kept for rollback %s, downloading %s)",
		ErrQuota, bytesText(need), bytesText(used), bytesText(quota),
		bytesText(active), bytesText(pinned), bytesText(rollback), bytesText(downloading))
}

// keptForRollback marks, by index, the versions kept for rollback.
func keptForRollback(releases []CachedRelease, keep map[string]int, now time.Time) map[int]bool {
	byName := map[string][]int{}
	for i, r := range releases {
		byName[r.Name] = append(byName[r.Name], i)
	}
	kept := map[int]bool{}
	for name, idx := range byName {
		n, ok := keep[name]
		if !ok {
			n = 1
		}
		var active string
		hasActive := false
		for _, i := range idx {
			if r := releases[i]; r.Active && (!hasActive || release.CompareVersions(r.Version, active) > 0) {
				active, hasActive = r.Version, true
			}
		}
		if !hasActive {
			continue
		}
		var cands []int
		for _, i := range idx {
			r := releases[i]
			if r.Active || r.Downloading || r.Yanked || r.Expired(now) || release.CompareVersions(r.Version, active) >= 0 {
				continue // not a usable previous version
			}
			cands = append(cands, i)
		}
		slices.SortStableFunc(cands, func(a, b int) int { return release.CompareVersions(releases[b].Version, releases[a].Version) })
		for _, i := range cands[:min(max(n, 0), len(cands))] {
			kept[i] = true
		}
	}
	return kept
}

// bytesText writes n bytes as "5368709120 bytes (5.0 GiB)".
func bytesText(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%d bytes (%s)", n, bytesize.Format(n))
}
