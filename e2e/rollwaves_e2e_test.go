package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/localswarm"
	"github.com/swarmship/swarmship/policy"
	"github.com/swarmship/swarmship/seeder/rollout"
	"github.com/swarmship/swarmship/seeder/wavegate"
)

const wavePlanID = "e2e-plan-1"

// waveAgentIDs picks agent IDs so that the plan's waves hold want[i]
// agents each (a real fleet gets its split from the hash; the test needs
// at least 3 agents in the first wave).
func waveAgentIDs(t *testing.T, waves []policy.Wave, want []int) [][]string {
	t.Helper()
	out := make([][]string, len(want))
	for i := 0; i < 100000; i++ {
		sum := sha256.Sum256([]byte(fmt.Sprint("agent", i)))
		id := hex.EncodeToString(sum[:16])
		w := policy.AgentWave(wavePlanID, waves, policy.WaveMember{ID: id})
		if len(out[w]) < want[w] {
			out[w] = append(out[w], id)
		}
		done := true
		for j := range want {
			done = done && len(out[j]) == want[j]
		}
		if done {
			return out
		}
	}
	t.Fatal("no agent IDs for the waves")
	return nil
}

type waveAgent struct {
	ra   *localswarm.RunningAgent
	wave int
	bad  bool // its health check fails on v2
}

// startWaveFleet starts agents on app@v1 (channel stable), sizes[i] of
// them in wave i of the plan wavePlanID; the first failing agents of
// wave 1 fail their health check on v2.
func startWaveFleet(t *testing.T, sw *localswarm.Swarm, waves []policy.Wave, sizes []int, failing int) []waveAgent {
	t.Helper()
	ids := waveAgentIDs(t, waves, sizes)
	var fleet []waveAgent
	for w, list := range ids {
		for _, id := range list {
			name := fmt.Sprintf("w%d-%s", w+1, id[:6])
			cfg := sw.AgentConfig(name, fmt.Sprintf("site-%d", len(fleet)%3), "eu", agent.Subscription{Name: "app", Channel: "stable"})
			bad := w == 0 && failing > 0
			if bad {
				failing--
				cfg.Hooks.HealthCheck.Command = `[ "$SWARMSHIP_VERSION" != v2 ]`
			} else {
				cfg.Hooks.HealthCheck.Command = `[ -d "$SWARMSHIP_PATH" ]`
			}
			cfg.Hooks.HealthCheck.Timeout = 30 * time.Second
			if err := os.MkdirAll(filepath.Join(cfg.CacheDir, "state"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(cfg.CacheDir, "state", "agent-id"), []byte(id+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			ra, err := sw.StartAgent(context.Background(), name, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := policy.AgentWave(wavePlanID, waves, ra.Agent.WaveMember()); got != w {
				t.Fatalf("%s: in wave %d, want %d", name, got+1, w+1)
			}
			fleet = append(fleet, waveAgent{ra: ra, wave: w, bad: bad})
		}
	}
	return fleet
}

func waveActive(ra *localswarm.RunningAgent) string {
	for _, s := range ra.Agent.Status().Subscriptions {
		if s.Name == "app" {
			return s.Active
		}
	}
	return ""
}

func waveRecord(ra *localswarm.RunningAgent, version string) (agent.ReleaseStatus, bool) {
	for _, r := range ra.Agent.Status().Releases {
		if r.Name == "app" && r.Version == version {
			return r, true
		}
	}
	return agent.ReleaseStatus{}, false
}

// startWavePlan signs the plan and moves stable to v2 in one change, as
// `swarmship rollout start` does.
func startWavePlan(t *testing.T, sw *localswarm.Swarm, waves []policy.Wave, soak time.Duration, maxFailures float64) {
	t.Helper()
	now := time.Now().UTC()
	plan := &catalog.RolloutPlan{ID: wavePlanID, Name: "app", Version: "v2", Channel: "stable", Waves: policy.WaveStrings(waves),
		Soak: catalog.Duration(soak), MaxFailures: maxFailures, Started: now,
		State: catalog.RolloutRunning, Opened: 1, Since: now, Changed: now}
	ctx := context.Background()
	_, err := catalog.Update(ctx, sw.Store, sw.Keys, catalog.UpdateOptions{}, func(r *catalog.Repo) error {
		if err := r.SetRolloutPlan(ctx, plan); err != nil {
			return err
		}
		return r.Promote("app", "v2", "stable")
	})
	if err != nil {
		t.Fatal(err)
	}
}

func readWavePlan(t *testing.T, sw *localswarm.Swarm) *catalog.RolloutPlan {
	t.Helper()
	repo, err := sw.Repo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p, err := repo.RolloutPlan(context.Background(), "app")
	if err != nil || p == nil {
		t.Fatalf("plan: %v %v", p, err)
	}
	return p
}

// runGate runs the wave gate against the origin's view until the test
// ends, recording when each wave opened (the signed Since).
func runWaveGate(t *testing.T, sw *localswarm.Swarm) func() map[int]time.Time {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	opened := map[int]time.Time{}
	g := &wavegate.Gate{Store: sw.Store, Keys: sw.Keys, Log: sw.Log,
		Counts: wavegate.OriginCounts(&http.Client{Timeout: 10 * time.Second}, sw.OriginURL, "")}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			act, err := g.Step(ctx, "app")
			if err == nil && act == policy.GateOpen {
				if repo, err := sw.Repo(ctx); err == nil {
					if p, err := repo.RolloutPlan(ctx, "app"); err == nil && p != nil {
						mu.Lock()
						opened[p.Opened-1] = p.Since
						mu.Unlock()
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func() map[int]time.Time {
		mu.Lock()
		defer mu.Unlock()
		out := map[int]time.Time{}
		for k, v := range opened {
			out[k] = v
		}
		return out
	}
}

func waveWaitFor(t *testing.T, what string, timeout time.Duration, cond func() bool, fleet ...waveAgent) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			for _, a := range fleet {
				st := a.ra.Agent.Status()
				t.Logf("%s wave %d bad=%v subs %+v", a.ra.Name, a.wave+1, a.bad, st.Subscriptions)
				for _, r := range st.Releases {
					t.Logf("   %s@%s %s reason=%q err=%q health_failed=%v", r.Name, r.Version, r.Phase, r.Reason, r.LastError, r.HealthFailed)
				}
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRolloutWavesOpenInOrder(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{Seed: true})
	waves, err := policy.ParseWaves("10%,50%,100%")
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int64{"app.bin": 48 << 10}
	publish(t, sw, "app", "v1", 1, sizes, "stable")
	fleet := startWaveFleet(t, sw, waves, []int{3, 7, 10}, 0)
	waveWaitFor(t, "all agents on v1", 120*time.Second, func() bool {
		for _, a := range fleet {
			if waveActive(a.ra) != "v1" {
				return false
			}
		}
		return true
	})
	publish(t, sw, "app", "v2", 2, sizes)
	soak := 2 * time.Second
	startWavePlan(t, sw, waves, soak, 0.02)
	opened := runWaveGate(t, sw)
	waveWaitFor(t, "all agents on v2", 180*time.Second, func() bool {
		for _, a := range fleet {
			if waveActive(a.ra) != "v2" {
				return false
			}
		}
		return true
	})
	p := readWavePlan(t, sw)
	opens := opened()
	opens[0] = p.Started
	for k := 1; k < len(waves); k++ {
		if opens[k].IsZero() {
			t.Fatalf("wave %d opened unseen: %v", k+1, opens)
		}
		if opens[k].Sub(opens[k-1]) < soak {
			t.Errorf("wave %d opened %s after wave %d, before its soak of %s", k+1, opens[k].Sub(opens[k-1]), k, soak)
		}
	}
	for _, a := range fleet {
		rec, ok := waveRecord(a.ra, "v2")
		if !ok {
			t.Fatalf("%s: no v2 record", a.ra.Name)
		}
		// The agent activates only after reading the signed open: same
		// clock, so its activation is never before the gate's stamp.
		if rec.Activated.Before(opens[a.wave]) {
			t.Errorf("%s (wave %d) activated at %s, before its wave opened at %s", a.ra.Name, a.wave+1, rec.Activated, opens[a.wave])
		}
	}
	t.Logf("plan %s: state %s, waves open %d; opens %v", p.ID, p.State, p.Opened, opens)
}

func TestRolloutHaltsOnHealthFailures(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{Seed: true})
	waves, err := policy.ParseWaves("10%,50%,100%")
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int64{"app.bin": 48 << 10}
	publish(t, sw, "app", "v1", 1, sizes, "stable")
	fleet := startWaveFleet(t, sw, waves, []int{4, 6, 10}, 3)
	waveWaitFor(t, "all agents on v1", 120*time.Second, func() bool {
		for _, a := range fleet {
			if waveActive(a.ra) != "v1" {
				return false
			}
		}
		return true
	})
	publish(t, sw, "app", "v2", 2, sizes)
	// A soak long enough that only the failures can end it; the gate
	// starts once the bad agents have tried (until then, with no gate
	// running, no wave opens: fail closed).
	startWavePlan(t, sw, waves, time.Hour, 0.02)
	waveWaitFor(t, "the failing agents to roll back", 60*time.Second, func() bool {
		for _, a := range fleet {
			if !a.bad {
				continue
			}
			rec, ok := waveRecord(a.ra, "v2")
			if !ok || !rec.HealthFailed || waveActive(a.ra) != "v1" {
				return false
			}
		}
		return true
	}, fleet...)
	runWaveGate(t, sw)
	waveWaitFor(t, "the rollout to halt", 60*time.Second, func() bool { return readWavePlan(t, sw).State == catalog.RolloutHalted })
	p := readWavePlan(t, sw)
	if p.Opened != 1 {
		t.Fatalf("waves open %d after the halt", p.Opened)
	}
	// Give the agents several refreshes to (wrongly) act on the halt.
	time.Sleep(4 * time.Second)
	for _, a := range fleet {
		v := waveActive(a.ra)
		switch {
		case a.bad && v != "v1":
			t.Errorf("%s: failing agent on %q, want rolled back to v1", a.ra.Name, v)
		case a.wave > 0 && v != "v1":
			t.Errorf("%s (wave %d): on %q after the halt, want v1", a.ra.Name, a.wave+1, v)
		}
		if a.wave > 0 {
			if rec, ok := waveRecord(a.ra, "v2"); ok && !rec.Activated.IsZero() {
				t.Errorf("%s (wave %d): activated v2 at %s", a.ra.Name, a.wave+1, rec.Activated)
			}
		}
	}
	cur, err := os.Readlink(filepath.Join(fleet[0].ra.Config.CacheDir, "current", "app"))
	if err != nil || filepath.Base(cur) != "v1" {
		t.Errorf("current link of a rolled-back agent: %q %v", cur, err)
	}
	waveWaitFor(t, "the failures on the origin's view by wave", 30*time.Second, func() bool {
		rows, err := wavegate.FleetByWave(context.Background(), http.DefaultClient, sw.OriginURL, "", p)
		if err != nil || len(rows) != 3 {
			return false
		}
		return rows[0].Failed == 3 && len(rows[1].Agents) == 6 && len(rows[2].Agents) == 10 && rows[1].Active == 0 && rows[2].Active == 0
	})
	// The origin's own view (the dashboard's) reads the signed plan.
	waveWaitFor(t, "the halted plan on the origin's dashboard view", 60*time.Second, func() bool {
		resp, err := http.Get(sw.OriginURL + "/api/v1/rollout")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var v rollout.View
		if json.NewDecoder(resp.Body).Decode(&v) != nil || len(v.Plans) != 1 {
			return false
		}
		pv := v.Plans[0]
		return pv.State == catalog.RolloutHalted && pv.Reason == p.Reason && len(pv.Waves) == 3 &&
			pv.Waves[0].Failed == 3 && len(pv.Waves[1].Agents) == 6 && len(pv.Waves[2].Agents) == 10
	})
	t.Logf("halted: %s", p.Reason)
}
