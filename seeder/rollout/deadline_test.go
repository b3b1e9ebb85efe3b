package rollout

import (
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/report"
)

// TestRolloutFlagsSitesThatWillMissDeadline: with a fake clock, the view
// lists the sites whose reported progress and rate cannot make the
// release's deliver-by time, before that time: too slow, stalled, or
// flagged by the agent itself (its windows); on-track and finished sites
// are not listed.
func TestRolloutFlagsSitesThatWillMissDeadline(t *testing.T) {
	s, clock := newTestStore(t, "", Origin{})
	now := clock.Now()
	deliver := now.Add(2 * time.Hour)
	dl := func(completed int64, rate float64, atRisk bool) report.Release {
		r := rel("1.0", "downloading", completed, report.Bytes{Peer: completed})
		r.Size, r.DeliverBy, r.Rate, r.AtRisk = 1e9, deliver, rate, atRisk
		return r
	}
	// fast: 500 MB left at 1 MB/s, ~8 min. slow: 900 MB at 10 kB/s, ~25 h.
	s.ingest(mkReport("fast", "store-fast", "eu", "1.0", dl(5e8, 1e6, false)))
	s.ingest(mkReport("slow", "store-slow", "eu", "1.0", dl(1e8, 1e4, false)))
	s.ingest(mkReport("stuck", "store-stuck", "eu", "1.0", dl(1e8, 0, false)))
	s.ingest(mkReport("windows", "store-windows", "eu", "1.0", dl(1e8, 1e6, true)))
	done := rel("1.0", "active", 1e9, report.Bytes{Peer: 1e9})
	done.Size, done.DeliverBy = 1e9, deliver
	s.ingest(mkReport("done", "store-done", "eu", "1.0", done))
	s.ingest(mkReport("nodeadline", "store-nd", "eu", "1.0", rel("1.0", "downloading", 1, report.Bytes{})))

	r := findRelease(t, s.View(), "app@1.0")
	got := map[string]string{}
	for _, it := range r.AtRisk {
		got[it.Site] = it.Why
		if !it.DeliverBy.Equal(deliver) {
			t.Errorf("%s: deliver_by %v", it.Site, it.DeliverBy)
		}
	}
	want := map[string]string{"store-slow": "rate", "store-stuck": "stalled", "store-windows": "agent"}
	if len(got) != len(want) || r.AtRiskTotal != len(want) {
		t.Fatalf("at risk %v (total %d), want %v", got, r.AtRiskTotal, want)
	}
	for site, why := range want {
		if got[site] != why {
			t.Errorf("%s: why %q, want %q", site, got[site], why)
		}
	}
	if r.AtRisk[0].Site != "store-slow" || r.AtRisk[0].ETA == nil || !r.AtRisk[0].ETA.After(deliver) {
		t.Errorf("first at-risk item %+v: want store-slow with an ETA after the deadline", r.AtRisk[0])
	}
}
