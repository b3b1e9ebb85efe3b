package rollout

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/swarmship/swarmship/internal/report"
)

// tickScenario leaves a store where time has made work for Tick: a0 has
// been silent for longer than forget, a1..a4 went missing (churn), and
// app@2.0's origin share (a5 and a6 took it whole from the origin) crossed the budget after the last Tick, so
// neither alert has started, and the series were last sampled 11 minutes
// ago.
func tickScenario(t *testing.T) (*Reports, *fakeClock, string) {
	t.Helper()
	dir := t.TempDir()
	s, clock := openTestStore(t, Config{Forget: time.Hour}, dir)
	activeHalfFromOrigin := func(id, version string) *report.Report {
		return mkReport(id, "store-1", "eu", version, rel(version, "active", 1000, report.Bytes{Origin: 500, Peer: 500}))
	}
	activeFromOrigin := func(id, version string) *report.Report {
		return mkReport(id, "store-1", "eu", version, rel(version, "active", 1000, report.Bytes{Origin: 1000}))
	}
	s.ingest(activeHalfFromOrigin("a0", "1.0"))
	clock.Add(50 * time.Minute)
	for i := 1; i <= 4; i++ {
		s.ingest(activeHalfFromOrigin(fmt.Sprint("a", i), "1.0"))
	}
	s.Tick(clock.Now()) // origin_share on app@1.0 starts now
	clock.Add(11 * time.Minute)
	s.ingest(activeFromOrigin("a5", "2.0"))
	s.ingest(activeFromOrigin("a6", "2.0"))
	return s, clock, dir
}

// stateOf is everything a Reports holds, as JSON, reports.db included.
func stateOf(t *testing.T, s *Reports) string {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	type seriesState struct {
		Step   time.Duration
		Last   time.Time
		Points []SeriesPoint
	}
	type capState struct {
		T time.Time
		N int
	}
	st := struct {
		Agents     map[string]json.RawMessage
		Sizes      map[string]int
		PerTenant  map[string]tenantUse
		TotalBytes int64
		Series     map[string]seriesState
		FirstSeen  map[string]time.Time
		Capacity   []capState
		AlertSince map[string]time.Time
		DB         map[string]string
		Accepted   int64
		Rejected   int64
	}{Agents: map[string]json.RawMessage{}, Sizes: map[string]int{}, PerTenant: map[string]tenantUse{}, Series: map[string]seriesState{},
		FirstSeen: s.firstSeen, AlertSince: s.alertSince, DB: map[string]string{}, TotalBytes: s.totalBytes,
		Accepted: s.accepted.Load(), Rejected: s.rejected.Load()}
	for k, rec := range s.agents {
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		st.Agents[k], st.Sizes[k] = b, rec.size
	}
	for k, u := range s.perTenant {
		st.PerTenant[k] = *u
	}
	for k, sr := range s.series {
		st.Series[k] = seriesState{sr.step, sr.last, sr.points}
	}
	for _, c := range s.capacity {
		st.Capacity = append(st.Capacity, capState{c.t, c.n})
	}
	if s.db != nil {
		err := s.db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(reportsBucket).ForEach(func(k, v []byte) error {
				st.DB[string(k)] = string(v)
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// GETs, scrapes and views only read: polled 100 times each, over a store
// where an agent is past forget, alerts are due to start and the series
// are due a sample (each of which a GET used to do), they change nothing.
// The view already shows what Tick will make of it.
func TestViewsChangeNothing(t *testing.T) {
	s, clock, _ := tickScenario(t)
	h := mux(s)
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	before := stateOf(t, s)
	tenant := ""
	for range 100 {
		clock.Add(time.Second)
		for _, path := range []string{"/api/v1/rollout", "/api/v1/agents/a0", "/api/v1/agents/a5", "/dashboard/"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s: %d", path, rec.Code)
			}
		}
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
		s.View()
		s.view(&tenant)
	}
	if after := stateOf(t, s); after != before {
		t.Errorf("100 GETs and scrapes changed the state:\nbefore %s\nafter %s", before, after)
	}
	ro := s.View()
	if ro.Agents.Known != 6 {
		t.Errorf("view counts %+v: want a1..a6, a0 (past forget) left out", ro.Agents)
	}
	if !hasAlert(ro, AlertChurn) || !hasAlert(ro, AlertOriginShare) {
		t.Errorf("alerts %+v: want churn and origin share", ro.Alerts)
	}
	for _, al := range ro.Alerts {
		if al.Kind == AlertChurn && !al.Since.Equal(clock.Now()) {
			t.Errorf("churn since %v: not started (no Tick yet), so since is now (%v)", al.Since, clock.Now())
		}
	}
	if r := findRelease(t, ro, "app@2.0"); len(r.Series) != 0 {
		t.Errorf("app@2.0 has %d series points before any Tick", len(r.Series))
	}
}

// Tick does what time changes: it drops the agent past forget (memory
// and reports.db), samples the series, starts the alerts that fire (their
// since stays the tick's time in later views) and clears those that stop.
func TestTickForgetsSamplesAndStartsAlerts(t *testing.T) {
	s, clock, dir := tickScenario(t)
	started := findAlert(s.View(), AlertOriginShare, "app@1.0").Since
	tick := clock.Now()
	s.Tick(tick)

	s.mu.RLock()
	_, kept := s.agents[recordKey("", "a0")]
	agents := len(s.agents)
	s.mu.RUnlock()
	if kept || agents != 6 {
		t.Errorf("after Tick: a0 kept %v, %d agents, want a0 forgotten and 6 left", kept, agents)
	}
	if containsKey(t, s, recordKey("", "a0")) {
		t.Errorf("a0 is still in reports.db after Tick")
	}

	clock.Add(time.Minute)
	ro := s.View()
	for _, c := range []struct {
		kind, release string
		since         time.Time
	}{
		{AlertOriginShare, "app@1.0", started}, // started by the scenario's first Tick
		{AlertOriginShare, "app@2.0", tick},
		{AlertChurn, "", tick},
	} {
		if al := findAlert(ro, c.kind, c.release); !al.Since.Equal(c.since) {
			t.Errorf("%s %s since %v, want %v", c.kind, c.release, al.Since, c.since)
		}
	}
	if r := findRelease(t, ro, "app@2.0"); len(r.Series) != 1 || r.Series[0].T != tick.UnixMilli() {
		t.Errorf("app@2.0 series %+v: want one point at the Tick", r.Series)
	}
	s.Tick(clock.Now())
	if r := findRelease(t, s.View(), "app@2.0"); len(r.Series) != 2 {
		t.Errorf("app@2.0 series %+v: want a second point from the second Tick", r.Series)
	}

	// Churn stops once the window has passed; the next Tick clears its start.
	clock.Add(time.Hour)
	for _, id := range []string{"a5", "a6"} {
		s.ingest(mkReport(id, "store-1", "eu", "2.0", rel("2.0", "active", 1000, report.Bytes{Origin: 1000})))
	}
	s.Tick(clock.Now())
	s.mu.RLock()
	_, churn := s.alertSince[AlertChurn+"|"]
	s.mu.RUnlock()
	if churn || hasAlert(s.View(), AlertChurn) {
		t.Error("churn alert kept after its window")
	}
	s.Close()
	reopened, _ := openTestStore(t, Config{Forget: time.Hour}, dir)
	if n := len(reopened.agents); n != 2 {
		t.Errorf("reports.db holds %d agents after the Ticks, want a5 and a6 (the others silent past forget)", n)
	}
}

func findAlert(ro View, kind, release string) Alert {
	for _, al := range ro.Alerts {
		if al.Kind == kind && al.Release == release {
			return al
		}
	}
	return Alert{}
}

func containsKey(t *testing.T, s *Reports, key string) bool {
	t.Helper()
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		found = tx.Bucket(reportsBucket).Get([]byte(key)) != nil
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// BenchmarkViewAndTick: 10,000 agents in 100 sites, each with one
// release. A view (GET, scrape) and a Tick each cost one aggregation.
func BenchmarkViewAndTick(b *testing.B) {
	s, err := Open(Config{}, "", Origin{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 10000 {
		r := mkReport(fmt.Sprint("a", i), fmt.Sprint("store-", i%100), "eu", "1.0", rel("1.0", "downloading", int64(i%1000), report.Bytes{Peer: int64(i % 1000)}))
		if err := s.ingest(r); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("view", func(b *testing.B) {
		for b.Loop() {
			s.View()
		}
	})
	b.Run("tick", func(b *testing.B) {
		for b.Loop() {
			s.Tick(time.Now())
		}
	})
}
