package wavegate

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/policy"
)

// TestNoWaveOpensDuringFreeze: a soaked wave does not open while a
// catalog freeze holds, opens once it ends, and an urgent release's wave
// opens through a freeze.
func TestNoWaveOpensDuringFreeze(t *testing.T) {
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
	update := func(fn func(r *catalog.Repo) error) {
		t.Helper()
		if _, err := catalog.Update(ctx, store, keys, catalog.UpdateOptions{}, fn); err != nil {
			t.Fatal(err)
		}
	}
	plan := &catalog.RolloutPlan{ID: "p1", Name: "app", Version: "v2", Waves: []string{"10%", "50%", "100%"},
		Soak: catalog.Duration(time.Minute), MaxFailures: 0.1, Started: clock.now(),
		State: catalog.RolloutRunning, Opened: 1, Since: clock.now(), Changed: clock.now()}
	update(func(r *catalog.Repo) error { return r.SetRolloutPlan(ctx, plan) })
	update(func(r *catalog.Repo) error {
		_, err := r.AddFreeze(ctx, catalog.Freeze{From: clock.now(), To: clock.now().Add(10 * time.Minute), Reason: "sales"})
		return err
	})
	g := &Gate{Store: store, Keys: keys, Now: clock.now,
		Counts: func(context.Context, string, string) (policy.GateCounts, error) {
			return policy.GateCounts{Active: 2}, nil
		}}
	step := func(want policy.GateAction) {
		t.Helper()
		if act, err := g.Step(ctx, "app"); err != nil || act != want {
			t.Fatalf("step = %v, %v; want %v", act, err, want)
		}
	}
	clock.add(2 * time.Minute) // soaked, but frozen
	step(policy.GateWait)
	clock.add(8 * time.Minute) // the freeze ends
	step(policy.GateOpen)

	update(func(r *catalog.Repo) error {
		_, err := r.AddFreeze(ctx, catalog.Freeze{From: clock.now(), To: clock.now().Add(time.Hour)})
		return err
	})
	clock.add(2 * time.Minute)
	step(policy.GateWait)
	update(func(r *catalog.Repo) error { return r.MarkUrgent("app", "v2") })
	step(policy.GateOpen)
}
