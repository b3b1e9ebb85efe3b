package agent

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/report"
)

func TestReportEndpointAndConfig(t *testing.T) {
	for in, want := range map[string]string{
		"http://origin:7070":                      "http://origin:7070/api/v1/report",
		"http://origin:7070/":                     "http://origin:7070/api/v1/report",
		"https://o.example/swarm/":                "https://o.example/swarm/api/v1/report",
		"https://o.example/api/v1/report?x=1#f":   "https://o.example/api/v1/report",
		"http://origin:7070/prefix/api/v1/report": "http://origin:7070/prefix/api/v1/report",
	} {
		if got, err := reportEndpoint(in); err != nil || got != want {
			t.Errorf("reportEndpoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"origin:7070", "ftp://origin/", "/var/run", "http://"} {
		c := ReportConfig{URL: bad}
		c = c.withDefaults()
		if err := c.validate(); err == nil {
			t.Errorf("report.url %q accepted", bad)
		}
	}
	c := ReportConfig{URL: "http://o/"}
	c = c.withDefaults()
	if c.Interval != 30*time.Second || c.Timeout != 10*time.Second || c.validate() != nil {
		t.Errorf("defaults: %+v", c)
	}
	for _, bad := range []ReportConfig{
		{URL: "http://o/", URLs: []string{"http://p/"}},
		{URLs: []string{"http://o/", "origin:7070"}},
	} {
		if err := bad.withDefaults().validate(); err == nil {
			t.Errorf("report %+v accepted", bad)
		}
	}
	if err := (ReportConfig{URLs: []string{"http://o/", "http://p/"}}).withDefaults().validate(); err != nil {
		t.Errorf("two origins: %v", err)
	}
	c = ReportConfig{URL: "http://o/", Interval: time.Millisecond}
	c = c.withDefaults()
	if c.validate() == nil {
		t.Error("1ms interval accepted")
	}
}

// TestReporterSkipsBeatsWhileOriginFails: a failing origin gets no retry
// storm, and reports resume when it answers again.
func TestReporterSkipsBeatsWhileOriginFails(t *testing.T) {
	var calls, failing atomic.Int64
	failing.Store(1)
	var gotToken atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		gotToken.Store(r.Header.Get("Authorization"))
		if _, err := report.Decode(r.Body); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if failing.Load() == 1 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	a := &Agent{
		cfg:   &Config{Report: ReportConfig{URL: srv.URL, Interval: 50 * time.Millisecond, Timeout: time.Second}},
		log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		token: "tok",
	}
	build := func() *report.Report {
		return &report.Report{V: report.Version, AgentID: "a1", IntervalSeconds: 0.05, Subscriptions: []report.Subscription{}, Releases: []report.Release{}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	endpoint, _ := reportEndpoint(srv.URL)
	go func() { defer close(done); a.reportLoop(ctx, []string{endpoint}, build) }()

	time.Sleep(1500 * time.Millisecond)
	// Without backoff: ~30 calls. With 2, 4, 8, 8... intervals: about 5.
	if n := calls.Load(); n < 2 || n > 8 {
		t.Errorf("%d reports in 1.5s against a failing origin", n)
	}
	failing.Store(0)
	time.Sleep(1200 * time.Millisecond)
	cancel()
	<-done
	if a.reports.ok.Load() < 3 || a.reports.failed.Load() < 2 {
		t.Errorf("ok %d failed %d", a.reports.ok.Load(), a.reports.failed.Load())
	}
	if gotToken.Load() != "Bearer tok" {
		t.Errorf("Authorization %q", gotToken.Load())
	}
}

// TestReporterMovesToTheNextOrigin: with report.urls, an origin that died
// (connections refused) costs no beat: the same report goes to the next
// one at once, and later reports stay there.
func TestReporterMovesToTheNextOrigin(t *testing.T) {
	var calls atomic.Int64
	alive := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := report.Decode(r.Body); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		calls.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer alive.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	a := &Agent{
		cfg: &Config{Report: ReportConfig{URLs: []string{dead.URL, alive.URL}, Interval: 50 * time.Millisecond, Timeout: time.Second}},
		log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	build := func() *report.Report {
		return &report.Report{V: report.Version, AgentID: "a1", IntervalSeconds: 0.05, Subscriptions: []report.Subscription{}, Releases: []report.Release{}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var endpoints []string
	for _, base := range a.cfg.Report.bases() {
		e, _ := reportEndpoint(base)
		endpoints = append(endpoints, e)
	}
	go func() { defer close(done); a.reportLoop(ctx, endpoints, build) }()
	deadline := time.Now().Add(30 * time.Second)
	for calls.Load() < 5 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if calls.Load() < 5 {
		t.Fatalf("%d reports reached the live origin", calls.Load())
	}
	// Only the first beat met the dead origin; none was skipped.
	if f := a.reports.failed.Load(); f != 0 {
		t.Errorf("%d reports failed with a live origin listed", f)
	}
}
