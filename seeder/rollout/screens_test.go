package rollout

import (
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/report"
)

// TestScreensAtRisk: the view lists the screens live agents report at
// risk, longest missed first, counts every screen, scopes a tenant's view
// to its agents and forgets a missing agent's screens.
func TestScreensAtRisk(t *testing.T) {
	s, clock := newTestStore(t, "", Origin{})
	now := clock.Now()
	a := mkReport("a", "store-1", "eu", "1.0")
	a.Tenant = "acme"
	a.Screens = []report.Screen{
		{Screen: "lobby", Playing: "loop@1/index.m3u8"},
		{Screen: "window", Playing: "loop@1/index.m3u8", AtRisk: true, Wanted: "promo@2 index.m3u8", Reason: "downloading", Since: now.Add(-time.Minute)},
	}
	b := mkReport("b", "store-2", "eu", "1.0")
	b.Tenant = "other"
	b.Screens = []report.Screen{{Screen: "door", AtRisk: true, Wanted: "promo@2 index.m3u8", Since: now.Add(-time.Hour)}}
	s.ingest(a)
	s.ingest(b)

	v := s.View()
	if v.Screens != 3 || v.ScreensAtRiskTotal != 2 || len(v.ScreensAtRisk) != 2 {
		t.Fatalf("screens %d, at risk %d: %+v", v.Screens, v.ScreensAtRiskTotal, v.ScreensAtRisk)
	}
	if first := v.ScreensAtRisk[0]; first.Screen != "door" || first.Site != "store-2" {
		t.Errorf("longest missed first: %+v", first)
	}
	if w := v.ScreensAtRisk[1]; w.Screen != "window" || w.Playing != "loop@1/index.m3u8" || w.Wanted != "promo@2 index.m3u8" || w.Reason != "downloading" {
		t.Errorf("window: %+v", w)
	}
	acme := "acme"
	if tv := s.view(&acme); tv.ScreensAtRiskTotal != 1 || tv.ScreensAtRisk[0].Screen != "window" {
		t.Errorf("tenant view: %+v", tv.ScreensAtRisk)
	}
	// An agent that stops reporting no longer counts: its screens are unknown.
	clock.Add(time.Hour)
	if v := s.View(); v.Screens != 0 || v.ScreensAtRiskTotal != 0 || v.ScreensAtRisk == nil {
		t.Errorf("after the agents went missing: %d screens, %+v", v.Screens, v.ScreensAtRisk)
	}
}
