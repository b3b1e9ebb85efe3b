package agent

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"golang.org/x/time/rate"

	"github.com/swarmship/swarmship/internal/btclient"
	"github.com/swarmship/swarmship/internal/release"
	"github.com/swarmship/swarmship/policy"
)

// PolicyStatus is the branch policy in force, for status and metrics.
type PolicyStatus struct {
	Mode        policy.Mode `json:"mode"`
	Profile     string      `json:"profile,omitempty"`
	DownLimit   string      `json:"down_limit"`
	UpLimit     string      `json:"up_limit"`
	NextEdge    time.Time   `json:"next_window_edge,omitzero"`
	Upload      bool        `json:"upload_allowed"`
	Throttle    string      `json:"throttle,omitempty"` // why uploads or downloads wait (metered, battery)
	QuotaBytes  int64       `json:"quota_bytes,omitempty"`
	CachedBytes int64       `json:"cached_bytes"`
	// Fleet is the fleet policy from the catalog merged in, with where
	// each value came from.
	Fleet *FleetPolicyStatus `json:"fleet,omitempty"`
	// WAN is the site's WAN caps and this agent's share (wanlimit.go).
	WAN *WANStatus `json:"wan,omitempty"`
}

// policyState is what applyPolicy last did, so it acts only on changes.
type policyState struct {
	status   PolicyStatus
	prof     policy.RateProfile // the limits last applied
	applied  bool
	uploadOK bool
	cond     policy.Conditions
	lastGC   time.Time
	// lastDiskGC is when the GC last ran to make room on a full disk.
	lastDiskGC time.Time
}

// applyPolicy sets rate limits and upload permission from the schedule,
// the mode and the power/metered conditions at now. Limits change at
// window edges without restart (rate.Limiter.SetLimit).
func (a *Agent) applyPolicy(now time.Time) {
	cfg := a.cfg
	loc := a.loc
	// The local rates, mode and quota merged with the fleet policy
	// documents assigned to this agent (policy.MergeFleet).
	eff := a.fleetEffective()
	prof, rateOrigins, next := eff.ProfileAt(loc, now)
	if w := eff.WindowsNextEdge(loc, now); !w.IsZero() && (next.IsZero() || w.Before(next)) {
		next = w
	}
	if p, raised := a.deadlineProfile(prof); raised {
		prof = p // a deliver-by time at risk; windows.go logs why
	}
	cond := a.readConditions()
	upOK, _, why := policy.Throttle(cond, cfg.Power.PowerRules)
	upOK = upOK && eff.Mode.Upload()

	// WAN caps are shared by the site's agents: the shares follow the
	// tracker's view as well as the profile (wanlimit.go).
	a.refreshWAN(prof, time.Now()) // the swarm views age on the wall clock

	a.mu.Lock()
	defer a.mu.Unlock()
	st := &a.pol
	if !st.applied || st.prof != prof {
		setRate(a.down, prof.Down)
		// The upload limiter's burst is the request-length cap (btclient).
		btclient.SetUploadRate(a.up, float64(prof.Up))
		if st.applied {
			a.log.Info("rate profile changed", "profile", prof.Name, "down", prof.Down.String(), "up", prof.Up.String())
		}
	}
	if !st.applied || st.uploadOK != upOK {
		for _, d := range a.downloads {
			if upOK {
				d.t.AllowDataUpload()
			} else {
				d.t.DisallowDataUpload()
			}
		}
		if st.applied {
			a.log.Info("uploads "+map[bool]string{true: "allowed", false: "stopped"}[upOK], "mode", string(eff.Mode), "reason", why)
		}
	}
	st.applied, st.uploadOK, st.cond, st.prof = true, upOK, cond, prof
	st.status = PolicyStatus{
		Mode: eff.Mode, Profile: prof.Name, DownLimit: prof.Down.String(), UpLimit: prof.Up.String(),
		NextEdge: next, Upload: upOK, Throttle: why, QuotaBytes: eff.Quota,
		CachedBytes: st.status.CachedBytes, Fleet: a.fleetStatusLocked(eff, rateOrigins),
	}
}

// quotaBytes is the cache quota in force (local file and fleet policy),
// 0 for none.
func (a *Agent) quotaBytes() int64 { return a.fleetEffective().Quota }

// min0 is the smaller of two rates where 0 means unlimited.
func min0(a, b policy.Rate) policy.Rate {
	switch {
	case a == policy.Unlimited:
		return b
	case b == policy.Unlimited:
		return a
	}
	return min(a, b)
}

// setRate applies a policy rate (bytes/s, 0 = unlimited) to a limiter. The
// burst stays small when limited so the rate holds over short intervals,
// yet at least one 64 KiB read so no single wait can exceed it.
func setRate(l *rate.Limiter, r policy.Rate) {
	if l == nil {
		return
	}
	if r == policy.Unlimited {
		l.SetLimit(rate.Inf)
		l.SetBurst(64 << 20)
		return
	}
	l.SetLimit(rate.Limit(r))
	l.SetBurst(int(max(64<<10, min(int64(r)/4, math.MaxInt32))))
}

// mayDownload says whether a subscription's release may download now.
func (a *Agent) mayDownload(sub Subscription, now time.Time) (bool, string) {
	a.mu.Lock()
	cond := a.pol.cond
	a.mu.Unlock()
	ok, why := policy.MayDownload(policy.Fetch{Windows: sub.Windows, Location: a.loc, Urgent: sub.Urgent}, now, cond, a.cfg.Power.PowerRules)
	if !ok {
		return ok, why
	}
	// The fleet policy's download windows narrow the subscription's, urgent
	// or not: a local setting may only be stricter.
	return a.fleetEffective().WindowOpen(sub.Windows, a.loc, now)
}

// readConditions reads battery and metered state (power.go).
func (a *Agent) readConditions() policy.Conditions {
	a.powerOnce.Do(func() { a.power = newPowerReader(a.cfg.Power, a.log) })
	return a.power.read(a.cfg.Power.PowerRules, a.now())
}

// gc evicts cached releases so that need more bytes fit under the quota,
// and drops expired and yanked ones; see policy.PlanGC for the order.
// Active and pinned releases are never evicted.
func (a *Agent) gc(need int64, now time.Time) error {
	return a.gcWithin(a.quotaBytes(), need, now)
}

// gcWithin is gc with quota bytes as the limit (a full disk sets a lower
// one than the configured quota).
func (a *Agent) gcWithin(quota, need int64, now time.Time) error {
	recs, err := a.state.All()
	if err != nil {
		return err
	}
	yanked := map[string]bool{}
	if rels, err := a.catalog.Releases(); err == nil {
		for _, r := range rels {
			if r.Yanked {
				yanked[r.Ref.String()] = true
			}
		}
	}
	pinned := map[string]bool{}
	keep := map[string]int{}
	for _, s := range a.cfg.Subscriptions {
		if s.Version != "" {
			pinned[release.Format(s.Name, s.Version)] = true
		}
		keep[s.Name] = s.Keep
	}
	var cached []policy.CachedRelease
	var used int64
	for _, r := range recs {
		cr := policy.CachedRelease{
			Name: r.Name, Version: r.Version, Size: r.Size,
			Active:      a.cache.activeVersion(r.Name) == r.Version,
			Pinned:      pinned[r.Key()],
			Yanked:      yanked[r.Key()],
			LastUsed:    r.LastUsed,
			Downloading: r.Phase == PhaseDownloading || r.Phase == PhaseQueued,
		}
		if cr.LastUsed.IsZero() {
			cr.LastUsed = r.Queued
		}
		if m, err := a.cache.manifest(r.Name, r.Version); err == nil {
			cr.Expires = m.Expires
		}
		cached = append(cached, cr)
		used += r.Size
	}
	evict, planErr := policy.PlanGC(cached, quota, need, keep, now)
	for _, e := range evict {
		if err := a.evict(e.Name, e.Version); err != nil {
			a.log.Error("evict", "release", e.Name, "version", e.Version, "err", err)
			continue
		}
		used -= e.Size
		a.log.Info("release evicted", "release", e.Name, "version", e.Version, "bytes", e.Size, "expired", e.Expired(now), "yanked", e.Yanked)
	}
	a.mu.Lock()
	a.pol.status.CachedBytes = used
	a.pol.lastGC = now
	a.evictions += int64(len(evict))
	a.mu.Unlock()
	return planErr
}

// evict removes a release: first its state record, then its files, so a
// crash part way leaves only files without a record, which the next start
// removes; a record never points at half-deleted files.
func (a *Agent) evict(name, version string) error {
	if a.cache.activeVersion(name) == version {
		return errors.New("refusing to evict the active release")
	}
	key := release.Format(name, version)
	a.mu.Lock()
	d := a.downloads[key]
	a.mu.Unlock()
	if d != nil {
		a.dropDownload(d)
	}
	rec, _, _ := a.state.Get(key)
	if err := a.state.Delete(key); err != nil {
		return err
	}
	var ih metainfo.Hash
	if rec != nil && ih.FromHexString(rec.InfoHash) == nil {
		a.complete.Forget(ih) // its saved counters must not come back with a new download
	}
	if err := a.cache.remove(name, version); err != nil {
		return fmt.Errorf("remove files: %w", err)
	}
	return nil
}
