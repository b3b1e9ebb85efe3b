package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/policy"
)

// Activation gates.
//
// A verified release is activated only when every gate says yes; until
// then it stays verified (downloaded early) and the subscription shows
// why it waits. Gates run in order and the first "no" wins: freeze →
// wave open → activation window → activate → health check (issue 18).
// Other gates are added to activationGates.

// activationGate says whether rec may be activated at now, and if not why.
type activationGate func(ctx context.Context, rec *ReleaseState, now time.Time) (bool, string)

func (a *Agent) activationGates() []activationGate {
	return []activationGate{a.freezeGate, a.waveGate, a.windowGate} // windows.go: freeze, window
}

// mayActivate runs the gates in order.
func (a *Agent) mayActivate(ctx context.Context, rec *ReleaseState, now time.Time) (bool, string) {
	for _, g := range a.activationGates() {
		if ok, why := g(ctx, rec, now); !ok {
			return false, why
		}
	}
	return true, ""
}

// agentIDOnce reads or creates the agent ID once per process, so that the
// reporter and the wave gate never race to create it.
type agentIDOnce struct {
	once sync.Once
	id   string
}

func (a *Agent) stableID() string {
	a.ids.once.Do(func() { a.ids.id = a.agentID() })
	return a.ids.id
}

// WaveMember is how rollout plans see this agent.
func (a *Agent) WaveMember() policy.WaveMember {
	return policy.WaveMember{ID: a.stableID(), Site: a.cfg.Site, Labels: a.cfg.Labels}
}

// waveGate lets a version with a signed rollout plan activate only when
// the agent's wave is open in the plan. A version without a plan (or with
// a plan for another version) passes. The plan is a signed target: an
// origin or mirror cannot open a wave, only withhold the plan, which
// keeps the version waiting (fail closed).
//
// It also keeps a version whose health check failed from being retried
// until the operator raises the plan's retry (`rollout resume --retry`).
func (a *Agent) waveGate(ctx context.Context, rec *ReleaseState, _ time.Time) (bool, string) {
	plan, err := a.catalog.RolloutPlan(ctx, rec.Name)
	if err != nil {
		return false, "rollout plan unreadable: " + err.Error()
	}
	governs := plan != nil && plan.Version == rec.Version
	if rec.HealthFailed {
		if !governs || plan.Retry <= rec.HealthRetry {
			return false, "health check failed; not retried until `swarmship rollout resume --retry` or a new version"
		}
	}
	if !governs {
		return true, ""
	}
	waves, err := policy.ParseWaveList(plan.Waves)
	if err != nil {
		return false, "rollout plan refused: " + err.Error()
	}
	wave := policy.AgentWave(plan.ID, waves, a.WaveMember())
	if ok, why := policy.MayActivate(planState(plan), wave); !ok {
		if plan.Reason != "" {
			why += ": " + plan.Reason
		}
		return false, fmt.Sprintf("rollout %s wave %d (%s): %s", plan.ID, wave+1, plan.Waves[wave], why)
	}
	return true, ""
}

// planState is the plan's signed progress as policy reads it.
func planState(p *catalog.RolloutPlan) policy.WaveState {
	return policy.WaveState{State: p.State, Opened: p.Opened, Since: p.Since}
}

// gateActivation runs the gates before a switch; a "no" is recorded as the
// release's reason and returned as the subscription's.
func (a *Agent) gateActivation(ctx context.Context, rec *ReleaseState) error {
	ok, why := a.mayActivate(ctx, rec, a.now())
	if ok {
		return nil
	}
	if rec.Reason != why {
		rec.Reason = why
		_ = a.saveRecord(rec) // logged; retried next pass
	}
	return errors.New(why)
}

// rolloutRetry is the plan's retry value for name@version (0 without one):
// a health failure records it, and only a higher one retries.
func (a *Agent) rolloutRetry(ctx context.Context, name, version string) int {
	plan, err := a.catalog.RolloutPlan(ctx, name)
	if err != nil || plan == nil || plan.Version != version {
		return 0
	}
	return plan.Retry
}
