package rollout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmship/swarmship/internal/report"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestStore(t *testing.T, cacheDir string, origin Origin) (*Reports, *fakeClock) {
	t.Helper()
	s, err := Open(Config{}, cacheDir, origin, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	clock := &fakeClock{t: time.Now().Truncate(time.Second)}
	s.now = clock.Now
	return s, clock
}

const ih = "0123456789abcdef0123456789abcdef01234567"

// mkReport is an agent subscribed to app, targeting version target, with
// the given release records.
func mkReport(id, site, region, target string, rels ...report.Release) *report.Report {
	r := &report.Report{
		V: report.Version, AgentID: id, Name: "host-" + id, Site: site, Region: region,
		IntervalSeconds: 1, Sent: time.Now(),
		Policy:        report.Policy{Mode: "on", Profile: "nights", UploadAllowed: true},
		Subscriptions: []report.Subscription{{Subscription: "app (channel stable)", Name: "app", Target: target}},
		Releases:      rels,
	}
	for _, rel := range rels {
		if rel.Version == target && rel.State == "active" {
			r.Subscriptions[0].Active, r.Subscriptions[0].Ready = target, true
		}
	}
	return r
}

func rel(version, state string, completed int64, b report.Bytes) report.Release {
	return report.Release{Name: "app", Version: version, InfoHash: ih, State: state, Size: 1000, Completed: completed, Downloaded: b}
}

func post(t *testing.T, h http.Handler, body []byte, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("POST", report.Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func mux(s *Reports) *http.ServeMux {
	m := http.NewServeMux()
	s.Routes(m)
	return m
}

func TestReportValidation(t *testing.T) {
	s, _ := newTestStore(t, "", Origin{})
	h := mux(s)
	good := mkReport("a1", "store-1", "eu", "1.0", rel("1.0", "active", 1000, report.Bytes{Peer: 1000}))
	if rec := post(t, h, mustJSON(good), nil); rec.Code != http.StatusNoContent {
		t.Fatalf("good report: %d %s", rec.Code, rec.Body)
	}
	edit := func(f func(r *report.Report)) []byte {
		r := *mkReport("a1", "store-1", "eu", "1.0", rel("1.0", "active", 1000, report.Bytes{}))
		f(&r)
		return mustJSON(&r)
	}
	huge := append([]byte(`{"v":1,"agent_id":"a1","name":"`), bytes.Repeat([]byte("x"), report.MaxBody)...)
	huge = append(huge, `"}`...)
	cases := []struct {
		name string
		body []byte
		hdr  map[string]string
		code int
	}{
		{"unknown field", []byte(`{"v":1,"agent_id":"a1","interval_seconds":1,"extra":true}`), nil, 400},
		{"trailing data", append(mustJSON(good), []byte(` {}`)...), nil, 400},
		{"not json", []byte(`hello`), nil, 400},
		{"too large", huge, nil, 413},
		{"content type", mustJSON(good), map[string]string{"Content-Type": "text/plain"}, 415},
		{"version", edit(func(r *report.Report) { r.V = 2 }), nil, 400},
		{"agent id", edit(func(r *report.Report) { r.AgentID = "../etc" }), nil, 400},
		{"empty agent id", edit(func(r *report.Report) { r.AgentID = "" }), nil, 400},
		{"site", edit(func(r *report.Report) { r.Site = "a b" }), nil, 400},
		{"interval", edit(func(r *report.Report) { r.IntervalSeconds = 0 }), nil, 400},
		{"state", edit(func(r *report.Report) { r.Releases[0].State = "done" }), nil, 400},
		{"completed > size", edit(func(r *report.Report) { r.Releases[0].Completed = 2000 }), nil, 400},
		{"negative bytes", edit(func(r *report.Report) { r.Releases[0].Downloaded.Peer = -1 }), nil, 400},
		{"reused > size", edit(func(r *report.Report) { r.Releases[0].Reused = 1001 }), nil, 400},
		{"negative reused", edit(func(r *report.Report) { r.Releases[0].Reused = -1 }), nil, 400},
		{"infohash", edit(func(r *report.Report) { r.Releases[0].InfoHash = "zz" }), nil, 400},
		{"duplicate release", edit(func(r *report.Report) { r.Releases = append(r.Releases, r.Releases[0]) }), nil, 400},
		{"control chars", edit(func(r *report.Report) { r.Releases[0].LastError = "a\x1b[31mred" }), nil, 400},
		{"long error", edit(func(r *report.Report) { r.Releases[0].LastError = strings.Repeat("e", report.MaxText+1) }), nil, 400},
	}
	for _, c := range cases {
		if rec := post(t, h, c.body, c.hdr); rec.Code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, rec.Code, strings.TrimSpace(rec.Body.String()), c.code)
		}
	}
	if n := s.rejected.Load(); n != int64(len(cases)) {
		t.Errorf("rejected counter %d, want %d", n, len(cases))
	}
	req := httptest.NewRequest("GET", report.Path, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET %s: %d, want 405", report.Path, rec.Code)
	}
	if got := report.Trim("a\x00b\xffc"+strings.Repeat("é", 10), 9); got != "a b?céé" || len(got) > 9 {
		t.Errorf("Trim: %q", got)
	}
}

func findRelease(t *testing.T, ro View, key string) Release {
	t.Helper()
	for _, r := range ro.Releases {
		if r.Release == key {
			return r
		}
	}
	t.Fatalf("rollout lacks %s: %+v", key, ro.Releases)
	return Release{}
}

func hasAlert(ro View, kind string) bool {
	for _, a := range ro.Alerts {
		if a.Kind == kind {
			return true
		}
	}
	return false
}

func TestRolloutAggregatesStallsAndETA(t *testing.T) {
	s, clock := newTestStore(t, "", Origin{})
	// a1 has 1.0 active and keeps 0.9 for rollback; a2 is half way; a3 has
	// not read the catalog's target yet.
	s.ingest(mkReport("a1", "store-1", "eu", "1.0", rel("0.9", "verified", 1000, report.Bytes{Origin: 1000}), rel("1.0", "active", 1000, report.Bytes{Peer: 600, Origin: 400})))
	a2 := mkReport("a2", "store-1", "eu", "1.0", rel("1.0", "downloading", 500, report.Bytes{Peer: 500}))
	a2.Releases[0].Reused = 300 // delta release: bytes it held
	s.ingest(a2)
	a3 := mkReport("a3", "store-2", "us", "1.0")
	a3.Catalog.Error = "catalog unreachable"
	s.ingest(a3)
	s.Tick(clock.Now()) // the origin's loop samples the series

	ro := s.View()
	r := findRelease(t, ro, "app@1.0")
	if r.Subscribed != 3 || r.Active != 1 || r.Verified != 1 || r.Percent != 33.3 || r.Status != "in_progress" {
		t.Errorf("app@1.0: subscribed %d active %d verified %d percent %v status %s", r.Subscribed, r.Active, r.Verified, r.Percent, r.Status)
	}
	if r.States["active"] != 1 || r.States["downloading"] != 1 || r.States["pending"] != 1 || r.States["failed"] != 0 {
		t.Errorf("states %v", r.States)
	}
	if r.Bytes != (report.Bytes{Peer: 1100, Origin: 400}) || r.OriginCopies != 0.4 {
		t.Errorf("bytes %+v copies %v", r.Bytes, r.OriginCopies)
	}
	if len(r.Sites) != 2 || r.Sites[0] != (Breakdown{Name: "store-1", Subscribed: 2, Verified: 1, Active: 1, Bytes: report.Bytes{Peer: 1100, Origin: 400}}) {
		t.Errorf("sites %+v", r.Sites)
	}
	if len(r.Regions) != 2 || r.Regions[1].Name != "us" || r.Regions[1].Subscribed != 1 {
		t.Errorf("regions %+v", r.Regions)
	}
	if r.Reused != 300 {
		t.Errorf("reused %d, want 300", r.Reused)
	}
	if r.Remaining != 500+1000 {
		t.Errorf("remaining %d", r.Remaining)
	}
	if len(r.Stalled) != 1 || r.Stalled[0].AgentID != "a3" || r.Stalled[0].Why != "error" || r.Stalled[0].LastError != "catalog unreachable" {
		t.Errorf("stalled %+v", r.Stalled)
	}
	old := findRelease(t, ro, "app@0.9")
	if old.Subscribed != 0 || old.Cached != 1 || old.Status != "cached" {
		t.Errorf("app@0.9: %+v", old)
	}
	if ro.Agents != (AgentCounts{Known: 3, Live: 3, Seeding: 1}) {
		t.Errorf("agents %+v", ro.Agents)
	}

	// a2 progresses: a rate and an ETA.
	for i := range 5 {
		clock.Add(time.Second)
		s.ingest(mkReport("a2", "store-1", "eu", "1.0", rel("1.0", "downloading", int64(600+50*i), report.Bytes{Peer: int64(600 + 50*i)})))
		s.ingest(a3)
		s.Tick(clock.Now())
	}
	r = findRelease(t, s.View(), "app@1.0")
	if r.Rate <= 0 || r.ETASeconds == nil || *r.ETASeconds <= 0 || len(r.Series) < 5 {
		t.Errorf("rate %v eta %v series %d", r.Rate, r.ETASeconds, len(r.Series))
	}
	if hasAlert(s.View(), AlertStalledRollout) {
		t.Error("stalled alert while a2 progresses")
	}

	// Nothing moves for 4 intervals: a2 is stalled, so is the rollout.
	for range 6 {
		clock.Add(time.Second)
		s.ingest(mkReport("a2", "store-1", "eu", "1.0", rel("1.0", "downloading", 800, report.Bytes{Peer: 800})))
		s.ingest(a3)
		s.ingest(mkReport("a1", "store-1", "eu", "1.0", rel("1.0", "active", 1000, report.Bytes{Peer: 600, Origin: 400})))
	}
	ro = s.View()
	r = findRelease(t, ro, "app@1.0")
	if r.Status != "stalled" || !hasAlert(ro, AlertStalledRollout) || r.ETASeconds != nil {
		t.Errorf("status %s eta %v alerts %+v", r.Status, r.ETASeconds, ro.Alerts)
	}
	if len(r.Stalled) != 2 || r.Stalled[0].AgentID != "a2" || !strings.HasPrefix(r.Stalled[0].Why, "no progress for") {
		t.Errorf("stalled %+v", r.Stalled)
	}

	// Done: everyone active, alert cleared.
	clock.Add(time.Second)
	s.ingest(mkReport("a2", "store-1", "eu", "1.0", rel("1.0", "active", 1000, report.Bytes{Peer: 1000})))
	s.ingest(mkReport("a3", "store-2", "us", "1.0", rel("1.0", "active", 1000, report.Bytes{Peer: 1000})))
	ro = s.View()
	r = findRelease(t, ro, "app@1.0")
	if r.Status != "complete" || r.Progress != 1 || r.Percent != 100 || len(r.Stalled) != 0 || len(ro.Alerts) != 0 || *r.ETASeconds != 0 {
		t.Errorf("complete: %s %v %v stalled %+v alerts %+v", r.Status, r.Progress, r.Percent, r.Stalled, ro.Alerts)
	}
}

func TestAlertsChurnCapacityOriginShare(t *testing.T) {
	s, clock := newTestStore(t, "", Origin{})
	for i := range 5 {
		s.ingest(mkReport(fmt.Sprint("a", i), "store-1", "eu", "1.0", rel("1.0", "active", 1000, report.Bytes{Origin: 200, Peer: 800})))
	}
	s.Tick(clock.Now()) // capacity sample: 5 agents can seed
	ro := s.View()
	if len(ro.Alerts) != 0 {
		t.Fatalf("alerts on a healthy fleet: %+v", ro.Alerts)
	}
	// Two agents stop reporting: churn (40% >= 20%), capacity 3/5 is fine.
	for range 6 {
		clock.Add(time.Second)
		for i := range 3 {
			s.ingest(mkReport(fmt.Sprint("a", i), "store-1", "eu", "1.0", rel("1.0", "active", 1000, report.Bytes{Origin: 200, Peer: 800})))
		}
	}
	ro = s.View()
	if !hasAlert(ro, AlertChurn) || hasAlert(ro, AlertUploadCapacity) || ro.Agents.Missing != 2 || ro.Agents.Live != 3 {
		t.Errorf("after 2 of 5 left: agents %+v alerts %+v", ro.Agents, ro.Alerts)
	}
	r := findRelease(t, ro, "app@1.0")
	if r.Subscribed != 5 || len(r.Stalled) != 0 {
		// Missing agents that had the release active are not stalled on it.
		t.Errorf("subscribed %d stalled %+v", r.Subscribed, r.Stalled)
	}
	// One more leaves: seeding agents 2 < 50% of the peak 5.
	for range 6 {
		clock.Add(time.Second)
		for i := range 2 {
			s.ingest(mkReport(fmt.Sprint("a", i), "store-1", "eu", "1.0", rel("1.0", "active", 1000, report.Bytes{Origin: 200, Peer: 800})))
		}
	}
	if ro = s.View(); !hasAlert(ro, AlertUploadCapacity) {
		t.Errorf("no capacity alert: %+v", ro.Alerts)
	}
	// Agents whose policy forbids uploads (metered, download-only) are no capacity.
	s3, _ := newTestStore(t, "", Origin{})
	noUp := mkReport("m1", "store-1", "eu", "1.0", rel("1.0", "active", 1000, report.Bytes{Peer: 1000}))
	noUp.Policy = report.Policy{Mode: "download-only"}
	s3.ingest(noUp)
	if ro := s3.View(); ro.Agents.Seeding != 0 || ro.AgentList[0].Policy.Mode != "download-only" {
		t.Errorf("download-only agent: %+v %+v", ro.Agents, ro.AgentList)
	}
	// Churn is about recent departures: after the window it clears.
	clock.Add(20 * time.Minute)
	for i := range 2 {
		s.ingest(mkReport(fmt.Sprint("a", i), "store-1", "eu", "1.0", rel("1.0", "active", 1000, report.Bytes{Origin: 200, Peer: 800})))
	}
	if ro = s.View(); hasAlert(ro, AlertChurn) {
		t.Errorf("churn alert 20 minutes later: %+v", ro.Alerts)
	}

	// Origin share: 4 agents each fetched half of it from the origin: 2 copies.
	s2, _ := newTestStore(t, "", Origin{})
	for i := range 4 {
		s2.ingest(mkReport(fmt.Sprint("b", i), "store-1", "eu", "2.0", rel("2.0", "active", 1000, report.Bytes{Origin: 500, Peer: 500})))
	}
	ro = s2.View()
	if !hasAlert(ro, AlertOriginShare) || findRelease(t, ro, "app@2.0").OriginCopies != 2 {
		t.Errorf("origin share: %+v", ro.Alerts)
	}

	// The metrics mirror the view.
	reg := prometheus.NewRegistry()
	reg.MustRegister(s2.Collector())
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	for k, want := range map[string]float64{
		"swarmship_rollout_agents,release=app@2.0,state=active":      4,
		"swarmship_rollout_agents,release=app@2.0,state=downloading": 0,
		"swarmship_rollout_progress_ratio,release=app@2.0":           1,
		"swarmship_alerts,kind=origin_share":                         1,
		"swarmship_alerts,kind=churn":                                0,
		"swarmship_rollout_reporting_agents,state=live":              4,
		"swarmship_origin_reports_total,result=accepted":             0, // ingest called directly
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}
}

func TestReportsPersistWithHistory(t *testing.T) {
	dir := t.TempDir()
	s, clock := newTestStore(t, dir, Origin{})
	for i := range 40 {
		clock.Add(time.Second)
		if err := s.ingest(mkReport("a1", "store-1", "eu", "1.0", rel("1.0", "downloading", int64(i*10), report.Bytes{Peer: int64(i * 10)}))); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.agents[recordKey("", "a1")].History); n != 32 {
		t.Errorf("history keeps %d reports, want 32", n)
	}
	s.Close()

	s2, _ := newTestStore(t, dir, Origin{})
	rec := s2.agents[recordKey("", "a1")]
	if rec == nil || len(rec.History) != 32 || rec.Report.Releases[0].Completed != 390 || rec.History[31].Releases[0].Completed != 390 {
		t.Fatalf("after reopening: %+v", rec)
	}
	srv := httptest.NewServer(mux(s2))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/agents/a1")
	if err != nil {
		t.Fatal(err)
	}
	var got agentRecord
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if resp.StatusCode != 200 || got.Report == nil || got.Report.AgentID != "a1" || len(got.History) != 32 {
		t.Errorf("GET /api/v1/agents/a1: %s %+v", resp.Status, got)
	}
	if resp, _ := http.Get(srv.URL + "/api/v1/agents/nope"); resp.StatusCode != 404 {
		t.Errorf("unknown agent: %s", resp.Status)
	}
}

func TestDashboardIsServedFromTheBinary(t *testing.T) {
	s, _ := newTestStore(t, "", Origin{})
	srv := httptest.NewServer(mux(s))
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(srv.URL + "/dashboard")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "dashboard/" {
		t.Errorf("/dashboard: %s Location %q", resp.Status, resp.Header.Get("Location"))
	}
	for path, ctype := range map[string]string{"/dashboard/": "text/html", "/dashboard/app.js": "text/javascript", "/dashboard/style.css": "text/css"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) || len(body) < 100 {
			t.Errorf("%s: %s %s %d bytes", path, resp.Status, resp.Header.Get("Content-Type"), len(body))
		}
		if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("%s: no CSP", path)
		}
		// Offline networks: nothing may come from elsewhere.
		for _, bad := range []string{"http://", "https://", "//cdn", "@import"} {
			if strings.Contains(strings.ReplaceAll(string(body), "http://www.w3.org/2000/svg", ""), bad) {
				t.Errorf("%s references %q", path, bad)
			}
		}
	}
	for _, path := range []string{"/dashboard/nope.js", "/dashboard/../origin.go", "/dashboard/x/app.js"} {
		if resp, _ := http.Get(srv.URL + path); resp.StatusCode != 404 {
			t.Errorf("%s: %s, want 404", path, resp.Status)
		}
	}
	resp, err = http.Get(srv.URL + "/api/v1/rollout")
	if err != nil {
		t.Fatal(err)
	}
	var ro View
	if err := json.NewDecoder(resp.Body).Decode(&ro); err != nil || ro.Releases == nil || ro.Alerts == nil {
		t.Errorf("empty rollout: %v %+v", err, ro)
	}
	resp.Body.Close()
}
