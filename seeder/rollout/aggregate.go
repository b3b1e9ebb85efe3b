package rollout

import (
	"encoding/hex"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/swarmship/swarmship/internal/report"
)

// Per-agent states of a release in the rollout view: the agent's release
// phases plus pending (the agent targets the release but has no record of
// it yet). Every subscribed agent is in exactly one of them.
var rolloutStates = []string{"pending", "queued", "downloading", "verified", "active", "failed"}

type agentRelease struct {
	state     string
	completed int64
	targeted  bool
	rel       *report.Release // nil: pending
}

// agentReleases are the releases an agent counts for in the rollout: the
// versions its subscriptions target and the versions it has active.
// Versions merely kept for rollback do not count.
func agentReleases(rep *report.Report) map[string]agentRelease {
	out := map[string]agentRelease{}
	recs := make(map[string]*report.Release, len(rep.Releases))
	for i := range rep.Releases {
		recs[rep.Releases[i].Key()] = &rep.Releases[i]
	}
	for _, sub := range rep.Subscriptions {
		if sub.Target == "" {
			continue
		}
		key := sub.Name + "@" + sub.Target
		ar := agentRelease{state: "pending", targeted: true}
		if r := recs[key]; r != nil {
			ar.state, ar.completed, ar.rel = r.State, r.Completed, r
		}
		out[key] = ar
	}
	for key, r := range recs {
		if _, ok := out[key]; !ok && r.State == "active" {
			out[key] = agentRelease{state: r.State, completed: r.Completed, rel: r}
		}
	}
	return out
}

// View is GET /api/v1/rollout: every release the agents report, how far

// relAgg is a release's aggregate while computing the view.
type relAgg struct {
	r                   Release
	sites, regions      map[string]*Breakdown
	completed           int64            // over subscribed agents
	lastMove            time.Time        // latest progress of any subscribed agent
	incompleteAgents    int              // subscribed, not yet verified
	pendingWithoutSize  int              // incomplete agents that do not know the size yet
	remainingKnownAgent int64            // bytes the other incomplete agents miss
	byPeer              map[string]int64 // reported completed bytes by peer ID: fresher than the tracker's "left"
}

type aggregate struct {
	rels   map[string]*relAgg
	counts AgentCounts
	// versions counts known agents by their binary's version.
	versions map[string]int
	rows     []AgentRow
	missing  []*agentRecord // went missing within the churn window
	// screens and screensAtRisk are the signage screens of live agents.
	screens       int
	screensAtRisk []ScreenAtRisk
	forget        []string // silent for longer than forget: left out of the view, dropped by Tick
}

func (s *Reports) agg(key string, a *aggregate) *relAgg {
	ra := a.rels[key]
	if ra == nil {
		name, version, _ := strings.Cut(key, "@")
		ra = &relAgg{
			r:     Release{Release: key, Name: name, Version: version, States: map[string]int{}},
			sites: map[string]*Breakdown{}, regions: map[string]*Breakdown{}, byPeer: map[string]int64{},
		}
		for _, st := range rolloutStates {
			ra.r.States[st] = 0
		}
		a.rels[key] = ra
	}
	return ra
}

func bump(m map[string]*Breakdown, name string) *Breakdown {
	if name == "" {
		name = "(none)"
	}
	b := m[name]
	if b == nil {
		b = &Breakdown{Name: name}
		m[name] = b
	}
	return b
}

// aggregateLocked folds every agent's latest report into per-release
// figures; with a scope, only the agents of that tenant. It only reads:
// agents past forget are listed in forget for Tick. s.mu is held (a read
// lock is enough).
func (s *Reports) aggregateLocked(now time.Time, scope *string) *aggregate {
	a := &aggregate{rels: map[string]*relAgg{}}
	for key, rec := range s.agents {
		age := now.Sub(rec.Received)
		if age > s.cfg.Forget {
			a.forget = append(a.forget, key)
			continue
		}
		rep := rec.Report
		if scope != nil && rep.Tenant != *scope {
			continue
		}
		id := rep.AgentID
		stallAfter := time.Duration(s.cfg.StallIntervals) * s.interval(rec)
		live := age <= stallAfter
		a.counts.Known++
		if v := rep.AgentVersion; v != "" {
			if a.versions == nil {
				a.versions = map[string]int{}
			}
			a.versions[v]++
		}
		if live {
			a.counts.Live++
		} else {
			a.counts.Missing++
			if age <= s.cfg.ChurnWindow+stallAfter {
				a.missing = append(a.missing, rec)
			}
		}
		row := AgentRow{AgentID: id, Name: rep.Name, Site: rep.Site, Region: rep.Region, Tenant: rep.Tenant,
			Live: live, LastSeen: rec.Received, Releases: []string{}, CatalogError: rep.Catalog.Error, Policy: rep.Policy,
			Version: rep.AgentVersion, SelfUpdate: rep.SelfUpdate}
		seeding := false
		// Bytes count for every release the agent holds, targeted or not.
		for i := range rep.Releases {
			r := &rep.Releases[i]
			ra := s.agg(r.Key(), a)
			ra.r.Bytes = ra.r.Bytes.Add(r.Downloaded)
			ra.r.Uploaded += r.Uploaded
			ra.r.Reused += r.Reused
			if r.InfoHash != "" {
				ra.r.InfoHash = r.InfoHash
			}
			if r.Size > 0 {
				ra.r.Size = r.Size
			}
			bump(ra.sites, rep.Site).Bytes = bump(ra.sites, rep.Site).Bytes.Add(r.Downloaded)
			bump(ra.regions, rep.Region).Bytes = bump(ra.regions, rep.Region).Bytes.Add(r.Downloaded)
			row.Releases = append(row.Releases, r.Key()+" "+r.State)
			row.Peers += r.Peers
			row.Uploaded += r.Uploaded
			done := r.State == "verified" || r.State == "active"
			if done && rep.Policy.UploadAllowed {
				seeding = true
			}
			if rep.PeerID != "" && live {
				ra.byPeer[rep.PeerID] = r.Completed
				if done {
					ra.byPeer[rep.PeerID] = r.Size
				}
			}
		}
		if live && seeding {
			a.counts.Seeding++
		}
		if live {
			var n int
			a.screensAtRisk, n = screensAtRisk(a.screensAtRisk, rep)
			a.screens += n
		}
		a.rows = append(a.rows, row)
		held := map[string]bool{}
		for key, ar := range agentReleases(rep) {
			held[key] = true
			ra := s.agg(key, a)
			ra.r.Subscribed++
			ra.r.States[ar.state]++
			verified := ar.state == "verified" || ar.state == "active"
			site, region := bump(ra.sites, rep.Site), bump(ra.regions, rep.Region)
			site.Subscribed++
			region.Subscribed++
			if verified {
				ra.r.Verified++
				site.Verified++
				region.Verified++
			}
			if ar.state == "active" {
				ra.r.Active++
				site.Active++
				region.Active++
			}
			ra.completed += ar.completed
			mark := rec.Progress[key]
			if mark.Since.After(ra.lastMove) {
				ra.lastMove = mark.Since
			}
			if verified {
				continue
			}
			ra.incompleteAgents++
			if item, risk := atRisk(rep, id, ar.rel, now); risk && live {
				ra.r.AtRisk = append(ra.r.AtRisk, item)
			}
			if ar.rel != nil && ar.rel.Size > 0 {
				ra.remainingKnownAgent += ar.rel.Size - ar.completed
			} else {
				ra.pendingWithoutSize++
			}
			item := StalledItem{AgentID: id, Name: rep.Name, Site: rep.Site, Region: rep.Region, State: ar.state,
				Completed: ar.completed, Since: mark.Since}
			if ar.rel != nil {
				item.Size, item.LastError = ar.rel.Size, ar.rel.LastError
			}
			if ar.state == "pending" && rep.Catalog.Error != "" {
				item.LastError = rep.Catalog.Error
			}
			switch {
			case !live:
				item.Why, item.Since = "missing: no report for "+roundDur(age), rec.Received
			case ar.state == "failed":
				item.Why = "failed"
			case item.LastError != "":
				item.Why = "error"
			case now.Sub(mark.Since) > stallAfter:
				item.Why = "no progress for " + roundDur(now.Sub(mark.Since))
			default:
				continue
			}
			ra.r.Stalled = append(ra.r.Stalled, item)
		}
		for i := range rep.Releases {
			if !held[rep.Releases[i].Key()] {
				s.agg(rep.Releases[i].Key(), a).r.Cached++
			}
		}
	}
	return a
}

// swarmHealth counts the tracker's peers of a release. For agents that
// report, their reported progress replaces the tracker's "left", which is
// only as fresh as their last announce.
func (s *Reports) swarmHealth(infoHash string, size int64, byPeer map[string]int64) SwarmHealth {
	var h SwarmHealth
	b, err := hex.DecodeString(infoHash)
	if err != nil || len(b) != 20 {
		return h
	}
	var ih [20]byte
	copy(ih[:], b)
	if s.origin.Peers == nil {
		return h
	}
	for _, p := range s.origin.Peers(ih) {
		if done, ok := byPeer[hex.EncodeToString(p.ID[:])]; ok && size > 0 && !p.Origin {
			p.Left = size - min(done, size)
		}
		switch {
		case p.Origin:
			h.Origin++
		case p.Left == 0:
			h.Seeders++
			h.Availability++
		default:
			h.Leechers++
			if size > 0 && p.Left < size {
				h.Availability += float64(size-p.Left) / float64(size)
			}
		}
	}
	h.Availability = math.Round(h.Availability*100) / 100
	return h
}

func sortedBreakdowns(m map[string]*Breakdown) []Breakdown {
	out := make([]Breakdown, 0, len(m))
	for _, b := range m {
		out = append(out, *b)
	}
	slices.SortFunc(out, func(x, y Breakdown) int { return strings.Compare(x.Name, y.Name) })
	return out
}

func roundDur(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= time.Minute:
		return d.Round(time.Second).String()
	}
	return d.Round(100 * time.Millisecond).String()
}
