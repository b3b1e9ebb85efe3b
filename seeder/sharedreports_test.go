package seeder_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/report"
	"github.com/swarmship/swarmship/internal/state"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/seeder"
	"github.com/swarmship/swarmship/seeder/rollout"
)

// Two origins with one state.redis show one rollout: a report posted to
// the first is in the second's view within a few ticks.
func TestOriginsShareReportsOnRedis(t *testing.T) {
	rs := testenv.StartRedis(t)
	cfg := seeder.Config{State: state.Config{Redis: &state.RedisConfig{URL: rs.URL, Prefix: "origins", Timeout: 10 * time.Second}}}
	first, _, _ := newOriginWith(t, cfg, nil)
	second, _, _ := newOriginWith(t, cfg, nil)
	rep := report.Report{V: report.Version, AgentID: "a1", Name: "host-a1", Site: "store-1", Region: "eu", IntervalSeconds: 1, Sent: time.Now(),
		Subscriptions: []report.Subscription{{Subscription: "app (channel stable)", Name: "app", Target: "1.0"}}}
	body, _ := json.Marshal(rep)
	req, _ := http.NewRequest("POST", first.URL+report.Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if resp, msg := do(t, req); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("report to the first origin: %s %s", resp.Status, msg)
	}
	testenv.Eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		resp, msg := get(t, "GET", second.URL+"/api/v1/rollout", nil)
		var ro rollout.View
		if err := json.Unmarshal([]byte(msg), &ro); err != nil || resp.StatusCode != 200 {
			return fmt.Errorf("rollout at the second origin: %s %v", resp.Status, err)
		}
		if ro.Agents.Known != 1 {
			return fmt.Errorf("the second origin knows %d agents", ro.Agents.Known)
		}
		return nil
	})
}

// An origin whose Redis does not answer does not start, and says which
// setting to look at.
func TestOriginRefusesAnUnreachableRedis(t *testing.T) {
	dir := t.TempDir()
	store, _, root := newTestCatalog(t, dir)
	client, err := catalog.NewClient(store, root, filepath.Join(dir, "tuf"))
	if err != nil {
		t.Fatal(err)
	}
	seed := false
	// Nothing listens on port 1 (a free port could be taken by a Redis
	// another package's test starts at the same time).
	cfg := seeder.Config{Seed: &seed, State: state.Config{Redis: &state.RedisConfig{URL: "redis://127.0.0.1:1/0", Timeout: time.Second}}}
	o, err := seeder.New(cfg, store, client, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		o.Close()
		t.Fatal("origin started without its Redis")
	}
	if !strings.Contains(err.Error(), "redis") {
		t.Errorf("error %q does not name Redis", err)
	}
}
