// Package rollout keeps the agents' reports at the origin and shows the
// fleet's rollout from them: ingest (POST /api/v1/report), storage in
// bbolt, aggregation per release, time series, alerts, the JSON views,
// the dashboard and a Prometheus collector.
//
// State changes in two places only: ingest (a report arrives) and Tick,
// which the origin's loop runs to forget silent agents, sample the series
// and start or clear alerts. Views, GETs and scrapes only read, so how
// often they are polled changes nothing.
//
// The package does not import the origin: what it needs from it comes in
// as the functions of Origin.
package rollout

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/report"
	"github.com/swarmship/swarmship/internal/state"
)

// TickEvery is how often the origin should call Tick: the series' finest step.
const TickEvery = time.Second

// Origin is what the rollout takes from the origin role. Nil functions
// mean: no peers, no egress, every report admitted, views open to all,
// every refusal logged.
type Origin struct {
	// Peers lists the tracker's peers of a swarm.
	Peers func(infoHash [20]byte) []Peer
	// Egress is what the origin has sent so far.
	Egress func() Egress
	// Authorize checks a report's credentials against the identity it
	// claims; on refusal it returns the HTTP status (401 or 403).
	Authorize func(*http.Request, *report.Report) (int, error)
	// Operator guards a view: it calls h with the operator's tenant (""
	// for the whole fleet) or answers the request itself.
	Operator func(fleetOnly bool, what string, h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc
	// Tokens is true when reports are authenticated: identities come from
	// tokens, so a record is not bound to an address.
	Tokens bool
	// Plan reads name's signed rollout plan from the verified catalog (nil:
	// none); the view places the reporting agents in its waves.
	Plan func(ctx context.Context, name string) (*catalog.RolloutPlan, error)
	// LogRefusal bounds the log lines of refused reports: whether to log
	// this one and how many were left out before it.
	LogRefusal func() (bool, int)
	// Answer, if set, is the body of the answer to an accepted report
	// (the quarantine list the agent must apply); nil: 204 No Content.
	Answer func(*report.Report) *report.Answer
}

// Peer is one peer of a swarm as the tracker sees it.
type Peer struct {
	ID     [20]byte
	Left   int64 // bytes the peer still misses, by its last announce
	Origin bool  // the origin's own seeder
}

// Egress is what the origin has sent: web seed bytes over HTTP and payload
// bytes uploaded by its seeding client.
type Egress struct {
	WebSeed int64 `json:"webseed"`
	Peer    int64 `json:"peer"`
	Catalog int64 `json:"catalog"` // metadata, manifests and torrents
	// Relay is what the relay carried between relay-mode agents (payload
	// of peers, not of the origin: not in Total).
	Relay int64 `json:"relay"`
}

// Total is payload egress.
func (e Egress) Total() int64 { return e.WebSeed + e.Peer }

// Reports keeps the latest report and a short history per agent, and the
// state derived from them over time (series, capacity samples, alert start
// times).
type Reports struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	db     *bolt.DB // nil: memory only
	store  recordStore
	origin Origin
	plans  planCache

	decoding chan struct{} // bounds the reports decoded at once

	accepted, rejected atomic.Int64
	syncFailing        atomic.Bool

	// mu guards what follows. Views hold it for reading only.
	mu         sync.RWMutex
	agents     map[string]*agentRecord // by recordKey
	gen        uint64                  // writes into agents, for agentRecord.gen
	perTenant  map[string]*tenantUse
	totalBytes int64
	addrLim    map[string]*bucket
	series     map[string]*series   // by name@version
	firstSeen  map[string]time.Time // releases, by name@version
	capacity   []capSample
	alertSince map[string]time.Time // by alertKey
	contrib    *contribution        // the ledgers' latest fold (contrib.go)
}

// Open opens the report store in this origin's memory; with a cache dir
// the reports survive restarts in cacheDir/reports.db.
func Open(cfg Config, cacheDir string, origin Origin, log *slog.Logger) (*Reports, error) {
	s := newReports(cfg, origin, log)
	s.store = memStore{s}
	if cacheDir == "" {
		return s, nil
	}
	if err := s.openDB(cacheDir); err != nil {
		return nil, err
	}
	return s, nil
}

// OpenShared opens the report store on a Redis that several origins
// share: every origin stores the reports it receives there and shows the
// rollout of all of them. It reads what the Redis holds now; if the
// Redis does not answer, it starts empty and catches up on the next Tick.
func OpenShared(cfg Config, rdb *state.Redis, origin Origin, log *slog.Logger) (*Reports, error) {
	if rdb == nil {
		return nil, errors.New("reports: no shared state")
	}
	s := newReports(cfg, origin, log)
	rs := newRedisStore(s, rdb)
	s.store = rs
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	if err := rs.sync(ctx); err != nil {
		s.log.Warn("agent reports: shared state not read yet", "err", err)
	}
	return s, nil
}

func newReports(cfg Config, origin Origin, log *slog.Logger) *Reports {
	cfg.setDefaults()
	if log == nil {
		log = slog.Default()
	}
	return &Reports{
		cfg: cfg, log: log, now: time.Now, origin: origin,
		decoding: make(chan struct{}, maxDecoding), perTenant: map[string]*tenantUse{}, addrLim: map[string]*bucket{},
		agents: map[string]*agentRecord{}, series: map[string]*series{},
		firstSeen: map[string]time.Time{}, alertSince: map[string]time.Time{},
	}
}

// Close closes reports.db; a shared Redis stays open (it is the origin's).
func (s *Reports) Close() error {
	if s == nil || s.store == nil {
		return nil
	}
	return s.store.close()
}

// Routes registers the report API and the dashboard.
// The dashboard's static files carry no data and are served to anyone;
// the APIs it polls need an operator token when tokens are on.
func (s *Reports) Routes(mux *http.ServeMux) {
	guard := s.origin.Operator
	if guard == nil {
		guard = func(_ bool, _ string, h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { h(w, r, "") }
		}
	}
	mux.HandleFunc("POST "+report.Path, s.handleReport)
	mux.HandleFunc("GET /api/v1/rollout", guard(false, "rollout", s.handleRollout))
	mux.HandleFunc("GET /api/v1/agents/{id}", guard(false, "agent view", s.handleAgent))
	mux.HandleFunc("GET /api/v1/peers", guard(false, "peer contribution", s.handlePeers))
	dashboardRoutes(mux)
}

// Tick advances the state that time alone changes: agents silent for
// longer than forget are dropped (from memory and reports.db), the
// releases' series and the upload capacity are sampled, and alerts start
// (their since is set) or clear. The origin's loop calls it every
// TickEvery.
func (s *Reports) Tick(now time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	s.noteSync(s.store.sync(ctx))
	s.mu.Lock()
	a := s.aggregateLocked(now, nil)
	for _, key := range a.forget {
		s.dropLocked(key)
	}
	s.sampleLocked(now, a)
	s.refreshContributionLocked(now)
	alerts := s.viewLocked(now, nil, a, false).Alerts // since: kept or now
	clear(s.alertSince)
	for _, al := range alerts {
		s.alertSince[alertKey(al)] = al.Since
	}
	s.mu.Unlock()
	if len(a.forget) > 0 {
		s.store.forget(ctx, a.forget, now.Add(-s.cfg.Forget))
	}
}

// noteSync logs when reading the shared records starts or stops failing;
// while it fails the views show the last records read.
func (s *Reports) noteSync(err error) {
	was := s.syncFailing.Swap(err != nil)
	switch {
	case err != nil && !was:
		s.log.Warn("agent reports: cannot read the shared state; the rollout view shows the last records read", "err", err)
	case err == nil && was:
		s.log.Info("agent reports: shared state readable again")
	}
}
