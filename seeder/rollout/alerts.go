package rollout

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Alert kinds, exported as swarmship_alerts{kind}.
const (
	AlertStalledRollout = "stalled_rollout"
	AlertOriginShare    = "origin_share"
	AlertChurn          = "churn"
	AlertUploadCapacity = "upload_capacity"
)

var alertKinds = []string{AlertStalledRollout, AlertOriginShare, AlertChurn, AlertUploadCapacity}

// alertKey names an alert across evaluations, for its start time.
func alertKey(al Alert) string { return al.Kind + "|" + al.Release }

// releaseAlerts are the alerts of one release's figures: stalled (no
// agent has moved for stalledFor) and origin share over budget.
func (s *Reports) releaseAlerts(r *Release, stalledFor time.Duration) []Alert {
	var out []Alert
	if r.Status == "stalled" {
		out = append(out, Alert{Kind: AlertStalledRollout, Severity: "critical", Release: r.Release,
			Message: fmt.Sprintf("%s: no progress on any agent for %s; %d of %d active", r.Release, roundDur(stalledFor), r.Active, r.Subscribed)})
	}
	if r.Subscribed > 0 && r.Size > 0 && r.OriginCopies > s.cfg.OriginBudget {
		out = append(out, Alert{Kind: AlertOriginShare, Severity: "warning", Release: r.Release,
			Message: fmt.Sprintf("%s: origin and web seed sent %.2f copies (budget %.2g)", r.Release, r.OriginCopies, s.cfg.OriginBudget)})
	}
	return out
}

// fleetAlertsLocked are the alerts only the whole fleet has: churn (agents that
// went missing recently) and a drop of upload capacity against the peak
// of the last hour's samples. s.mu is held (a read lock is enough).
func (s *Reports) fleetAlertsLocked(a *aggregate) []Alert {
	var out []Alert
	if m := len(a.missing); m > 0 && float64(m) >= s.cfg.ChurnRatio*float64(a.counts.Known) {
		names := make([]string, 0, 3)
		for _, rec := range a.missing[:min(m, 3)] {
			names = append(names, rec.Report.Name)
		}
		slices.Sort(names)
		out = append(out, Alert{Kind: AlertChurn, Severity: "warning",
			Message: fmt.Sprintf("%d of %d agents stopped reporting recently (%s)", m, a.counts.Known, strings.Join(names, ", "))})
	}
	peak := 0
	for _, c := range s.capacity {
		peak = max(peak, c.n)
	}
	if peak >= 2 && float64(a.counts.Seeding) < s.cfg.CapacityDrop*float64(peak) {
		out = append(out, Alert{Kind: AlertUploadCapacity, Severity: "warning",
			Message: fmt.Sprintf("%d agents can seed, down from %d within the last hour", a.counts.Seeding, peak)})
	}
	return out
}
