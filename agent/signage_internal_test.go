package agent

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/policy"
)

// TestSignageScheduleRefreshRefuseRestart: the agent takes the signed
// schedule at a refresh, refuses a bad one whole (the one in force
// stays, the refusal in status) and has it again after a restart without
// reading the catalog.
func TestSignageScheduleRefreshRefuseRestart(t *testing.T) {
	f := newFleetFixture(t)
	good := `{"timezone":"America/New_York","entries":[{"screens":["lobby","door"],"content":"show:signage","playlist":"index.m3u8","when":"daily 00:00-24:00"}]}`
	put := func(doc string) {
		if err := catalog.PublishPlaylist(t.Context(), f.store, f.keys, catalog.UpdateOptions{}, "store", []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	put(good)
	cacheDir := filepath.Join(t.TempDir(), "a")
	start := func() *Agent {
		cfg := &Config{
			Catalog: CatalogConfig{URL: f.dir, Root: f.root}, CacheDir: cacheDir, Site: "s1",
			Mode: policy.ModeOriginOnly, Status: StatusConfig{Addr: "off"},
			Subscriptions: []Subscription{{Name: "show", Channel: "signage"}},
			Swarm:         SwarmConfig{ListenHost: "127.0.0.1"},
			Signage:       SignageConfig{Schedule: "store"},
		}
		if err := cfg.Finish(); err != nil {
			t.Fatal(err)
		}
		a, err := New(context.Background(), cfg, Options{Logger: slog.New(slog.DiscardHandler), Now: f.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		return a
	}
	a := start()
	if err := a.refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	st := a.Status().Signage
	if st == nil || st.Schedule != "store" || st.TimeZone != "America/New_York" || len(st.Screens) != 2 || st.Error != "" {
		t.Fatalf("after refresh: %+v", st)
	}
	// Not held: nothing on air, both screens at risk, with the reason.
	for _, s := range st.Screens {
		if s.AtRisk == nil || !strings.Contains(s.AtRisk.Reason, "show") {
			t.Errorf("%s: %+v", s.Screen, s.AtRisk)
		}
	}
	if rep := a.buildReport("id", "n"); len(rep.Screens) != 2 || !rep.Screens[0].AtRisk || rep.Validate() != nil {
		t.Errorf("report screens %+v (%v)", rep.Screens, rep.Validate())
	}

	put(`{"entries":[{"screens":["lobby"],"content":"show","playlist":"index.m3u8","when":"daily 00:00-24:00"}]}`)
	if err := a.refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	st = a.Status().Signage
	if !strings.Contains(st.Error, "refused") || len(st.Screens) != 2 {
		t.Fatalf("bad schedule: %+v", st)
	}
	a.Close()

	b := start() // no refresh: the last good schedule from the state directory
	if st := b.Status().Signage; st == nil || st.Schedule != "store" || len(st.Screens) != 2 || st.TimeZone != "America/New_York" {
		t.Fatalf("after restart: %+v", st)
	}
}
