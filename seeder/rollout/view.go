package rollout

import (
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/swarmship/swarmship/internal/report"
)

// View is GET /api/v1/rollout: every release the agents report, how far
// its rollout is, where it is stuck, and the alerts.
type View struct {
	Generated time.Time   `json:"generated"`
	Agents    AgentCounts `json:"agents"`
	Egress    Egress      `json:"origin_egress"`
	Releases  []Release   `json:"releases"`
	Alerts    []Alert     `json:"alerts"`
	AgentList []AgentRow  `json:"agent_list"` // missing agents first, at most maxAgentRows
	// AgentVersions counts known agents by the version of their binary
	// (agents older than the field are not counted).
	AgentVersions map[string]int `json:"agent_versions,omitempty"`
	// Plans are the signed rollout plans of the releases in the view,
	// with the listed agents (AgentList) placed in their waves.
	Plans []PlanView `json:"rollout_plans,omitempty"`
	// Screens counts the signage screens live agents serve; ScreensAtRisk
	// are those missing their air time (screens.go), the first
	// maxScreensShown.
	Screens            int            `json:"screens"`
	ScreensAtRisk      []ScreenAtRisk `json:"screens_at_risk"`
	ScreensAtRiskTotal int            `json:"screens_at_risk_total"`
}

// Bounds of the view, so that a large fleet does not make it huge; the
// counts stay exact.
const (
	maxStalledShown = 100
	maxAgentRows    = 200
)

// AgentCounts counts reporting agents.
type AgentCounts struct {
	Known   int `json:"known"`
	Live    int `json:"live"`
	Missing int `json:"missing"` // no report for stall_intervals intervals
	Seeding int `json:"seeding"` // live, holding a verified release, allowed to upload: upload capacity
}

// Release is one release's rollout.
type Release struct {
	Release  string `json:"release"` // name@version
	Name     string `json:"name"`
	Version  string `json:"version"`
	InfoHash string `json:"infohash,omitempty"`
	Size     int64  `json:"size"`
	// Subscribed agents target this version or have it active; each is in
	// one of States. Verified counts verified or active, Active active.
	Subscribed int            `json:"subscribed"`
	Verified   int            `json:"verified"`
	Active     int            `json:"active"`
	Cached     int            `json:"cached"` // agents keeping it for rollback only
	States     map[string]int `json:"states"`
	Progress   float64        `json:"progress"`       // active/subscribed, 0..1
	Percent    float64        `json:"percent_active"` // floor(progress*100, 0.1)
	// Status is complete, in_progress, stalled or cached (nobody targets it).
	Status   string       `json:"status"`
	Sites    []Breakdown  `json:"sites"`
	Regions  []Breakdown  `json:"regions"`
	Bytes    report.Bytes `json:"bytes"` // downloaded by all agents, by source
	Uploaded int64        `json:"uploaded"`
	// Reused is payload bytes agents took from releases they held
	// (delta releases): bytes that crossed no link.
	Reused       int64         `json:"reused"`
	OriginCopies float64       `json:"origin_copies"` // (origin+webseed)/size
	Swarm        SwarmHealth   `json:"swarm"`
	Stalled      []StalledItem `json:"stalled"` // the first maxStalledShown
	StalledTotal int           `json:"stalled_total"`
	// AtRisk are agents that will miss the release's deliver-by time at
	// their current rate (deadline.go), the first maxAtRiskShown.
	AtRisk      []AtRiskItem  `json:"at_risk"`
	AtRiskTotal int           `json:"at_risk_total"`
	Remaining   int64         `json:"remaining_bytes"`
	Rate        float64       `json:"rate_bytes_per_second"`
	ETASeconds  *float64      `json:"eta_seconds"` // null: no progress to extrapolate
	Series      []SeriesPoint `json:"series"`
}

// Breakdown is a release's rollout at one site or region.
type Breakdown struct {
	Name       string       `json:"name"`
	Subscribed int          `json:"subscribed"`
	Verified   int          `json:"verified"`
	Active     int          `json:"active"`
	Bytes      report.Bytes `json:"bytes"`
}

// SwarmHealth is the tracker's view of a release's swarm.
type SwarmHealth struct {
	Seeders  int `json:"seeders"`  // complete peers, the origin's seeder excluded
	Leechers int `json:"leechers"` // incomplete peers
	Origin   int `json:"origin"`   // origin seeders
	// Availability is the distributed copies among peers: seeders plus
	// the fractions leechers hold.
	Availability float64 `json:"availability"`
}

// StalledItem is an agent that is not getting a release.
type StalledItem struct {
	AgentID   string    `json:"agent_id"`
	Name      string    `json:"name"`
	Site      string    `json:"site,omitempty"`
	Region    string    `json:"region,omitempty"`
	State     string    `json:"state"`
	Completed int64     `json:"completed"`
	Size      int64     `json:"size"`
	Why       string    `json:"why"` // failed, error, no progress, missing
	LastError string    `json:"last_error,omitempty"`
	Since     time.Time `json:"since"`
}

// SeriesPoint is a release's totals at one time.
type SeriesPoint struct {
	T         int64 `json:"t"` // unix milliseconds
	Peer      int64 `json:"peer"`
	Origin    int64 `json:"origin"`
	WebSeed   int64 `json:"webseed"`
	Completed int64 `json:"completed"`
	Active    int   `json:"active"`
}

// Alert is a threshold crossed.
type Alert struct {
	Kind     string    `json:"kind"`
	Severity string    `json:"severity"` // warning, critical
	Release  string    `json:"release,omitempty"`
	Message  string    `json:"message"`
	Since    time.Time `json:"since"`
}

// AgentRow is one agent on the dashboard.
type AgentRow struct {
	AgentID      string        `json:"agent_id"`
	Name         string        `json:"name"`
	Site         string        `json:"site,omitempty"`
	Region       string        `json:"region,omitempty"`
	Tenant       string        `json:"tenant,omitempty"`
	Live         bool          `json:"live"`
	LastSeen     time.Time     `json:"last_seen"`
	Releases     []string      `json:"releases"` // name@version state
	Peers        int           `json:"peers"`
	Uploaded     int64         `json:"uploaded"`
	CatalogError string        `json:"catalog_error,omitempty"`
	Policy       report.Policy `json:"policy"`
	Version      string        `json:"version,omitempty"`     // the agent binary's
	SelfUpdate   string        `json:"self_update,omitempty"` // a rolled-back self-update
}

// View is the rollout view of the whole fleet now.
func (s *Reports) View() View { return s.view(nil) }

// view is the rollout view of the fleet (scope nil) or of one tenant's
// agents. It only reads: what time changes (forgetting, series, alert
// start times) is Tick's.
func (s *Reports) view(scope *string) View {
	now := s.now()
	s.mu.RLock()
	out := s.viewLocked(now, scope, s.aggregateLocked(now, scope), true)
	s.mu.RUnlock()
	if scope == nil && s.origin.Egress != nil {
		out.Egress = s.origin.Egress()
	}
	return out
}

// viewLocked builds a view from an aggregate. A tenant's view leaves out
// what only the fleet has: the origin's egress, the time series and the
// fleet-wide alerts. An alert firing since the last Tick has since = now.
// Without full, only the figures alerts need are computed (for Tick): no
// swarm health, series or sorted agent list. s.mu is held, for reading at
// least.
func (s *Reports) viewLocked(now time.Time, scope *string, a *aggregate, full bool) View {
	out := View{Generated: now.UTC(), Agents: a.counts, Releases: []Release{}, AgentList: a.rows, Alerts: []Alert{}, AgentVersions: a.versions,
		Screens: a.screens, ScreensAtRisk: a.screensAtRisk}
	finishScreens(&out)
	fire := func(al Alert) {
		since, ok := s.alertSince[alertKey(al)]
		if !ok {
			since = now
		}
		al.Since = since.UTC()
		out.Alerts = append(out.Alerts, al)
	}
	var stallMax time.Duration
	for _, rec := range s.agents {
		if now.Sub(rec.Received) > s.cfg.Forget {
			continue // Tick drops it
		}
		stallMax = max(stallMax, time.Duration(s.cfg.StallIntervals)*s.interval(rec))
	}
	for key, ra := range a.rels {
		r := &ra.r
		if sr := s.series[key]; sr != nil && scope == nil {
			if full {
				r.Series = append([]SeriesPoint(nil), sr.points...)
			}
			r.Rate = sr.rate()
		}
		r.Sites, r.Regions = sortedBreakdowns(ra.sites), sortedBreakdowns(ra.regions)
		if r.Subscribed > 0 {
			r.Progress = float64(r.Active) / float64(r.Subscribed)
			r.Percent = math.Floor(r.Progress*1000) / 10
		}
		r.Remaining = ra.remainingKnownAgent + int64(ra.pendingWithoutSize)*r.Size
		if r.Size > 0 {
			r.OriginCopies = float64(r.Bytes.Origin+r.Bytes.WebSeed) / float64(r.Size)
		}
		stalled := ra.incompleteAgents > 0 && now.Sub(ra.lastMove) > stallMax
		switch {
		case r.Remaining == 0 && ra.incompleteAgents == 0:
			zero := 0.0
			r.ETASeconds = &zero
		case r.Rate > 0 && !stalled:
			eta := math.Ceil(float64(r.Remaining) / r.Rate)
			r.ETASeconds = &eta
		}
		if full {
			r.Swarm = s.swarmHealth(r.InfoHash, r.Size, ra.byPeer)
		}
		if r.Stalled == nil {
			r.Stalled = []StalledItem{}
		}
		slices.SortFunc(r.Stalled, func(x, y StalledItem) int { return strings.Compare(x.Site+x.Name, y.Site+y.Name) })
		r.StalledTotal = len(r.Stalled)
		r.Stalled = r.Stalled[:min(len(r.Stalled), maxStalledShown)]
		finishAtRisk(r)
		switch {
		case r.Subscribed == 0:
			r.Status = "cached"
		case r.Active == r.Subscribed:
			r.Status = "complete"
		case stalled:
			r.Status = "stalled"
		default:
			r.Status = "in_progress"
		}
		for _, al := range s.releaseAlerts(r, now.Sub(ra.lastMove)) {
			fire(al)
		}
		out.Releases = append(out.Releases, *r)
	}
	if scope == nil {
		for _, al := range s.fleetAlertsLocked(a) {
			fire(al)
		}
	}
	firstSeen := s.firstSeen
	slices.SortFunc(out.Releases, func(x, y Release) int {
		if (x.Subscribed > 0) != (y.Subscribed > 0) {
			if x.Subscribed > 0 {
				return -1
			}
			return 1
		}
		if c := strings.Compare(x.Name, y.Name); c != 0 {
			return c
		}
		return firstSeen[y.Release].Compare(firstSeen[x.Release]) // newest first
	})
	slices.SortFunc(out.Alerts, func(x, y Alert) int {
		return strings.Compare(x.Kind+x.Release, y.Kind+y.Release)
	})
	if !full {
		return out
	}
	slices.SortFunc(out.AgentList, func(x, y AgentRow) int {
		if x.Live != y.Live {
			if !x.Live {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Site+"\x00"+x.Name+x.AgentID, y.Site+"\x00"+y.Name+y.AgentID)
	})
	out.AgentList = out.AgentList[:min(len(out.AgentList), maxAgentRows)]
	return out
}

// handleRollout serves the rollout view, cut to the operator's tenant.
func (s *Reports) handleRollout(w http.ResponseWriter, r *http.Request, tenant string) {
	var v View
	if tenant == "" {
		v = s.View()
	} else {
		v = s.view(&tenant)
	}
	v.Plans = s.planViews(r.Context(), v)
	writeJSON(w, v)
}

// handleAgent serves one agent's latest report and history; a fleet
// operator names the tenant with ?tenant= (default: no tenant), a
// tenant's operator sees only its own agents.
func (s *Reports) handleAgent(w http.ResponseWriter, r *http.Request, tenant string) {
	if tenant == "" {
		tenant = r.URL.Query().Get("tenant")
	}
	// From the store, not the view's copy: with a shared store only the
	// store holds the history.
	rec, err := s.store.get(r.Context(), recordKey(tenant, r.PathValue("id")))
	if err != nil {
		http.Error(w, "the origin's shared state does not answer; retry later", http.StatusServiceUnavailable)
		return
	}
	var b []byte
	if rec != nil {
		b, _ = json.Marshal(rec)
	}
	if rec == nil {
		http.Error(w, "no such agent", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.Encode(v)
}
