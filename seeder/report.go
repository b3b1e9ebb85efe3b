package seeder

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"mime"
	"net"
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
	berrors "go.etcd.io/bbolt/errors"

	"github.com/swarmship/swarmship/internal/report"
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
	// MaxAgentsPerTenant bounds the agents one tenant can register; default 10000.
	MaxAgentsPerTenant int `yaml:"max_agents_per_tenant"`
	// MaxRecordBytes bounds one agent's stored record (latest report and
	// history, as JSON): history is dropped oldest first to fit, and a
	// report that alone exceeds it is refused; default 128 KiB.
	MaxRecordBytes int `yaml:"max_record_bytes"`
	// MaxTenantBytes and MaxBytes bound the stored records of one tenant
	// and of all (memory and reports.db); default 64 MiB and 256 MiB.
	MaxTenantBytes int64 `yaml:"max_tenant_bytes"`
	MaxBytes       int64 `yaml:"max_bytes"`
	// MaxInterval caps the report interval an agent declares, so that no
	// agent counts as live for longer than stall_intervals*max_interval
	// after its last report; default 2m.
	MaxInterval time.Duration `yaml:"max_interval"`
	// RatePerAddress is the reports per second accepted from one address
	// (burst: 4 s worth, at least 50); default 50. One agent identity may
	// send identityRate per second.
	RatePerAddress float64 `yaml:"rate_per_address"`
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
	if c.MaxAgentsPerTenant <= 0 {
		c.MaxAgentsPerTenant = 10000
	}
	if c.MaxRecordBytes <= 0 {
		c.MaxRecordBytes = 128 << 10
	}
	if c.MaxTenantBytes <= 0 {
		c.MaxTenantBytes = 64 << 20
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 256 << 20
	}
	if c.MaxInterval <= 0 {
		c.MaxInterval = 2 * time.Minute
	}
	if c.RatePerAddress <= 0 {
		c.RatePerAddress = 50
	}
}

// Per-identity report rate and the bound on report requests decoded at
// once (each may hold report.MaxBody bytes).
const (
	identityRate    = 5.0
	identityBurst   = 10.0
	maxDecoding     = 4
	maxAddrLimiters = 10000
	storedTextLen   = 256 // free text kept per field
	storedNameLen   = 64
)

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
	// Addr is the address the agent reports from. Without tokens a
	// record is bound to it while the agent is live, so that nobody else
	// can overwrite it by reusing its id.
	Addr string `json:"addr,omitempty"`

	size int    // bytes of the stored JSON, counted against the budgets
	lim  bucket // per-identity rate
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

// interval is the agent's report interval, capped by the origin.
func (s *reportStore) interval(r *agentRecord) time.Duration {
	return min(time.Duration(r.Report.IntervalSeconds*float64(time.Second)), s.cfg.MaxInterval)
}

// recordKey names an agent's record: agent ids are only unique within a
// tenant, and a tenant's agents can never touch another tenant's records.
func recordKey(tenant, agentID string) string { return tenant + "/" + agentID }

// bucket is a token bucket.
type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) allow(now time.Time, rate, burst float64) bool {
	if b.last.IsZero() {
		b.tokens = burst
	} else if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(burst, b.tokens+d*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// reportStore keeps the latest report and a short history per agent and
// computes the rollout view.
type reportStore struct {
	cfg      ReportsConfig
	log      *slog.Logger
	now      func() time.Time
	db       *bolt.DB // nil: memory only
	peers    func([20]byte) []tracker.Peer
	egress   func() Egress
	auth     func(*http.Request, *report.Report) (int, error)
	guard    func(fleetOnly bool, what string, h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc
	tokens   bool // reports are authenticated: identities come from tokens
	refusals *refusalLog

	decoding chan struct{}

	accepted, rejected atomic.Int64

	mu         sync.Mutex
	agents     map[string]*agentRecord // by recordKey
	perTenant  map[string]*tenantUse
	totalBytes int64
	addrLim    map[string]*bucket
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
		peers: o.tracker.Peers, egress: o.Egress, auth: o.authorizeReport, guard: o.operator, tokens: o.tokensOn(), refusals: o.refusals,
		decoding: make(chan struct{}, maxDecoding), perTenant: map[string]*tenantUse{}, addrLim: map[string]*bucket{},
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
		if errors.Is(err, berrors.ErrTimeout) {
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
		// The same bounds as for live reports: a database filled before
		// they existed (or by hand) cannot bring back more than they allow.
		var stale [][]byte
		rekey := map[string][]byte{}
		err = b.ForEach(func(k, v []byte) error {
			var rec agentRecord
			if len(v) > cfg.MaxRecordBytes || json.Unmarshal(v, &rec) != nil || rec.Report == nil || rec.Report.Validate() != nil || now.Sub(rec.Received) > cfg.Forget {
				stale = append(stale, k)
				return nil
			}
			key := recordKey(rec.Report.Tenant, rec.Report.AgentID)
			if s.agents[key] != nil || s.admitLocked(rec.Report.Tenant, nil, len(v)) != nil {
				stale = append(stale, k)
				return nil
			}
			if rec.Progress == nil {
				rec.Progress = map[string]progressMark{}
			}
			rec.size = len(v)
			s.account(rec.Report.Tenant, rec.size, 1)
			s.agents[key] = &rec
			if string(k) != key {
				stale = append(stale, k)
				rekey[key] = v
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		for k, v := range rekey {
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
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
// The dashboard's static files carry no data and are served to anyone;
// the APIs it polls need an operator token when tokens are on.
func (s *reportStore) routes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+report.Path, s.handleReport)
	mux.HandleFunc("GET /api/v1/rollout", s.guard(false, "rollout", s.handleRollout))
	mux.HandleFunc("GET /api/v1/agents/{id}", s.guard(false, "agent view", s.handleAgent))
	dashboardRoutes(mux)
}

// tenantUse is what one tenant's records take.
type tenantUse struct {
	agents int
	bytes  int64
}

// account adds size bytes and n agents to a tenant's use. s.mu is held
// (or the store is not shared yet).
func (s *reportStore) account(tenant string, size, n int) {
	u := s.perTenant[tenant]
	if u == nil {
		u = &tenantUse{}
		s.perTenant[tenant] = u
	}
	u.agents += n
	u.bytes += int64(size)
	s.totalBytes += int64(size)
	if u.agents == 0 {
		delete(s.perTenant, tenant)
	}
}

// Refusals of the report bounds.
var (
	errTooManyAgents = errors.New("origin keeps no more agents; raise reports.max_agents or reports.max_agents_per_tenant")
	errReportsFull   = errors.New("origin keeps no more report data; raise reports.max_tenant_bytes or reports.max_bytes")
	errRecordTooBig  = errors.New("report is larger than reports.max_record_bytes once stored")
	errRateLimited   = errors.New("too many reports; slow down")
	errRecordBound   = errors.New("this agent id is bound to another site, address or token")
)

// admitLocked checks that a record of size bytes fits the budgets,
// replacing old (nil: a new agent).
func (s *reportStore) admitLocked(tenant string, old *agentRecord, size int) error {
	u := s.perTenant[tenant]
	if u == nil {
		u = &tenantUse{}
	}
	oldSize := 0
	if old != nil {
		oldSize = old.size
	} else if len(s.agents) >= s.cfg.MaxAgents || u.agents >= s.cfg.MaxAgentsPerTenant {
		return errTooManyAgents
	}
	grow := int64(size - oldSize)
	if grow > 0 && (u.bytes+grow > s.cfg.MaxTenantBytes || s.totalBytes+grow > s.cfg.MaxBytes) {
		return errReportsFull
	}
	return nil
}

// codeFor maps an ingest refusal to its HTTP status.
func codeFor(err error) int {
	switch {
	case errors.Is(err, errRateLimited):
		return http.StatusTooManyRequests
	case errors.Is(err, errRecordTooBig):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, errRecordBound):
		return http.StatusForbidden
	case errors.Is(err, errReportsFull):
		return http.StatusInsufficientStorage
	}
	return http.StatusServiceUnavailable
}

// addrAllowed applies the per-address rate.
func (s *reportStore) addrAllowed(addr string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.addrLim[addr]
	if b == nil {
		if len(s.addrLim) >= maxAddrLimiters {
			// Forget the buckets that have refilled: they hold no state.
			full := max(4*time.Second, time.Duration(float64(time.Second)*s.addrBurst()/s.cfg.RatePerAddress))
			for a, ob := range s.addrLim {
				if now.Sub(ob.last) > full {
					delete(s.addrLim, a)
				}
			}
			if len(s.addrLim) >= maxAddrLimiters {
				clear(s.addrLim)
			}
		}
		b = &bucket{}
		s.addrLim[addr] = b
	}
	return b.allow(now, s.cfg.RatePerAddress, s.addrBurst())
}

func (s *reportStore) addrBurst() float64 { return max(50, 4*s.cfg.RatePerAddress) }

// compact trims what the origin keeps of a report's free text.
func compact(rep *report.Report) {
	t := func(p *string, n int) { *p = report.Trim(*p, n) }
	t(&rep.Name, storedNameLen)
	t(&rep.Catalog.URL, storedTextLen)
	t(&rep.Catalog.Error, storedTextLen)
	for i := range rep.Subscriptions {
		t(&rep.Subscriptions[i].Subscription, storedTextLen)
		t(&rep.Subscriptions[i].Reason, storedTextLen)
	}
	for i := range rep.Releases {
		t(&rep.Releases[i].LastError, storedTextLen)
		t(&rep.Releases[i].Reason, storedTextLen)
	}
}

func (s *reportStore) handleReport(w http.ResponseWriter, r *http.Request) {
	addr := r.RemoteAddr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		addr = h
	}
	if !s.addrAllowed(addr, s.now()) {
		s.rejected.Add(1)
		w.Header().Set("Retry-After", "1")
		http.Error(w, errRateLimited.Error(), http.StatusTooManyRequests)
		return
	}
	select {
	case s.decoding <- struct{}{}:
		defer func() { <-s.decoding }()
	case <-r.Context().Done():
		return
	}
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
		if ok, dropped := s.refusals.allow(time.Now()); ok {
			s.log.Warn("agent report refused", "agent", rep.AgentID, "site", rep.Site, "peer", r.RemoteAddr, "err", err, "unlogged_before", dropped)
		}
		http.Error(w, "token required: "+err.Error(), code)
		return
	}
	if err := s.ingestFrom(rep, addr); err != nil {
		s.rejected.Add(1)
		if ok, dropped := s.refusals.allow(time.Now()); ok {
			s.log.Warn("agent report refused", "agent", rep.AgentID, "tenant", rep.Tenant, "site", rep.Site, "peer", r.RemoteAddr, "err", err, "unlogged_before", dropped)
		}
		http.Error(w, err.Error(), codeFor(err))
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
	c, err := o.authenticate(r, false)
	if err == nil {
		err = agentClaims(c, rep.Tenant, rep.Site, rep.Region)
	}
	if err == nil && c.Agent != "" && c.Agent != rep.AgentID {
		err = fmt.Errorf("token is for agent %q, not %q", c.Agent, rep.AgentID)
	}
	if err != nil {
		return statusFor(err), err
	}
	return 0, nil
}

// ingest stores a validated report from inside the process.
func (s *reportStore) ingest(rep *report.Report) error { return s.ingestFrom(rep, "") }

// ingestFrom stores a validated report received from addr ("" from
// inside the process), within the rate and size bounds. A refused report
// changes nothing.
func (s *reportStore) ingestFrom(rep *report.Report, addr string) error {
	compact(rep)
	now := s.now()
	key := recordKey(rep.Tenant, rep.AgentID)
	s.mu.Lock()
	old := s.agents[key]
	if old != nil && now.Sub(old.Received) > s.cfg.Forget {
		s.dropLocked(key)
		old = nil
	}
	if old != nil {
		live := now.Sub(old.Received) <= time.Duration(s.cfg.StallIntervals)*s.interval(old)
		switch {
		case old.Report.Site != rep.Site:
			// A site moves only after its old record is forgotten.
			s.mu.Unlock()
			return fmt.Errorf("%w: agent %s reports for site %q", errRecordBound, rep.AgentID, old.Report.Site)
		case !s.tokens && addr != "" && old.Addr != "" && old.Addr != addr && live:
			s.mu.Unlock()
			return fmt.Errorf("%w: agent %s reports from another address", errRecordBound, rep.AgentID)
		case addr != "" && !old.lim.allow(now, identityRate, identityBurst):
			s.mu.Unlock()
			return errRateLimited
		}
	}
	rec := &agentRecord{FirstSeen: now, Progress: map[string]progressMark{}, Report: rep, Received: now, Addr: addr}
	if old != nil {
		rec.FirstSeen, rec.lim = old.FirstSeen, old.lim
		if addr == "" {
			rec.Addr = old.Addr
		}
	}
	// Progress marks: a release moves when its bytes grow or its state changes.
	for k, st := range agentReleases(rep) {
		m := progressMark{State: st.state, Completed: st.completed, Since: now}
		if old != nil {
			if om, ok := old.Progress[k]; ok && om.State == m.State && m.Completed <= om.Completed {
				m = om
			}
		}
		rec.Progress[k] = m
	}
	h := historyEntry{Time: now, Releases: make([]historyItem, 0, len(rep.Releases))}
	for _, r := range rep.Releases {
		h.Releases = append(h.Releases, historyItem{Release: r.Key(), State: r.State, Completed: r.Completed, Downloaded: r.Downloaded, Uploaded: r.Uploaded})
	}
	if old != nil {
		rec.History = append(rec.History, old.History[max(0, len(old.History)+1-s.cfg.History):]...)
	}
	rec.History = append(rec.History, h)
	blob, err := json.Marshal(rec)
	// Over its byte cap a record loses history, oldest first.
	for err == nil && len(blob) > s.cfg.MaxRecordBytes && len(rec.History) > 1 {
		rec.History = rec.History[len(rec.History)/2:]
		blob, err = json.Marshal(rec)
	}
	if err == nil && len(blob) > s.cfg.MaxRecordBytes {
		err = fmt.Errorf("%w (%d bytes, at most %d)", errRecordTooBig, len(blob), s.cfg.MaxRecordBytes)
	}
	if err == nil {
		err = s.admitLocked(rep.Tenant, old, len(blob))
	}
	if err != nil {
		s.mu.Unlock()
		return err
	}
	rec.size = len(blob)
	if old != nil {
		s.account(rep.Tenant, rec.size-old.size, 0)
	} else {
		s.account(rep.Tenant, rec.size, 1)
	}
	s.agents[key] = rec
	for k := range rec.Progress {
		if _, ok := s.firstSeen[k]; !ok {
			s.firstSeen[k] = now
		}
	}
	if now.Sub(s.lastSample) >= time.Second {
		s.sampleLocked(now, s.aggregateLocked(now, nil))
	}
	s.mu.Unlock()
	if s.db != nil {
		// Batch coalesces concurrent reports into one transaction.
		if err := s.db.Batch(func(tx *bolt.Tx) error {
			return tx.Bucket(reportsBucket).Put([]byte(key), blob)
		}); err != nil {
			s.log.Warn("cannot store agent report", "agent", rep.AgentID, "err", err)
		}
	}
	return nil
}

// dropLocked forgets a record in memory; s.mu is held.
func (s *reportStore) dropLocked(key string) {
	if rec := s.agents[key]; rec != nil {
		s.account(rec.Report.Tenant, -rec.size, -1)
		delete(s.agents, key)
	}
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
// figures; with a scope, only the agents of that tenant. s.mu is held.
func (s *reportStore) aggregateLocked(now time.Time, scope *string) *aggregate {
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

// Rollout computes the rollout view of the whole fleet now.
func (s *reportStore) Rollout() Rollout { return s.view(nil) }

// view computes the rollout view of the fleet (scope nil) or of one
// tenant's agents. A tenant's view leaves out what only the fleet has:
// the origin's egress, the time series and the fleet-wide alerts, and it
// changes no alert or sampling state.
func (s *reportStore) view(scope *string) Rollout {
	now := s.now()
	s.mu.Lock()
	a := s.aggregateLocked(now, scope)
	for _, key := range a.forget {
		s.dropLocked(key)
	}
	if scope == nil {
		s.sampleLocked(now, a)
	}
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
		stallMax = max(stallMax, time.Duration(s.cfg.StallIntervals)*s.interval(rec))
	}
	for key, ra := range a.rels {
		r := &ra.r
		if sr := s.series[key]; sr != nil && scope == nil {
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
	if m := len(a.missing); scope == nil && m > 0 && float64(m) >= s.cfg.ChurnRatio*float64(a.counts.Known) {
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
	if scope == nil && peak >= 2 && float64(a.counts.Seeding) < s.cfg.CapacityDrop*float64(peak) {
		fire(Alert{Kind: AlertUploadCapacity, Severity: "warning",
			Message: fmt.Sprintf("%d agents can seed, down from %d within the last hour", a.counts.Seeding, peak)})
	}
	if scope == nil {
		for key := range s.alertSince {
			if _, ok := firing[key]; !ok {
				delete(s.alertSince, key)
			}
		}
	}
	out.Alerts = []Alert{}
	for key, al := range firing {
		if scope == nil {
			s.alertSince[key] = al.Since
		}
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
	for _, key := range a.forget {
		if s.db != nil {
			s.db.Batch(func(tx *bolt.Tx) error { return tx.Bucket(reportsBucket).Delete([]byte(key)) })
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
	if scope == nil {
		out.Egress = s.egress()
	}
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

// handleRollout serves the rollout view, cut to the operator's tenant.
func (s *reportStore) handleRollout(w http.ResponseWriter, r *http.Request, tenant string) {
	if tenant == "" {
		writeJSON(w, s.Rollout())
		return
	}
	writeJSON(w, s.view(&tenant))
}

// handleAgent serves one agent's latest report and history; a fleet
// operator names the tenant with ?tenant= (default: no tenant), a
// tenant's operator sees only its own agents.
func (s *reportStore) handleAgent(w http.ResponseWriter, r *http.Request, tenant string) {
	if tenant == "" {
		tenant = r.URL.Query().Get("tenant")
	}
	key := recordKey(tenant, r.PathValue("id"))
	s.mu.Lock()
	rec := s.agents[key]
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
