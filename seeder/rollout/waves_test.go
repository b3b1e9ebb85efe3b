package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/report"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/policy"
)

// wavesFixture is a view with a halted plan of app@2.0 and four agents
// on it (one canary site), plus an agent of a release whose plan does not
// read.
func wavesFixture(t *testing.T) (*Reports, *catalog.RolloutPlan, []*report.Report, *atomic.Int32) {
	t.Helper()
	plan := &catalog.RolloutPlan{ID: "p1", Name: "app", Version: "2.0", Channel: "stable",
		Waves: []string{"site:lab", "50%", "100%"}, Soak: catalog.Duration(30 * time.Minute), MaxFailures: 0.02,
		State: catalog.RolloutHalted, Reason: "2 of 3 agents failed (limit 2%)", Opened: 2, Since: time.Now()}
	var reads atomic.Int32
	s, _ := newTestStore(t, "", Origin{Plan: func(_ context.Context, name string) (*catalog.RolloutPlan, error) {
		reads.Add(1)
		switch name {
		case "app":
			return plan, nil
		case "broken":
			return nil, errors.New("catalog store away")
		}
		return nil, nil
	}})
	h := mux(s)
	reps := []*report.Report{
		mkReport("a1", "lab", "eu", "2.0", rel("2.0", "active", 1000, report.Bytes{})),
		mkReport("a2", "store", "eu", "2.0", rel("2.0", "failed", 0, report.Bytes{})),
		mkReport("a3", "store", "eu", "2.0", rel("2.0", "failed", 0, report.Bytes{})),
		mkReport("a4", "store", "eu", "2.0", rel("2.0", "downloading", 10, report.Bytes{})),
	}
	other := mkReport("b1", "store", "eu", "1.0", rel("1.0", "active", 1000, report.Bytes{}))
	other.Subscriptions[0].Name, other.Releases[0].Name = "broken", "broken"
	for _, r := range append(reps, other) {
		if rec := post(t, h, mustJSON(r), nil); rec.Code != http.StatusNoContent {
			t.Fatalf("report %s: %d %s", r.AgentID, rec.Code, rec.Body)
		}
	}
	return s, plan, reps, &reads
}

func TestRolloutViewWaves(t *testing.T) {
	s, plan, reps, reads := wavesFixture(t)
	h := mux(s)
	get := func() View {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/rollout", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("view: %d %s", rec.Code, rec.Body)
		}
		var v View
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	v := get()
	if len(v.Plans) != 2 {
		t.Fatalf("plans: %+v", v.Plans)
	}
	if v.Plans[0].Name != "app" || v.Plans[1].Name != "broken" || v.Plans[1].Error == "" {
		t.Fatalf("plans by name, the unreadable one with its error: %+v", v.Plans)
	}
	pv := v.Plans[0]
	if pv.State != "halted" || pv.Reason != plan.Reason || pv.Opened != 2 || len(pv.Waves) != 3 {
		t.Fatalf("plan view: %+v", pv)
	}
	if got := pv.Waves[0]; got.Wave != "site:lab" || !slices.Equal(got.Agents, []string{"lab/host-a1"}) || got.Active != 1 || got.Failed != 0 {
		t.Fatalf("canary wave: %+v", got)
	}
	// The other agents sit where the agents' own function puts them.
	waves, _ := policy.ParseWaveList(plan.Waves)
	failed, placed := 0, 0
	for _, r := range reps[1:] {
		w := policy.AgentWave(plan.ID, waves, policy.WaveMember{ID: r.AgentID, Site: r.Site})
		if !slices.Contains(pv.Waves[w].Agents, "store/"+r.Name) {
			t.Errorf("%s not in wave %d: %+v", r.AgentID, w+1, pv.Waves)
		}
	}
	for _, w := range pv.Waves[1:] {
		failed += w.Failed
		placed += len(w.Agents)
	}
	// b1 reports another release only, but is an agent of the fleet: the
	// hash places it too.
	if failed != 2 || placed != 4 {
		t.Fatalf("failed %d placed %d: %+v", failed, placed, pv.Waves)
	}
	// A second view within the TTL reuses the plans; the store is asked
	// once per name.
	get()
	if n := reads.Load(); n != 2 {
		t.Fatalf("plan reads: %d, want 2", n)
	}
}

func TestDashboardWavesInBrowser(t *testing.T) {
	chromium := testenv.RequireTool(t, "chromium")
	s, _, _, _ := wavesFixture(t)
	srv := httptest.NewServer(mux(s))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=5000", "--dump-dom", srv.URL+"/dashboard/")
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	dom := string(out)
	for _, want := range []string{`data-plan="app" data-plan-state="halted"`, "2 of 3 agents failed", `data-wave="1" data-failed="0"`,
		"lab/host-a1", `data-plan="broken" data-plan-state="error"`, "catalog store away"} {
		if !strings.Contains(dom, want) {
			t.Errorf("dashboard lacks %q:\n%.4000s", want, dom)
		}
	}
}
