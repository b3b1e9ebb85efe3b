package rollout

import "github.com/prometheus/client_golang/prometheus"

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
	descPeersFlagged = prometheus.NewDesc("swarmship_peers_flagged",
		"Peers the agents' contribution ledgers flag, by kind (freeloader, misbehaving).", []string{"kind"}, nil)
)

// Collector exports the rollout view and the report counters to
// Prometheus; a scrape reads the view and changes nothing.
func (s *Reports) Collector() prometheus.Collector { return rolloutCollector{s} }

type rolloutCollector struct{ s *Reports }

func (c rolloutCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRolloutAgents, descRolloutProgress, descAlerts, descReportAgents, descReportsRecv, descPeersFlagged} {
		ch <- d
	}
}

func (c rolloutCollector) Collect(ch chan<- prometheus.Metric) {
	ro := c.s.View()
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
	co := c.s.Contribution(nil)
	ch <- prometheus.MustNewConstMetric(descPeersFlagged, prometheus.GaugeValue, float64(co.Freeloaders), "freeloader")
	ch <- prometheus.MustNewConstMetric(descPeersFlagged, prometheus.GaugeValue, float64(co.Misbehaving), "misbehaving")
}
