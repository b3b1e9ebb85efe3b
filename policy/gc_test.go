package policy

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

var gcNow = utc("2026-06-01 12:00")

func day(n int) time.Time { return gcNow.AddDate(0, 0, -n) } // n days ago

func names(rs []CachedRelease) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return out
}

func TestPlanGC(t *testing.T) {
	tests := []struct {
		name     string
		releases []CachedRelease
		quota    int64
		need     int64
		keep     map[string]int
		evict    []string
		err      string // substring; the error wraps ErrQuota
	}{
		{
			name: "under quota: nothing",
			releases: []CachedRelease{
				{Name: "app", Version: "1.0", Size: 100, Active: true, LastUsed: day(0)},
				{Name: "app", Version: "0.9", Size: 100, LastUsed: day(9)},
				{Name: "media", Version: "1", Size: 100, LastUsed: day(30)},
			},
			quota: 1000, need: 100,
		},
		{
			name: "expired and yanked go first, always, oldest first; active and downloading survive",
			releases: []CachedRelease{
				{Name: "app", Version: "1.0", Size: 100, Active: true, Yanked: true, LastUsed: day(0)},
				{Name: "app", Version: "2.0", Size: 100, Downloading: true, Yanked: true},
				{Name: "old", Version: "1", Size: 100, Expires: day(1), LastUsed: day(2)},
				{Name: "bad", Version: "1", Size: 100, Yanked: true, LastUsed: day(5)},
				{Name: "pin", Version: "1", Size: 100, Pinned: true, Yanked: true, LastUsed: day(1)},
				{Name: "edge", Version: "1", Size: 100, Expires: gcNow, LastUsed: day(3)},                   // expires now: expired
				{Name: "fresh", Version: "1", Size: 100, Expires: gcNow.Add(time.Second), LastUsed: day(9)}, // not yet
			},
			quota: 0, // no quota
			evict: []string{"bad@1", "edge@1", "old@1", "pin@1"},
		},
		{
			name: "LRU until it fits",
			releases: []CachedRelease{
				{Name: "a", Version: "1", Size: 100, LastUsed: day(3)},
				{Name: "b", Version: "1", Size: 100, LastUsed: day(1)},
				{Name: "c", Version: "1", Size: 100, LastUsed: day(5)},
				{Name: "d", Version: "1", Size: 100, LastUsed: day(4)},
				{Name: "x", Version: "1", Size: 100, Active: true, LastUsed: day(9)},
			},
			quota: 400, need: 50, // 500 used: two must go
			evict: []string{"c@1", "d@1"},
		},
		{
			name: "exactly full counts as fitting",
			releases: []CachedRelease{
				{Name: "a", Version: "1", Size: 100, LastUsed: day(3)},
				{Name: "b", Version: "1", Size: 100, LastUsed: day(1)},
			},
			quota: 300, need: 100,
		},
		{
			name: "garbage first, then LRU",
			releases: []CachedRelease{
				{Name: "a", Version: "1", Size: 100, LastUsed: day(9)},
				{Name: "b", Version: "1", Size: 100, LastUsed: day(1)},
				{Name: "y", Version: "1", Size: 100, Yanked: true, LastUsed: day(0)},
			},
			quota: 200, need: 100,
			evict: []string{"y@1", "a@1"},
		},
		{
			name: "garbage alone makes room: no LRU",
			releases: []CachedRelease{
				{Name: "a", Version: "1", Size: 100, LastUsed: day(9)},
				{Name: "y", Version: "1", Size: 100, Yanked: true, LastUsed: day(0)},
			},
			quota: 200, need: 100,
			evict: []string{"y@1"},
		},
		{
			name: "ties: name, then version",
			releases: []CachedRelease{
				{Name: "b", Version: "1", Size: 100, LastUsed: day(1)},
				{Name: "a", Version: "2", Size: 100, LastUsed: day(1)},
				{Name: "a", Version: "10", Size: 100, LastUsed: day(1)},
				{Name: "a", Version: "1", Size: 100, LastUsed: day(1)},
			},
			quota: 1, keep: map[string]int{"a": 0, "b": 0},
			evict: []string{"a@1", "a@2", "a@10", "b@1"},
		},
		{
			name: "pinned and active survive; keep default 1 keeps the previous version",
			releases: []CachedRelease{
				{Name: "app", Version: "1.0", Size: 100, LastUsed: day(30)},
				{Name: "app", Version: "2.0", Size: 100, LastUsed: day(20)},
				{Name: "app", Version: "3.0", Size: 100, LastUsed: day(10)}, // previous: kept
				{Name: "app", Version: "4.0", Size: 100, Active: true, LastUsed: day(40)},
				{Name: "lib", Version: "1", Size: 100, Pinned: true, LastUsed: day(50)},
			},
			quota: 300,
			evict: []string{"app@1.0", "app@2.0"},
		},
		{
			name: "keep 2",
			releases: []CachedRelease{
				{Name: "app", Version: "1.0", Size: 100, LastUsed: day(30)},
				{Name: "app", Version: "2.0", Size: 100, LastUsed: day(20)},
				{Name: "app", Version: "3.0", Size: 100, LastUsed: day(10)},
				{Name: "app", Version: "4.0", Size: 100, Active: true},
			},
			quota: 100, keep: map[string]int{"app": 2},
			evict: nil, // on error only garbage is planned
			err:   "cannot make room for 0 bytes: after evicting everything evictable the cache still holds 300 bytes of its 100 bytes quota (active 100 bytes, pinned 0 bytes, kept for rollback 200 bytes, downloading 0 bytes)",
		},
		{
			name: "keep 0 keeps none; negative too",
			releases: []CachedRelease{
				{Name: "app", Version: "3.0", Size: 100, LastUsed: day(10)},
				{Name: "app", Version: "4.0", Size: 100, Active: true},
				{Name: "lib", Version: "1", Size: 100, LastUsed: day(11)},
				{Name: "lib", Version: "2", Size: 100, Active: true},
			},
			quota: 200, keep: map[string]int{"app": 0, "lib": -3},
			evict: []string{"lib@1", "app@3.0"},
		},
		{
			name: "versions compare numerically: 1.9 is the previous of 1.10",
			releases: []CachedRelease{
				{Name: "app", Version: "1.9", Size: 100, LastUsed: day(1)},
				{Name: "app", Version: "1.10", Size: 100, Active: true},
				{Name: "app", Version: "1.2", Size: 100, LastUsed: day(2)},
			},
			quota: 200,
			evict: []string{"app@1.2"},
		},
		{
			name: "versions above the active one are not kept (after a rollback)",
			releases: []CachedRelease{
				{Name: "app", Version: "1.0", Size: 100, LastUsed: day(30)},
				{Name: "app", Version: "2.0", Size: 100, Active: true},
				{Name: "app", Version: "3.0", Size: 100, LastUsed: day(1)},
			},
			quota: 200,
			evict: []string{"app@3.0"},
		},
		{
			name: "no active version: nothing to roll back to, plain LRU",
			releases: []CachedRelease{
				{Name: "app", Version: "1.0", Size: 100, LastUsed: day(1)},
				{Name: "app", Version: "2.0", Size: 100, LastUsed: day(30)},
			},
			quota: 100, keep: map[string]int{"app": 5},
			evict: []string{"app@2.0"},
		},
		{
			name: "yanked and expired versions do not count as rollback copies",
			releases: []CachedRelease{
				{Name: "app", Version: "1.0", Size: 100, LastUsed: day(30)},
				{Name: "app", Version: "2.0", Size: 100, Yanked: true, LastUsed: day(1)},
				{Name: "app", Version: "2.5", Size: 100, Expires: day(1), LastUsed: day(1)},
				{Name: "app", Version: "3.0", Size: 100, Active: true},
				{Name: "app", Version: "3.1", Size: 100, Downloading: true},
			},
			quota: 300,
			evict: []string{"app@2.0", "app@2.5"},
		},
		{
			name: "a pinned previous version counts toward keep",
			releases: []CachedRelease{
				{Name: "app", Version: "1.0", Size: 100, LastUsed: day(30)},
				{Name: "app", Version: "2.0", Size: 100, Pinned: true, LastUsed: day(1)},
				{Name: "app", Version: "3.0", Size: 100, Active: true},
			},
			quota: 200,
			evict: []string{"app@1.0"},
		},
		{
			name: "two active entries: keep is counted below the highest",
			releases: []CachedRelease{
				{Name: "app", Version: "1.0", Size: 100, LastUsed: day(1)},
				{Name: "app", Version: "1.5", Size: 100, LastUsed: day(30)},
				{Name: "app", Version: "2.0", Size: 100, Active: true},
				{Name: "app", Version: "3.0", Size: 100, Active: true},
			},
			quota: 300,
			evict: []string{"app@1.0"},
		},
		{
			name: "does not fit: error, only garbage planned",
			releases: []CachedRelease{
				{Name: "app", Version: "2.0", Size: 400, Active: true},
				{Name: "app", Version: "1.0", Size: 200, LastUsed: day(9)},
				{Name: "pin", Version: "1", Size: 100, Pinned: true},
				{Name: "dl", Version: "1", Size: 50, Downloading: true},
				{Name: "lru", Version: "1", Size: 100, LastUsed: day(1)},
				{Name: "y", Version: "1", Size: 10, Yanked: true},
			},
			quota: 1000, need: 300,
			evict: []string{"y@1"},
			err:   "cache quota exceeded: cannot make room for 300 bytes: after evicting everything evictable the cache still holds 750 bytes of its 1000 bytes quota (active 400 bytes, pinned 100 bytes, kept for rollback 200 bytes, downloading 50 bytes)",
		},
		{
			name: "need larger than the whole quota",
			releases: []CachedRelease{
				{Name: "y", Version: "1", Size: 10, Yanked: true},
			},
			quota: 1 << 30, need: 5 << 30,
			err: "cache quota exceeded: release of 5368709120 bytes (5.0 GiB) is larger than the whole cache quota of 1073741824 bytes (1.0 GiB)",
		},
		{
			name: "negative need counts as 0",
			releases: []CachedRelease{
				{Name: "a", Version: "1", Size: 100, LastUsed: day(3)},
				{Name: "b", Version: "1", Size: 100, LastUsed: day(1)},
			},
			quota: 150, need: -500,
			evict: []string{"a@1"},
		},
		{
			name:  "empty cache",
			quota: 100, need: 100,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evict, err := PlanGC(tc.releases, tc.quota, tc.need, tc.keep, gcNow)
			if tc.err == "" && err != nil {
				t.Fatal(err)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrQuota) {
					t.Fatalf("error %v, want ErrQuota with %q", err, tc.err)
				}
			}
			if got := names(evict); !slices.Equal(got, tc.evict) {
				t.Fatalf("evict %v, want %v", got, tc.evict)
			}
			for _, r := range evict {
				if r.Active || r.Downloading {
					t.Fatalf("evicted %s, which is active or downloading", r)
				}
			}
		})
	}
}

// TestPlanGCInvariants: over many generated caches, active and downloading
// releases are never evicted, pinned and rollback copies only when expired
// or yanked, garbage always, and the plan fits when there is no error.
func TestPlanGCInvariants(t *testing.T) {
	for seed := range 300 {
		var rs []CachedRelease
		x := uint32(seed*2654435761 + 1)
		next := func(n uint32) uint32 { x ^= x << 13; x ^= x >> 17; x ^= x << 5; return x % n }
		for i := range 3 + int(next(10)) {
			r := CachedRelease{
				Name:     string(rune('a' + next(3))),
				Version:  string(rune('0'+i)) + ".0",
				Size:     int64(1 + next(100)),
				LastUsed: day(int(next(30))),
				Pinned:   next(6) == 0,
				Yanked:   next(8) == 0,
			}
			switch next(6) {
			case 0:
				r.Active = true
			case 1:
				r.Downloading = true
			case 2:
				r.Expires = day(int(next(3)) - 1)
			}
			rs = append(rs, r)
		}
		var total int64
		for _, r := range rs {
			total += r.Size
		}
		quota := int64(next(uint32(total + 1)))
		need := int64(next(50))
		evict, err := PlanGC(rs, quota, need, nil, gcNow)
		if errors.Is(err, ErrQuota) && need > quota && quota > 0 {
			continue
		}
		used := total
		for _, r := range evict {
			used -= r.Size
			if r.Active || r.Downloading {
				t.Fatalf("seed %d: evicted %s", seed, r)
			}
		}
		for _, r := range rs {
			garbage := !r.Active && !r.Downloading && (r.Yanked || r.Expired(gcNow))
			if garbage && !slices.Contains(evict, r) {
				t.Fatalf("seed %d: garbage %s not evicted", seed, r)
			}
			if r.Pinned && !garbage && slices.Contains(evict, r) {
				t.Fatalf("seed %d: pinned %s evicted", seed, r)
			}
		}
		if err == nil && quota > 0 && used+need > quota {
			t.Fatalf("seed %d: plan does not fit: %d + %d > %d", seed, used, need, quota)
		}
		if err != nil && !errors.Is(err, ErrQuota) {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

func TestCheckFits(t *testing.T) {
	tests := []struct {
		size, quota int64
		want        string
	}{
		{100, 100, ""},
		{100, 0, ""},  // no quota
		{100, -1, ""}, // no quota
		{101, 100, "cache quota exceeded: release of 101 bytes is larger than the whole cache quota of 100 bytes"},
		{3 << 40, 2 << 40, "release of 3298534883328 bytes (3.0 TiB) is larger than the whole cache quota of 2199023255552 bytes (2.0 TiB)"},
		{1536, 1024, "release of 1536 bytes (1.5 KiB) is larger than the whole cache quota of 1024 bytes (1.0 KiB)"},
		{1 << 62, 1 << 61, "(4.0 EiB)"},
	}
	for _, tc := range tests {
		err := CheckFits(tc.size, tc.quota)
		if tc.want == "" {
			if err != nil {
				t.Errorf("CheckFits(%d, %d) = %v", tc.size, tc.quota, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrQuota) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckFits(%d, %d) = %v, want %q", tc.size, tc.quota, err, tc.want)
		}
	}
}
