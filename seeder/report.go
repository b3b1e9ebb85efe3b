package seeder

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/swarmship/swarmship/internal/report"
	"github.com/swarmship/swarmship/internal/token"
	"github.com/swarmship/swarmship/seeder/tracker"
)

// ReportsConfig tunes how the origin keeps agent reports and when it
// raises alerts. Zero values mean the defaults.
type ReportsConfig struct {
	// History is how many past reports are kept per agent; default 32.
	History int `yaml:"history"`
	// StallIntervals: an agent whose release has made no progress for this
	// many of its report intervals is stalled, and one that has not
	// reported for as long is missing; default 4.
	StallIntervals int `yaml:"stall_intervals"`
	// OriginBudget is how many copies of a release the origin (range
	// requests and web seed) may send before the origin_share alert fires;
	// default 1.5.
	OriginBudget float64 `yaml:"origin_budget"`
	// ChurnRatio: the churn alert fires when this share of the known agents
	// went missing within ChurnWindow; default 0.2 and 15m.
	ChurnRatio  float64       `yaml:"churn_ratio"`
	ChurnWindow time.Duration `yaml:"churn_window"`
	// CapacityDrop: the upload_capacity alert fires when the agents able
	// to seed fall below this share of their peak of the last hour; default 0.5.
	CapacityDrop float64 `yaml:"capacity_drop"`
	// Forget drops agents that have not reported for this long; default 7 days.
	Forget time.Duration `yaml:"forget"`
	// MaxAgents bounds memory; reports from further agents are refused; default 100000.
	MaxAgents int `yaml:"max_agents"`
}

func (c *ReportsConfig) setDefaults() {
	if c.History <= 0 {
		c.History = 32
	}
	if c.StallIntervals <= 0 {
		c.StallIntervals = 4
	}
	if c.OriginBudget <= 0 {
		c.OriginBudget = 1.5
	}
	if c.ChurnRatio <= 0 {
		c.ChurnRatio = 0.2
	}
	if c.ChurnWindow <= 0 {
		c.ChurnWindow = 15 * time.Minute
	}
	if c.CapacityDrop <= 0 {
		c.CapacityDrop = 0.5
	}
	if c.Forget <= 0 {
		c.Forget = 7 * 24 * time.Hour
	}
	if c.MaxAgents <= 0 {
		c.MaxAgents = 100000
	}
}

// Alert kinds, exported as swarmship_alerts{kind}.
const (
	AlertStalledRollout = "stalled_rollout"
	AlertOriginShare    = "origin_share"
	AlertChurn          = "churn"
	AlertUploadCapacity = "upload_capacity"
)

var alertKinds = []string{AlertStalledRollout, AlertOriginShare, AlertChurn, AlertUploadCapacity}

// Per-agent states of a release in the rollout view: the agent's release
// phases plus pending (the agent targets the release but has no record of
// it yet). Every subscribed agent is in exactly one of them.
var rolloutStates = []string{"pending", "queued", "downloading", "verified", "active", "failed"}

// agentRecord is what the origin keeps per agent, in memory and in bbolt.
type agentRecord struct {
	Report    *report.Report          `json:"report"`
	Received  time.Time               `json:"received"`
	FirstSeen time.Time               `json:"first_seen"`
	Progress  map[string]progressMark `json:"progress"` // by name@version
	History   []historyEntry          `json:"history"`  // oldest first
}

// progressMark is when a release last moved on an agent: its completed
// bytes grew or its state changed.
type progressMark struct {
	State     string    `json:"state"`
	Completed int64     `json:"completed"`
	Since     time.Time `json:"since"`
}

// historyEntry is one past report, reduced to what charts need.
type historyEntry struct {
	Time     time.Time     `json:"time"`
	Releases []historyItem `json:"releases"`
}

type historyItem struct {
	Release    string       `json:"release"`
	State      string       `json:"state"`
	Completed  int64        `json:"completed"`
	Downloaded report.Bytes `json:"downloaded"`
	Uploaded   int64        `json:"uploaded"`
}

func (r *agentRecord) interval() time.Duration {
	return time.Duration(r.Report.IntervalSeconds * float64(time.Second))
}

// reportStore keeps the latest report and a short history per agent and
// computes the rollout view.
type reportStore struct {
	cfg    ReportsConfig
	log    *slog.Logger
	now    func() time.Time
	db     *bolt.DB // nil: memory only
	peers  func([20]byte) []tracker.Peer
	egress func() Egress
	auth   func(*http.Request, *report.Report) (int, error)

	accepted, rejected atomic.Int64

	mu         sync.Mutex
	agents     map[string]*agentRecord
	series     map[string]*series   // by name@version
	firstSeen  map[string]time.Time // releases, by name@version
	capacity   []capSample
	alertSince map[string]time.Time
	lastSample time.Time
}

var reportsBucket = []byte("agents")

// openReports opens the report store; with a cache dir the reports
// survive restarts in cacheDir/reports.db.
func openReports(cfg ReportsConfig, cacheDir string, o *Origin, log *slog.Logger) (*reportStore, error) {
	cfg.setDefaults()
	s := &reportStore{
		cfg: cfg, log: log, now: time.Now,
		peers: o.tracker.Peers, egress: o.Egress, auth: o.authorizeReport,
		agents: map[string]*agentRecord{}, series: map[string]*series{},
		firstSeen: map[string]time.Time{}, alertSince: map[string]time.Time{},
	}
	if cacheDir == "" {
		return s, nil
	}
	path := filepath.Join(cacheDir, "reports.db")
	if err := os.MkdirAll(cacheDir, 0o750); err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	db, err := bolt.Open(path, 0o640, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("report database %s is locked: is another origin running on this cache?", path)
		}
		return nil, fmt.Errorf("open report database %s: %w", path, err)
	}
	now := s.now()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(reportsBucket)
		if err != nil {
			return err
		}
		var stale [][]byte
		err = b.ForEach(func(k, v []byte) error {
			var rec agentRecord
			if json.Unmarshal(v, &rec) != nil || rec.Report == nil || rec.Report.Validate() != nil || now.Sub(rec.Received) > cfg.Forget {
				stale = append(stale, k)
				return nil
			}
			if rec.Progress == nil {
				rec.Progress = map[string]progressMark{}
			}
			s.agents[string(k)] = &rec
			return nil
		})
		for _, k := range stale {
			b.Delete(k)
		}
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("report database %s: %w", path, err)
	}
	s.db = db
	if len(s.agents) > 0 {
		log.Info("agent reports restored", "agents", len(s.agents), "path", path)
	}
	return s, nil
}

func (s *reportStore) close() error {
	if s == nil || s.db == nil {
		return nil
	}
	return s.db.Close()
}

// routes registers the report API and the dashboard.
func (s *reportStore) routes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+report.Path, s.handleReport)
	mux.HandleFunc("GET /api/v1/rollout", s.handleRollout)
	mux.HandleFunc("GET /api/v1/agents/{id}", s.handleAgent)
	dashboardRoutes(mux)
}

func (s *reportStore) handleReport(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			s.rejected.Add(1)
			http.Error(w, "reports are application/json", http.StatusUnsupportedMediaType)
			return
		}
	}
	if r.ContentLength > report.MaxBody {
		s.rejected.Add(1)
		http.Error(w, fmt.Sprintf("report is larger than %d bytes", report.MaxBody), http.StatusRequestEntityTooLarge)
		return
	}
	rep, err := report.Decode(http.MaxBytesReader(w, r.Body, report.MaxBody+1))
	if err != nil {
		s.rejected.Add(1)
		code := http.StatusBadRequest
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) || strings.Contains(err.Error(), "larger than") {
			code = http.StatusRequestEntityTooLarge
		}
		http.Error(w, err.Error(), code)
		return
	}
	if code, err := s.auth(r, rep); err != nil {
		s.rejected.Add(1)
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="swarmship"`)
		}
		s.log.Warn("agent report refused", "agent", rep.AgentID, "site", rep.Site, "peer", r.RemoteAddr, "err", err)
		http.Error(w, "token required: "+err.Error(), code)
		return
	}
	if err := s.ingest(rep); err != nil {
		s.rejected.Add(1)
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	s.accepted.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

// authorizeReport admits every report while the origin requires no
// tokens; with tokens, a report needs a valid one whose claims match the
// tenant, site and region it reports.
func (o *Origin) authorizeReport(r *http.Request, rep *report.Report) (int, error) {
	if o.tokenKey == nil {
		return 0, nil
	}
	c, err := token.Verify(o.tokenKey, token.FromRequest(r.Header.Get("Authorization"), ""), time.Now())
	if errors.Is(err, token.ErrMissing) {
		return http.StatusUnauthorized, err
	}
	if err == nil {
		err = matchClaims(c, rep.Tenant, rep.Site, rep.Region)
	}
	if err != nil {
		return http.StatusForbidden, err
	}
	return 0, nil
}

var errTooManyAgents = errors.New("origin keeps no more agents; raise reports.max_agents")

// ingest stores a validated report.
func (s *reportStore) ingest(rep *report.Report) error {
	now := s.now()
	s.mu.Lock()
	rec := s.agents[rep.AgentID]
	if rec == nil {
		if len(s.agents) >= s.cfg.MaxAgents {
			s.mu.Unlock()
			return errTooManyAgents
		}
		rec = &agentRecord{FirstSeen: now, Progress: map[string]progressMark{}}
		s.agents[rep.AgentID] = rec
	}
	rec.Report, rec.Received = rep, now
	// Progress marks: a release moves when its bytes grow or its state changes.
	current := map[string]progressMark{}
	for key, st := range agentReleases(rep) {
		m := progressMark{State: st.state, Completed: st.completed, Since: now}
		if old, ok := rec.Progress[key]; ok && old.State == m.State && m.Completed <= old.Completed {
			m = old
		}
		current[key] = m
		if _, ok := s.firstSeen[key]; !ok {
			s.firstSeen[key] = now
		}
	}
	rec.Progress = current
	h := historyEntry{Time: now, Releases: make([]historyItem, 0, len(rep.Releases))}
	for _, r := range rep.Releases {
		h.Releases = append(h.Releases, historyItem{Release: r.Key(), State: r.State, Completed: r.Completed, Downloaded: r.Downloaded, Uploaded: r.Uploaded})
	}
	rec.History = append(rec.History, h)
	if n := len(rec.History) - s.cfg.History; n > 0 {
		rec.History = append(rec.History[:0], rec.History[n:]...)
	}
	var blob []byte
	if s.db != nil {
		blob, _ = json.Marshal(rec)
	}
	if now.Sub(s.lastSample) >= time.Second {
		s.sampleLocked(now, s.aggregateLocked(now))
	}
	s.mu.Unlock()
	if blob != nil {
		// Batch coalesces concurrent reports into one transaction.
		if err := s.db.Batch(func(tx *bolt.Tx) error {
			return tx.Bucket(reportsBucket).Put([]byte(rep.AgentID), blob)
		}); err != nil {
			s.log.Warn("cannot store agent report", "agent", rep.AgentID, "err", err)
		}
	}
	return nil
}

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

// Rollout is GET /api/v1/rollout: every release the agents report, how far
// its rollout is, where it is stuck, and the alerts.
type Rollout struct {
	Generated time.Time        `json:"generated"`
	Agents    AgentCounts      `json:"agents"`
	Egress    Egress           `json:"origin_egress"`
	Releases  []ReleaseRollout `json:"releases"`
	Alerts    []Alert          `json:"alerts"`
	AgentList []AgentRow       `json:"agent_list"` // missing agents first, at most maxAgentRows
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

// ReleaseRollout is one release's rollout.
type ReleaseRollout struct {
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
	Status       string        `json:"status"`
	Sites        []Breakdown   `json:"sites"`
	Regions      []Breakdown   `json:"regions"`
	Bytes        report.Bytes  `json:"bytes"` // downloaded by all agents, by source
	Uploaded     int64         `json:"uploaded"`
	OriginCopies float64       `json:"origin_copies"` // (origin+webseed)/size
	Swarm        SwarmHealth   `json:"swarm"`
	Stalled      []StalledItem `json:"stalled"` // the first maxStalledShown
	StalledTotal int           `json:"stalled_total"`
	Remaining    int64         `json:"remaining_bytes"`
	Rate         float64       `json:"rate_bytes_per_second"`
	ETASeconds   *float64      `json:"eta_seconds"` // null: no progress to extrapolate
	Series       []SeriesPoint `json:"series"`
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
}

// relAgg is a release's aggregate while computing the view.
type relAgg struct {
	r                   ReleaseRollout
	sites, regions      map[string]*Breakdown
	completed           int64            // over subscribed agents
	lastMove            time.Time        // latest progress of any subscribed agent
	incompleteAgents    int              // subscribed, not yet verified
	pendingWithoutSize  int              // incomplete agents that do not know the size yet
	remainingKnownAgent int64            // bytes the other incomplete agents miss
	byPeer              map[string]int64 // reported completed bytes by peer ID: fresher than the tracker's "left"
}

type aggregate struct {
	rels    map[string]*relAgg
	counts  AgentCounts
	rows    []AgentRow
	missing []*agentRecord // went missing within the churn window
	forget  []string
}

func (s *reportStore) agg(key string, a *aggregate) *relAgg {
	ra := a.rels[key]
	if ra == nil {
		name, version, _ := strings.Cut(key, "@")
		ra = &relAgg{
			r:     ReleaseRollout{Release: key, Name: name, Version: version, States: map[string]int{}},
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
// figures. s.mu is held.
func (s *reportStore) aggregateLocked(now time.Time) *aggregate {
	a := &aggregate{rels: map[string]*relAgg{}}
	for id, rec := range s.agents {
		age := now.Sub(rec.Received)
		if age > s.cfg.Forget {
			a.forget = append(a.forget, id)
			continue
		}
		rep := rec.Report
		stallAfter := time.Duration(s.cfg.StallIntervals) * rec.interval()
		live := age <= stallAfter
		a.counts.Known++
		if live {
			a.counts.Live++
		} else {
			a.counts.Missing++
			if age <= s.cfg.ChurnWindow+stallAfter {
				a.missing = append(a.missing, rec)
			}
		}
		row := AgentRow{AgentID: id, Name: rep.Name, Site: rep.Site, Region: rep.Region, Tenant: rep.Tenant,
			Live: live, LastSeen: rec.Received, Releases: []string{}, CatalogError: rep.Catalog.Error, Policy: rep.Policy}
		seeding := false
		// Bytes count for every release the agent holds, targeted or not.
		for i := range rep.Releases {
			r := &rep.Releases[i]
			ra := s.agg(r.Key(), a)
			ra.r.Bytes = ra.r.Bytes.Add(r.Downloaded)
			ra.r.Uploaded += r.Uploaded
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

// sampleLocked appends the current totals to each release's series.
func (s *reportStore) sampleLocked(now time.Time, a *aggregate) {
	s.lastSample = now
	for key, ra := range a.rels {
		sr := s.series[key]
		if sr == nil {
			sr = &series{step: time.Second}
			s.series[key] = sr
		}
		sr.add(now, SeriesPoint{T: now.UnixMilli(), Peer: ra.r.Bytes.Peer, Origin: ra.r.Bytes.Origin, WebSeed: ra.r.Bytes.WebSeed,
			Completed: ra.completed, Active: ra.r.Active})
	}
	for key := range s.series {
		if a.rels[key] == nil {
			delete(s.series, key)
			delete(s.firstSeen, key)
		}
	}
	// Upload capacity: one sample per 10s over the last hour.
	if n := len(s.capacity); n == 0 || now.Sub(s.capacity[n-1].t) >= 10*time.Second {
		s.capacity = append(s.capacity, capSample{t: now, n: a.counts.Seeding})
	} else {
		s.capacity[n-1].n = max(s.capacity[n-1].n, a.counts.Seeding)
	}
	i := 0
	for i < len(s.capacity) && now.Sub(s.capacity[i].t) > time.Hour {
		i++
	}
	s.capacity = s.capacity[i:]
}

type capSample struct {
	t time.Time
	n int
}

// series keeps up to seriesCap points; when full it halves its resolution,
// so it always covers the release's whole life.
type series struct {
	step   time.Duration
	last   time.Time
	points []SeriesPoint
}

const seriesCap = 240

func (sr *series) add(now time.Time, p SeriesPoint) {
	if n := len(sr.points); n > 0 && now.Sub(sr.last) < sr.step {
		sr.points[n-1] = p
		return
	}
	sr.points = append(sr.points, p)
	sr.last = now
	if len(sr.points) > seriesCap {
		// Keep every other point, always the newest.
		var kept []SeriesPoint
		for i := len(sr.points) - 1; i >= 0; i -= 2 {
			kept = append(kept, sr.points[i])
		}
		slices.Reverse(kept)
		sr.points = kept
		sr.step *= 2
	}
}

// rate is completed bytes per second over about the last minute.
func (sr *series) rate() float64 {
	if sr == nil || len(sr.points) < 2 {
		return 0
	}
	last := sr.points[len(sr.points)-1]
	first := sr.points[0]
	for i := len(sr.points) - 2; i >= 0; i-- {
		first = sr.points[i]
		if last.T-first.T >= 60_000 {
			break
		}
	}
	dt := float64(last.T-first.T) / 1000
	if dt <= 0 || last.Completed <= first.Completed {
		return 0
	}
	return float64(last.Completed-first.Completed) / dt
}

// Rollout computes the rollout view now.
func (s *reportStore) Rollout() Rollout {
	now := s.now()
	s.mu.Lock()
	a := s.aggregateLocked(now)
	for _, id := range a.forget {
		delete(s.agents, id)
	}
	s.sampleLocked(now, a)
	out := Rollout{Generated: now.UTC(), Agents: a.counts, Releases: []ReleaseRollout{}, AgentList: a.rows}
	firing := map[string]Alert{}
	fire := func(al Alert) {
		key := al.Kind + "|" + al.Release
		since, ok := s.alertSince[key]
		if !ok {
			since = now
		}
		al.Since = since.UTC()
		firing[key] = al
	}
	var stallMax time.Duration
	for _, rec := range s.agents {
		stallMax = max(stallMax, time.Duration(s.cfg.StallIntervals)*rec.interval())
	}
	for key, ra := range a.rels {
		r := &ra.r
		if sr := s.series[key]; sr != nil {
			r.Series = append([]SeriesPoint(nil), sr.points...)
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
		r.Swarm = s.swarmHealth(r.InfoHash, r.Size, ra.byPeer)
		if r.Stalled == nil {
			r.Stalled = []StalledItem{}
		}
		slices.SortFunc(r.Stalled, func(x, y StalledItem) int { return strings.Compare(x.Site+x.Name, y.Site+y.Name) })
		r.StalledTotal = len(r.Stalled)
		r.Stalled = r.Stalled[:min(len(r.Stalled), maxStalledShown)]
		switch {
		case r.Subscribed == 0:
			r.Status = "cached"
		case r.Active == r.Subscribed:
			r.Status = "complete"
		case stalled:
			r.Status = "stalled"
			fire(Alert{Kind: AlertStalledRollout, Severity: "critical", Release: key,
				Message: fmt.Sprintf("%s: no progress on any agent for %s; %d of %d active", key, roundDur(now.Sub(ra.lastMove)), r.Active, r.Subscribed)})
		default:
			r.Status = "in_progress"
		}
		if r.Subscribed > 0 && r.Size > 0 && r.OriginCopies > s.cfg.OriginBudget {
			fire(Alert{Kind: AlertOriginShare, Severity: "warning", Release: key,
				Message: fmt.Sprintf("%s: origin and web seed sent %.2f copies (budget %.2g)", key, r.OriginCopies, s.cfg.OriginBudget)})
		}
		out.Releases = append(out.Releases, *r)
	}
	if m := len(a.missing); m > 0 && float64(m) >= s.cfg.ChurnRatio*float64(a.counts.Known) {
		names := make([]string, 0, 3)
		for _, rec := range a.missing[:min(m, 3)] {
			names = append(names, rec.Report.Name)
		}
		slices.Sort(names)
		fire(Alert{Kind: AlertChurn, Severity: "warning",
			Message: fmt.Sprintf("%d of %d agents stopped reporting recently (%s)", m, a.counts.Known, strings.Join(names, ", "))})
	}
	peak := 0
	for _, c := range s.capacity {
		peak = max(peak, c.n)
	}
	if peak >= 2 && float64(a.counts.Seeding) < s.cfg.CapacityDrop*float64(peak) {
		fire(Alert{Kind: AlertUploadCapacity, Severity: "warning",
			Message: fmt.Sprintf("%d agents can seed, down from %d within the last hour", a.counts.Seeding, peak)})
	}
	for key := range s.alertSince {
		if _, ok := firing[key]; !ok {
			delete(s.alertSince, key)
		}
	}
	out.Alerts = []Alert{}
	for key, al := range firing {
		s.alertSince[key] = al.Since
		out.Alerts = append(out.Alerts, al)
	}
	firstSeen := s.firstSeen
	slices.SortFunc(out.Releases, func(x, y ReleaseRollout) int {
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
	s.mu.Unlock()
	for _, id := range a.forget {
		if s.db != nil {
			s.db.Batch(func(tx *bolt.Tx) error { return tx.Bucket(reportsBucket).Delete([]byte(id)) })
		}
	}
	slices.SortFunc(out.Alerts, func(x, y Alert) int {
		return strings.Compare(x.Kind+x.Release, y.Kind+y.Release)
	})
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
	out.Egress = s.egress()
	return out
}

// swarmHealth counts the tracker's peers of a release. For agents that
// report, their reported progress replaces the tracker's "left", which is
// only as fresh as their last announce.
func (s *reportStore) swarmHealth(infoHash string, size int64, byPeer map[string]int64) SwarmHealth {
	var h SwarmHealth
	b, err := hex.DecodeString(infoHash)
	if err != nil || len(b) != 20 {
		return h
	}
	var ih [20]byte
	copy(ih[:], b)
	for _, p := range s.peers(ih) {
		if done, ok := byPeer[hex.EncodeToString(p.ID[:])]; ok && size > 0 && p.Identity.Role != tracker.RoleOrigin {
			p.Left = size - min(done, size)
		}
		switch {
		case p.Identity.Role == tracker.RoleOrigin:
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

func (s *reportStore) handleRollout(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, s.Rollout())
}

// handleAgent serves one agent's latest report and history.
func (s *reportStore) handleAgent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	rec := s.agents[id]
	var b []byte
	if rec != nil {
		b, _ = json.Marshal(rec)
	}
	s.mu.Unlock()
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

var (
	descRolloutAgents = prometheus.NewDesc("swarmship_rollout_agents",
		"Reporting agents per release, by state (pending, queued, downloading, verified, active, failed); the states sum to the subscribed agents.",
		[]string{"release", "state"}, nil)
	descRolloutProgress = prometheus.NewDesc("swarmship_rollout_progress_ratio",
		"Share of a release's subscribed agents that have it active, 0 to 1.", []string{"release"}, nil)
	descAlerts = prometheus.NewDesc("swarmship_alerts",
		"1 while an alert of this kind fires (stalled_rollout, origin_share, churn, upload_capacity), else 0.", []string{"kind"}, nil)
	descReportAgents = prometheus.NewDesc("swarmship_rollout_reporting_agents",
		"Agents known from their reports, by state (live, missing).", []string{"state"}, nil)
	descReportsRecv = prometheus.NewDesc("swarmship_origin_reports_total",
		"Agent reports received, by result (accepted, rejected).", []string{"result"}, nil)
)

type rolloutCollector struct{ s *reportStore }

func (c rolloutCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRolloutAgents, descRolloutProgress, descAlerts, descReportAgents, descReportsRecv} {
		ch <- d
	}
}

func (c rolloutCollector) Collect(ch chan<- prometheus.Metric) {
	ro := c.s.Rollout()
	for _, r := range ro.Releases {
		if r.Subscribed == 0 {
			continue
		}
		for _, st := range rolloutStates {
			ch <- prometheus.MustNewConstMetric(descRolloutAgents, prometheus.GaugeValue, float64(r.States[st]), r.Release, st)
		}
		ch <- prometheus.MustNewConstMetric(descRolloutProgress, prometheus.GaugeValue, r.Progress, r.Release)
	}
	on := map[string]bool{}
	for _, al := range ro.Alerts {
		on[al.Kind] = true
	}
	for _, k := range alertKinds {
		v := 0.0
		if on[k] {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descAlerts, prometheus.GaugeValue, v, k)
	}
	ch <- prometheus.MustNewConstMetric(descReportAgents, prometheus.GaugeValue, float64(ro.Agents.Live), "live")
	ch <- prometheus.MustNewConstMetric(descReportAgents, prometheus.GaugeValue, float64(ro.Agents.Missing), "missing")
	ch <- prometheus.MustNewConstMetric(descReportsRecv, prometheus.CounterValue, float64(c.s.accepted.Load()), "accepted")
	ch <- prometheus.MustNewConstMetric(descReportsRecv, prometheus.CounterValue, float64(c.s.rejected.Load()), "rejected")
}
