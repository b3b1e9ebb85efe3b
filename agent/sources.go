package agent

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/failover"
)

// Sources: the agent holds lists of catalog mirrors, tracker tiers and
// offload sources, each health-tracked (internal/failover) and shown in
// status. Any mirror is safe to use: TUF verifies the metadata and the
// signed hashes every target and piece.

// SourceStatus is one source's health as the status API shows it.
type SourceStatus struct {
	// Kind is catalog, tracker or offload.
	Kind string `json:"kind"`
	failover.Status
	// Why is the status in words ("in use", "timeout for 4s: …").
	Why string `json:"why"`
}

// openMirrors opens each location as a store (an unreachable one is opened
// again when it is next asked) and returns them as one failover store.
func openMirrors(ctx context.Context, urls []string, token string, transport http.RoundTripper, s3 catalog.S3Config, fo failover.Config, log *slog.Logger) (*catalog.Mirrors, error) {
	stores := make([]catalog.Store, 0, len(urls))
	for _, u := range urls {
		if strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") {
			// The token goes to this mirror's host only.
			client := &http.Client{Transport: newBearerTransport(token, u, transport)}
			s, err := catalog.NewHTTPStore(u, client)
			if err != nil {
				return nil, err
			}
			stores = append(stores, s)
			continue
		}
		s, err := catalog.OpenStore(ctx, u, s3)
		if err != nil {
			// An unreachable catalog must not stop the agent from serving
			// its cache: open it again when it is next asked.
			log.Warn("catalog location unreachable at start; will retry", "catalog", u, "err", err)
			s = &lazyStore{url: u, s3: s3}
		}
		stores = append(stores, s)
	}
	if len(stores) == 0 {
		return nil, errors.New("no catalog location configured")
	}
	return catalog.NewMirrors(stores, catalog.MirrorOptions{Timeout: fo.Timeout, Backoff: fo.Policy()}), nil
}

// trackerList is the agent's announce tiers with their health; the
// library announces to every tracker, and the swarm view, which needs one
// answer, asks them in BEP 12 order (see swarmWatcher.fetch).
type trackerList struct {
	urls   []string // index i of health
	health *failover.List
}

func newTrackerList(tiers [][]string, pol failover.Policy) *trackerList {
	if len(tiers) == 0 {
		return nil
	}
	var urls []string
	names := make([][]string, len(tiers))
	for i, t := range tiers {
		urls = append(urls, t...)
		for _, u := range t {
			// Status shows the URL without any password in it.
			if p, err := url.Parse(u); err == nil {
				u = p.Redacted()
			}
			names[i] = append(names[i], u)
		}
	}
	return &trackerList{urls: urls, health: failover.NewTiers(names, pol, nil)}
}

// failed records a tracker's failure, a timeout or an error.
func (l *trackerList) failed(i int, now time.Time, err error) {
	reason := failover.Error
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		reason = failover.Timeout
	}
	// Not the request's URL: it is long and carries the agent's identity.
	detail := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		detail = ue.Err.Error()
	}
	if len(detail) > 200 {
		detail = detail[:197] + "..."
	}
	l.health.Failed(i, now, reason, detail)
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// Sources returns the health of every catalog mirror, tracker and offload
// source, each list in preference order.
func (a *Agent) Sources() []SourceStatus {
	now := time.Now()
	var out []SourceStatus
	add := func(kind string, sts []failover.Status) {
		for _, st := range sts {
			out = append(out, SourceStatus{Kind: kind, Status: st, Why: st.Describe(now)})
		}
	}
	if m, ok := a.store.(*catalog.Mirrors); ok {
		add("catalog", m.Health().Statuses(now))
	}
	if a.trackers != nil {
		add("tracker", a.trackers.health.Statuses(now))
	}
	if m, ok := a.offloadSrc.(*catalog.Mirrors); ok && m != a.store {
		add("offload", m.Health().Statuses(now))
	}
	return out
}

var descSource = prometheus.NewDesc("swarmship_agent_source_healthy",
	"1 when a catalog mirror, tracker or offload source may be used now, 0 while it is skipped (back-off).",
	[]string{"kind", "source"}, nil)

// sourceCollector exports each source's health; its labels are bounded by
// the config's lists.
type sourceCollector struct{ a *Agent }

func (c sourceCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descSource }

func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.a.Sources() {
		v := 0.0
		if s.Healthy {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descSource, prometheus.GaugeValue, v, s.Kind, s.Name)
	}
}
