package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/audit"
)

// Health check and rollback.
//
// hooks.health_check runs after post_activate. When it fails (non-zero
// exit, or its timeout) the agent switches current/<name> back to the
// version it replaced, runs post_activate for that one, and records the new
// version failed with HealthFailed: the report carries the failure to the
// origin, whose rollout gate counts it, and the wave gate keeps the
// version from being activated again until the operator raises the plan's
// retry (`swarmship rollout resume NAME --retry`) or publishes a new
// version.

// healthCheck runs hooks.health_check for m (nil error when none is set).
func (a *Agent) healthCheck(ctx context.Context, m *catalog.Manifest, previous string) error {
	hc := a.cfg.Hooks.HealthCheck
	if hc.Command == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", hc.Command)
	cmd.Env = append(os.Environ(),
		"SWARMSHIP_RELEASE="+m.Name,
		"SWARMSHIP_VERSION="+m.Version,
		"SWARMSHIP_PREVIOUS_VERSION="+previous,
		"SWARMSHIP_PATH="+a.cache.releaseDir(m.Name, m.Version),
		"SWARMSHIP_CURRENT="+a.cache.currentLink(m.Name),
		"SWARMSHIP_SITE="+a.cfg.Site,
	)
	// The hook may start children that keep the output pipe open: wait
	// at most a moment for them after the shell is gone.
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		const max = 300
		msg := strings.TrimSpace(string(out))
		if len(msg) > max {
			msg = msg[:max] + "…"
		}
		return fmt.Errorf("health check: %w: %s", err, msg)
	}
	return nil
}

// rollBack undoes the activation of rec after its health check failed:
// current/<name> goes back to previous, whose post_activate hook runs
// again (without one the link is removed), and rec is recorded failed.
func (a *Agent) rollBack(ctx context.Context, rec *ReleaseState, previous string, cause error) error {
	name, version := rec.Name, rec.Version
	rec.HealthFailed = true
	rec.HealthRetry = a.rolloutRetry(ctx, name, version)
	rec.LastError = cause.Error()
	if previous != "" {
		if err := a.cache.switchCurrent(name, previous); err != nil {
			return fmt.Errorf("roll back %s@%s to %s: %w (after %w)", name, version, previous, err, cause)
		}
		if prev, ok, _ := a.state.Get(name + "@" + previous); ok {
			a.setPhase(prev, PhaseActive, "")
			prev.Activated = time.Now()
			_ = a.saveRecord(prev) // logged
		}
	} else if err := os.Remove(a.cache.currentLink(name)); err != nil && !os.IsNotExist(err) {
		// A first install has nothing to go back to: current/<name> goes
		// away rather than point at a release that failed its check.
		return fmt.Errorf("remove current/%s after %w: %w", name, cause, err)
	}
	a.setPhase(rec, PhaseFailed, "")
	_ = a.saveRecord(rec) // logged; the link is back either way
	a.log.Error("health check failed: rolled back", "release", name, "version", version, "previous", previous, "err", cause)
	if l, err := audit.Open(a.cfg.AuditLog, 0, 0); err == nil {
		err = l.Append(audit.Event{Action: "rollback", Release: name, Version: previous,
			Tenant: a.cfg.Tenant, Site: a.cfg.Site, Details: map[string]string{"failed": version, "err": cause.Error()}})
		if err != nil {
			a.log.Error("audit log", "err", err)
		}
	}
	if previous != "" {
		if mb, err := os.ReadFile(a.cache.manifestPath(name, previous)); err == nil {
			if pm, err := catalog.ParseManifest(mb); err == nil {
				if err := a.runHook(ctx, pm, version); err != nil {
					a.log.Error("post-activate hook failed on rollback", "release", name, "version", previous, "err", err)
				}
			}
		}
	}
	return fmt.Errorf("%s@%s rolled back to %q: %w", name, version, previous, cause)
}

// finishHealthCheck runs the health check of the just activated rec and
// rolls back on failure; a pass clears HealthPending.
func (a *Agent) finishHealthCheck(ctx context.Context, m *catalog.Manifest, rec *ReleaseState, previous string) error {
	if err := a.healthCheck(ctx, m, previous); err != nil {
		if ctx.Err() != nil {
			return err // stopping: HealthPending stays, the next start checks again
		}
		return a.rollBack(ctx, rec, previous, err)
	}
	if rec.HealthPending {
		rec.HealthPending = false
		_ = a.saveRecord(rec) // logged; a restart would only check again
	}
	return nil
}

// previousActive is the newest other version of name that was active
// before (the rollback target after a restart, when the switch's own
// memory of it is gone).
func (a *Agent) previousActive(name, version string) string {
	recs, _ := a.state.All()
	best, bestAt := "", time.Time{}
	for _, r := range recs {
		if r.Name == name && r.Version != version && !r.Activated.IsZero() && !r.HealthFailed && r.Activated.After(bestAt) {
			best, bestAt = r.Version, r.Activated
		}
	}
	return best
}
