package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmship/swarmship/internal/fielderr"
	"github.com/swarmship/swarmship/internal/report"
	"github.com/swarmship/swarmship/internal/selfupdate"
)

// ReportConfig makes the agent report its status to the origin, which
// aggregates the reports into the rollout dashboard.
type ReportConfig struct {
	// URL is the origin's base URL (http://origin:7070/); reports are
	// POSTed to <url>/api/v1/report. Empty: no reports.
	URL string `yaml:"url"`
	// URLs are several origins sharing their reports (state.redis),
	// instead of URL: a report goes to the one that answered last, and
	// to the next at once when it fails, so that an origin going away
	// does not silence the agent on the others' dashboards.
	URLs []string `yaml:"urls"`
	// Interval between reports; default 30s.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one report request; default 10s, at most Interval.
	Timeout time.Duration `yaml:"timeout"`
	// Name is how the dashboard names this agent; default the host name.
	Name string `yaml:"name"`
}

func (c ReportConfig) withDefaults() ReportConfig {
	if c.Interval == 0 {
		c.Interval = 30 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = min(10*time.Second, c.Interval)
	}
	return c
}

// bases returns the origins reports go to: URLs, or URL alone.
func (c ReportConfig) bases() []string {
	if len(c.URLs) > 0 {
		return c.URLs
	}
	if c.URL == "" {
		return nil
	}
	return []string{c.URL}
}

func (c ReportConfig) validate() error {
	if c.URL != "" && len(c.URLs) > 0 {
		return fielderr.New("urls", "set url or urls, not both")
	}
	if c.URL == "" && len(c.URLs) == 0 {
		return nil
	}
	if _, err := reportEndpoint(c.URL); c.URL != "" && err != nil {
		return fielderr.New("url", "%v", err)
	}
	if len(c.URLs) > 16 {
		return fielderr.New("urls", "at most 16 origins")
	}
	for i, u := range c.URLs {
		if _, err := reportEndpoint(u); err != nil {
			return fielderr.New(fmt.Sprintf("urls[%d]", i), "%v", err)
		}
	}
	if c.Interval < 100*time.Millisecond {
		return fielderr.New("interval", "must be at least 100ms")
	}
	if c.Timeout <= 0 {
		return fielderr.New("timeout", "must be positive")
	}
	if len(c.Name) > report.MaxNameLen {
		return fielderr.New("name", "is longer than %d bytes", report.MaxNameLen)
	}
	return nil
}

// reportEndpoint turns the origin's base URL into the report endpoint.
func reportEndpoint(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not an http(s) URL of the origin", base)
	}
	if !strings.HasSuffix(u.Path, report.Path) {
		u.Path = strings.TrimSuffix(u.Path, "/") + report.Path
	}
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

// reportCounters count report attempts for /metrics.
type reportCounters struct{ ok, failed atomic.Int64 }

var descReports = prometheus.NewDesc("swarmship_agent_reports_total", "Status reports sent to the origin, by result (ok, error).", []string{"result"}, nil)

type reportCollector struct{ a *Agent }

func (c reportCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descReports }

func (c reportCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descReports, prometheus.CounterValue, float64(c.a.reports.ok.Load()), "ok")
	ch <- prometheus.MustNewConstMetric(descReports, prometheus.CounterValue, float64(c.a.reports.failed.Load()), "error")
}

// startReporter starts reporting if report.url is set. The returned
// function waits until the reporter has stopped, which it does when ctx
// ends.
func (a *Agent) startReporter(ctx context.Context) (wait func()) {
	if len(a.cfg.Report.bases()) == 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.runReporter(ctx)
	}()
	return func() { <-done }
}

// runReporter POSTs a report every interval. A failed report is not
// retried: the next one carries the newer state anyway. After a failure it
// skips beats (2, 4, then 8 intervals) so that a fleet does not hammer an
// origin that is down, and every wait is jittered by ±10% so that agents
// started together drift apart.
func (a *Agent) runReporter(ctx context.Context) {
	var endpoints []string
	for _, base := range a.cfg.Report.bases() {
		endpoint, err := reportEndpoint(base)
		if err != nil {
			a.log.Error("reports disabled", "err", err)
			return
		}
		endpoints = append(endpoints, endpoint)
	}
	id := a.stableID()
	name := a.cfg.Report.Name
	if name == "" {
		name, _ = os.Hostname()
	}
	a.reportLoop(ctx, endpoints, func() *report.Report { return a.buildReport(id, name) })
}

// reportLoop sends a report every beat to endpoints[cur], the one that
// answered last; when it fails, the next ones are tried at once in order,
// and beats are skipped only when none answered.
func (a *Agent) reportLoop(ctx context.Context, endpoints []string, build func() *report.Report) {
	client := &http.Client{Timeout: a.cfg.Report.Timeout}
	if a.originHTTP != nil {
		client.Transport = a.originHTTP
	}
	every := a.cfg.Report.Interval
	t := time.NewTimer(time.Duration(mrand.Int64N(int64(min(every, 5*time.Second))) + 1))
	defer t.Stop()
	failures, cur := 0, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := every
		r := build()
		var err error
		for i := range endpoints {
			if i > 0 {
				cur = (cur + 1) % len(endpoints)
			}
			if err = a.sendReport(ctx, client, endpoints[cur], r); err == nil || ctx.Err() != nil {
				break
			}
		}
		endpoint := endpoints[cur]
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.reports.failed.Add(1)
			failures++
			if failures == 1 {
				a.log.Warn("report to origin failed; skipping beats until it answers", "url", endpoint, "err", err)
			} else {
				a.log.Debug("report to origin failed", "url", endpoint, "err", err, "failures", failures)
			}
			next = every << min(failures, 3)
		} else {
			a.reports.ok.Add(1)
			if failures > 0 {
				a.log.Info("reports to origin resumed", "url", endpoint, "failures", failures)
				failures = 0
			}
		}
		t.Reset(next + time.Duration(mrand.Int64N(int64(next/5)+1)) - next/10)
	}
}

// maxAnswer bounds the origin's answer to a report.
const maxAnswer = 256 << 10

// agentID is a random ID kept in the cache dir, so the agent keeps its
// identity on the dashboard across restarts (its peer ID changes). If the
// file cannot be written the peer ID stands in.
func (a *Agent) agentID() string {
	p := filepath.Join(a.cfg.CacheDir, "state", "agent-id")
	if b, err := os.ReadFile(p); err == nil {
		if id := strings.TrimSpace(string(b)); len(id) == 32 {
			if _, err := hex.DecodeString(id); err == nil {
				return id
			}
		}
	}
	var rnd [16]byte
	rand.Read(rnd[:])
	id := hex.EncodeToString(rnd[:])
	if err := writeFileAtomic(p, []byte(id+"\n")); err != nil {
		a.log.Warn("cannot store the agent ID; using the peer ID", "path", p, "err", err)
		return hex.EncodeToString(a.peerID[:])
	}
	return id
}

// buildReport turns the agent's status into a report within the limits
// the origin enforces.
func (a *Agent) buildReport(id, name string) *report.Report {
	st := a.Status()
	trim := func(s string) string { return report.Trim(s, report.MaxText) }
	short := func(s string) string { return report.Trim(s, report.MaxNameLen) }
	catURL := st.Catalog.URL
	if u, err := url.Parse(catURL); err == nil && u.User != nil {
		u.User = nil
		catURL = u.String()
	}
	r := &report.Report{
		V: report.Version, AgentID: id, PeerID: hex.EncodeToString(a.peerID[:]),
		Name: report.Trim(name, report.MaxNameLen),
		Site: st.Site, Region: st.Region, Tenant: st.Tenant,
		IntervalSeconds: a.cfg.Report.Interval.Seconds(),
		Sent:            time.Now().UTC(),
		Catalog:         report.Catalog{URL: trim(catURL), LastRefresh: st.Catalog.LastRefresh, Error: trim(st.Catalog.Error)},
		Policy: report.Policy{
			Mode: short(string(st.Policy.Mode)), Profile: short(st.Policy.Profile),
			DownLimit: short(st.Policy.DownLimit), UpLimit: short(st.Policy.UpLimit),
			UploadAllowed: st.Policy.Upload, Throttle: short(st.Policy.Throttle),
			CachedBytes: max(st.Policy.CachedBytes, 0), QuotaBytes: max(st.Policy.QuotaBytes, 0),
		},
		AgentVersion:  short(a.version),
		Subscriptions: []report.Subscription{},
		Releases:      []report.Release{},
	}
	fleetReport(&r.Policy, st.Policy.Fleet)
	if a.ledger != nil {
		r.Ledger = a.ledger.snapshot(upLimitBytes(a.up))
	}
	for _, s := range st.Subscriptions {
		if len(r.Subscriptions) == report.MaxSubs {
			break
		}
		r.Subscriptions = append(r.Subscriptions, report.Subscription{
			Subscription: trim(s.Subscription), Name: s.Name, Target: s.Target, Active: s.Active,
			Ready: s.Ready, Reason: trim(s.Reason),
		})
	}
	for _, rel := range st.Releases {
		if len(r.Releases) == report.MaxReleases {
			break
		}
		out := report.Release{
			Name: rel.Name, Version: rel.Version, InfoHash: rel.InfoHash, State: string(rel.Phase),
			Size: max(rel.Size, 0), Completed: min(max(rel.Completed, 0), max(rel.Size, 0)),
			Downloaded: report.Bytes{Peer: rel.Downloaded.Peer, Origin: rel.Downloaded.Origin, WebSeed: rel.Downloaded.WebSeed},
			Uploaded:   rel.Uploaded, Peers: rel.Peers, Reused: min(max(rel.Reused, 0), max(rel.Size, 0)),
			LastError: trim(rel.LastError), Reason: trim(rel.Reason),
		}
		if dl := rel.Deadline; dl != nil {
			out.DeliverBy, out.Rate, out.AtRisk = dl.DeliverBy, min(max(dl.Rate, 0), report.MaxRate), dl.AtRisk
		}
		r.Releases = append(r.Releases, out)
	}
	screensReport(r, st.Signage)
	if su := st.SelfUpdate; su != nil && su.Last != nil && su.Last.Result == selfupdate.RolledBack {
		r.SelfUpdate = trim(fmt.Sprintf("%s rolled back: %s", su.Last.Version, su.Last.Reason))
	}
	return r
}

func (a *Agent) sendReport(ctx context.Context, client *http.Client, endpoint string, r *report.Report) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("report not sent: %w", err)
	}
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if len(body) > report.MaxBody {
		return fmt.Errorf("report not sent: %d bytes, over the %d byte limit", len(body), report.MaxBody)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "swarmship-agent")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		// The answer carries the quarantine list (report.Answer).
		var ans report.Answer
		dec := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer))
		if err := dec.Decode(&ans); err != nil {
			return fmt.Errorf("origin's answer: %w", err)
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		if len(ans.Quarantine) > report.MaxQuarantine {
			ans.Quarantine = ans.Quarantine[:report.MaxQuarantine]
		}
		if a.ledger != nil {
			a.ledger.setQuarantine(ans.Quarantine)
		}
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("origin answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}
