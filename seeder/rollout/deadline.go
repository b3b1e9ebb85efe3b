package rollout

import (
	"slices"
	"strings"
	"time"

	"github.com/swarmship/swarmship/internal/report"
	"github.com/swarmship/swarmship/policy"
)

// AtRiskItem is an agent that, at its current rate, will miss a release's
// deliver-by time (issue 18): listed before the deadline passes, so the
// operator can act (raise its profile, open a window, ship a disk).
type AtRiskItem struct {
	AgentID   string    `json:"agent_id"`
	Name      string    `json:"name"`
	Site      string    `json:"site,omitempty"`
	Region    string    `json:"region,omitempty"`
	Completed int64     `json:"completed"`
	Size      int64     `json:"size"`
	Rate      float64   `json:"rate_bytes_per_second"`
	DeliverBy time.Time `json:"deliver_by"`
	// ETA is when the bytes arrive at Rate; absent when the rate is 0.
	ETA *time.Time `json:"eta,omitempty"`
	// Why: "rate" (the origin's projection), "agent" (the agent's own,
	// which knows its download windows), "passed", or "stalled".
	Why    string `json:"why"`
	Reason string `json:"reason,omitempty"` // the agent's, e.g. what it does about it
}

// maxAtRiskShown bounds the list in the view like the stalled list.
const maxAtRiskShown = 100

// stalledDeadline is how close a deadline must be for a download with no
// measured rate to count as at risk: nothing moves, little time left.
const stalledDeadline = 24 * time.Hour

// atRisk returns the item for an agent's incomplete release with a
// deliver-by time that it will miss, or false.
func atRisk(rep *report.Report, id string, rel *report.Release, now time.Time) (AtRiskItem, bool) {
	if rel == nil || rel.DeliverBy.IsZero() || rel.Size <= 0 {
		return AtRiskItem{}, false
	}
	remaining := rel.Size - rel.Completed
	item := AtRiskItem{AgentID: id, Name: rep.Name, Site: rep.Site, Region: rep.Region, Completed: rel.Completed,
		Size: rel.Size, Rate: rel.Rate, DeliverBy: rel.DeliverBy, Reason: rel.Reason}
	if rel.Rate > 0 {
		eta := now.Add(time.Duration(float64(remaining) / rel.Rate * float64(time.Second))).UTC()
		item.ETA = &eta
	}
	switch {
	case remaining <= 0:
		return item, false
	case !now.Before(rel.DeliverBy):
		item.Why = "passed"
	case policy.WillMiss(remaining, rel.Rate, rel.DeliverBy, now, stalledDeadline):
		item.Why = "rate"
		if rel.Rate == 0 {
			item.Why = "stalled"
		}
	case rel.AtRisk:
		item.Why = "agent"
	default:
		return item, false
	}
	return item, true
}

// finishAtRisk sorts and bounds a release's at-risk list.
func finishAtRisk(r *Release) {
	if r.AtRisk == nil {
		r.AtRisk = []AtRiskItem{}
	}
	slices.SortFunc(r.AtRisk, func(x, y AtRiskItem) int { return strings.Compare(x.Site+x.Name, y.Site+y.Name) })
	r.AtRiskTotal = len(r.AtRisk)
	r.AtRisk = r.AtRisk[:min(len(r.AtRisk), maxAtRiskShown)]
}
