package wavegate

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/policy"
)

func TestStatesMatchPolicy(t *testing.T) {
	for c, p := range map[string]string{
		catalog.RolloutRunning: policy.RolloutRunning, catalog.RolloutPaused: policy.RolloutPaused,
		catalog.RolloutHalted: policy.RolloutHalted, catalog.RolloutAborted: policy.RolloutAborted,
		catalog.RolloutDone: policy.RolloutDone,
	} {
		if c != p {
			t.Errorf("catalog %q, policy %q", c, p)
		}
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestGateSteps walks a plan through the gate with a fake clock and fake
// counts: nothing opens during the soak, waves open one per soak, a
// failure share over the limit halts, and a halted plan stays halted.
func TestGateSteps(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "cat"), 0o755); err != nil {
		t.Fatal(err)
	}
	store, err := catalog.NewDirStore(filepath.Join(dir, "cat"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := catalog.GenerateKeys(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Init(ctx, store, keys, catalog.DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	payload := filepath.Join(dir, "app.bin")
	if err := os.WriteFile(payload, []byte("version two"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := publish.Publish(ctx, store, keys, publish.PublishOptions{Name: "app", Version: "v2", Paths: []string{payload}, WebSeedURL: "http://127.0.0.1:1/"}); err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Now().UTC()}
	plan := &catalog.RolloutPlan{ID: "p1", Name: "app", Version: "v2", Waves: []string{"10%", "50%", "100%"},
		Soak: catalog.Duration(time.Minute), MaxFailures: 0.1, Started: clock.now(),
		State: catalog.RolloutRunning, Opened: 1, Since: clock.now(), Changed: clock.now()}
	if _, err := catalog.Update(ctx, store, keys, catalog.UpdateOptions{}, func(r *catalog.Repo) error { return r.SetRolloutPlan(ctx, plan) }); err != nil {
		t.Fatal(err)
	}
	var counts policy.GateCounts
	g := &Gate{Store: store, Keys: keys, Now: clock.now,
		Counts: func(context.Context, string, string) (policy.GateCounts, error) { return counts, nil }}
	read := func() *catalog.RolloutPlan {
		r, err := catalog.OpenRepo(ctx, store, keys, catalog.DefaultExpiry)
		if err != nil {
			t.Fatal(err)
		}
		p, err := r.RolloutPlan(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	step := func(want policy.GateAction, opened int, state string) {
		t.Helper()
		act, err := g.Step(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		p := read()
		if act != want || p.Opened != opened || p.State != state {
			t.Fatalf("action %v, plan %d open %s (%s); want %v, %d, %s", act, p.Opened, p.State, p.Reason, want, opened, state)
		}
	}
	counts = policy.GateCounts{Active: 2}
	step(policy.GateWait, 1, catalog.RolloutRunning)
	clock.add(59 * time.Second)
	step(policy.GateWait, 1, catalog.RolloutRunning)
	clock.add(time.Second)
	step(policy.GateOpen, 2, catalog.RolloutRunning)
	step(policy.GateWait, 2, catalog.RolloutRunning) // the new wave soaks
	counts = policy.GateCounts{Active: 9, Failed: 2}
	step(policy.GateHalt, 2, catalog.RolloutHalted)
	counts = policy.GateCounts{Active: 100}
	clock.add(time.Hour)
	step(policy.GateWait, 2, catalog.RolloutHalted)
	if p := read(); p.Reason == "" || p.Accepted != 2 {
		t.Errorf("halt: reason %q, accepted %d", p.Reason, p.Accepted)
	}
	// An operator resumes: the two failures are accepted; two more halt.
	if _, err := catalog.ChangeRolloutPlan(ctx, store, keys, catalog.UpdateOptions{}, "app", func(p *catalog.RolloutPlan) error {
		p.State, p.Since = catalog.RolloutRunning, clock.now()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	counts = policy.GateCounts{Active: 9, Failed: 2}
	step(policy.GateWait, 2, catalog.RolloutRunning)
	counts = policy.GateCounts{Active: 9, Failed: 4}
	step(policy.GateHalt, 2, catalog.RolloutHalted)
}
