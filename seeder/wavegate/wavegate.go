// Package wavegate runs the health gate of rollout waves: it reads what
// the agents reported to the origin (GET /api/v1/rollout), and signs into
// the catalog's rollout plan the next wave's opening after the soak, or a
// halt when too many agents failed.
//
// It signs, so it runs where the catalog's targets key is (`swarmship
// rollout watch`, beside the operator's tools), not in the origin, which
// holds no signing key by design (docs/security.md). If it is not running,
// no wave opens: the rollout waits, it never widens unchecked.
package wavegate

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/policy"
)

// Counts returns what the reports say about name@version.
type Counts func(ctx context.Context, name, version string) (policy.GateCounts, error)

// Gate signs the wave changes of one release's plan.
type Gate struct {
	Store  catalog.Store
	Keys   catalog.Keys
	Counts Counts
	Now    func() time.Time
	Log    *slog.Logger
}

// Step looks once at name's plan and signs what the gate decides. It
// returns the action taken (GateWait when nothing changed).
func (g *Gate) Step(ctx context.Context, name string) (policy.GateAction, error) {
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	log := g.Log
	if log == nil {
		log = slog.Default()
	}
	repo, err := catalog.OpenRepo(ctx, g.Store, g.Keys, catalog.DefaultExpiry)
	if err != nil {
		return policy.GateWait, err
	}
	plan, err := repo.RolloutPlan(ctx, name)
	if err != nil || plan == nil {
		return policy.GateWait, err
	}
	if plan.State != catalog.RolloutRunning {
		return policy.GateWait, nil
	}
	c, err := g.Counts(ctx, plan.Name, plan.Version)
	if err != nil {
		return policy.GateWait, fmt.Errorf("read reports: %w", err)
	}
	raw := c.Failed
	c.Failed = max(0, c.Failed-plan.Accepted)
	act, why := policy.NextGate(policy.WaveState{State: plan.State, Opened: plan.Opened, Since: plan.Since}, len(plan.Waves), time.Duration(plan.Soak), plan.MaxFailures, c, now())
	if act == policy.GateWait {
		return act, nil
	}
	if act == policy.GateOpen {
		if hold, why := frozen(repo, plan.Name, plan.Version, now()); hold {
			log.Info("rollout gate", "release", name, "plan", plan.ID, "action", "wait", "why", why)
			return policy.GateWait, nil
		}
	}
	id, opened := plan.ID, plan.Opened
	_, err = catalog.ChangeRolloutPlan(ctx, g.Store, g.Keys, catalog.UpdateOptions{Now: now, Logger: log}, name, func(p *catalog.RolloutPlan) error {
		// Another writer (an operator's pause) may have come first: act
		// only on the state the decision was made from.
		if p.ID != id || p.Opened != opened || p.State != catalog.RolloutRunning {
			return errStale
		}
		switch act {
		case policy.GateHalt:
			p.State, p.Reason, p.Accepted = catalog.RolloutHalted, "gate: "+why, raw
		case policy.GateOpen:
			p.Opened++
			p.Since = now().UTC()
		case policy.GateDone:
			p.State = catalog.RolloutDone
		}
		return nil
	})
	if err == errStale {
		return policy.GateWait, nil
	}
	if err != nil {
		return policy.GateWait, err
	}
	log.Info("rollout gate", "release", name, "plan", id, "action", actionName(act), "waves_open", opened, "why", why)
	return act, nil
}

var errStale = fmt.Errorf("rollout plan changed meanwhile")

func actionName(a policy.GateAction) string {
	switch a {
	case policy.GateOpen:
		return "open next wave"
	case policy.GateHalt:
		return "halt"
	case policy.GateDone:
		return "done"
	}
	return "wait"
}

// Run steps every interval until ctx ends or the plan is no longer
// running (halted, paused, aborted, done); errors are logged and retried.
func (g *Gate) Run(ctx context.Context, name string, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		act, err := g.Step(ctx, name)
		if err != nil {
			if g.Log != nil {
				g.Log.Warn("rollout gate", "release", name, "err", err)
			}
		}
		if act == policy.GateHalt || act == policy.GateDone {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// OriginCounts reads the counts from an origin's rollout view with an
// operator token (empty: an origin without tokens).
func OriginCounts(client *http.Client, originURL, token string) Counts {
	return func(ctx context.Context, name, version string) (policy.GateCounts, error) {
		var view struct {
			Releases []struct {
				Name    string         `json:"name"`
				Version string         `json:"version"`
				States  map[string]int `json:"states"`
			} `json:"releases"`
		}
		if err := getView(ctx, client, originURL, token, &view); err != nil {
			return policy.GateCounts{}, err
		}
		for _, r := range view.Releases {
			if r.Name == name && r.Version == version {
				return policy.GateCounts{Active: r.States["active"], Failed: r.States["failed"]}, nil
			}
		}
		return policy.GateCounts{}, nil
	}
}

// WaveRow is one wave of a plan as the origin's reports see it.
type WaveRow = policy.WaveTally

// FleetByWave places the agents the origin lists (GET /api/v1/rollout,
// agent_list: bounded by the origin) in the plan's waves by the same hash
// the agents use. Reports carry no labels, so label waves show only
// what the hash puts elsewhere: their agents appear in a later wave.
func FleetByWave(ctx context.Context, client *http.Client, originURL, token string, plan *catalog.RolloutPlan) ([]WaveRow, error) {
	waves, err := policy.ParseWaveList(plan.Waves)
	if err != nil {
		return nil, err
	}
	var view struct {
		AgentList []struct {
			AgentID  string   `json:"agent_id"`
			Name     string   `json:"name"`
			Site     string   `json:"site"`
			Releases []string `json:"releases"`
		} `json:"agent_list"`
	}
	if err := getView(ctx, client, originURL, token, &view); err != nil {
		return nil, err
	}
	ref := plan.Name + "@" + plan.Version + " "
	agents := make([]policy.WaveAgent, 0, len(view.AgentList))
	for _, a := range view.AgentList {
		wa := policy.WaveAgent{WaveMember: policy.WaveMember{ID: a.AgentID, Site: a.Site}, Name: a.Name}
		for _, r := range a.Releases {
			if st, ok := strings.CutPrefix(r, ref); ok {
				wa.State = st
			}
		}
		agents = append(agents, wa)
	}
	return policy.TallyWaves(plan.ID, waves, agents), nil
}

func getView(ctx context.Context, client *http.Client, originURL, token string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(originURL, "/")+"/api/v1/rollout", nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("origin answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v); err != nil {
		return fmt.Errorf("rollout view: %w", err)
	}
	return nil
}
