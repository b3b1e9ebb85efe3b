package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/release"
	"github.com/swarmship/swarmship/internal/report"
	"github.com/swarmship/swarmship/policy"
)

// SignageConfig names the signed signage schedule the agent follows
// (`swarmship catalog playlist set NAME`). The site's time zone is the
// top-level timezone key; without it, the schedule's own zone, else UTC.
type SignageConfig struct {
	Schedule string `yaml:"schedule"` // empty: no signage
}

func (c SignageConfig) validate() error {
	if c.Schedule == "" {
		return nil
	}
	return release.ValidateName("schedule", c.Schedule)
}

// signageFile keeps the last good schedule; screensFile what was on air.
func (a *Agent) signageFile() string { return filepath.Join(a.cfg.CacheDir, "state", "signage.json") }
func (a *Agent) screensFile() string { return filepath.Join(a.cfg.CacheDir, "state", "screens.json") }

type savedSignage struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
	Doc    string `json:"doc"`
}

// startSignage sets up Screens when signage.schedule is set: the last
// good schedule and what was on air come back from the state directory,
// so a restart without the catalog keeps the screens playing.
func (a *Agent) startSignage() {
	if a.cfg.Signage.Schedule == "" {
		return
	}
	a.screens = NewScreens(agentContent{a}, a.now, a.log)
	a.screens.saved = func(b []byte) {
		if err := writeFileAtomic(a.screensFile(), b); err != nil {
			a.log.Warn("cannot save the screens' on-air state", "err", err)
		}
	}
	if b, err := os.ReadFile(a.signageFile()); err == nil {
		var s savedSignage
		if json.Unmarshal(b, &s) == nil && s.Name == a.cfg.Signage.Schedule {
			if p, loc, err := a.parseSchedule([]byte(s.Doc)); err == nil {
				// What was on air first: the first evaluation keeps it
				// where the scheduled content is not verified.
				if on, err := os.ReadFile(a.screensFile()); err == nil {
					a.screens.Restore(on)
				}
				a.signageDigest = s.Digest
				a.screens.SetSchedule(s.Name, p, loc)
			}
		}
	}
}

// parseSchedule validates a schedule and picks its time zone: the
// agent's timezone, else the schedule's, else UTC.
func (a *Agent) parseSchedule(b []byte) (*policy.Playlist, *time.Location, error) {
	p, err := policy.ParsePlaylist(b)
	if err != nil {
		return nil, nil, err
	}
	if a.cfg.TimeZone != "" {
		return p, a.loc, nil
	}
	if p.TimeZone == "" {
		return p, time.UTC, nil
	}
	loc, err := time.LoadLocation(p.TimeZone)
	if err != nil {
		return nil, nil, fmt.Errorf("signage schedule timezone: %w", err)
	}
	return p, loc, nil
}

// refreshSignage reads the signed schedule of the freshly refreshed
// catalog when it changed; a schedule that does not validate is refused
// whole and the one in force stays.
func (a *Agent) refreshSignage(ctx context.Context) {
	if a.screens == nil {
		return
	}
	name := a.cfg.Signage.Schedule
	digest, err := a.catalog.PlaylistDigest(name)
	if err != nil {
		if errors.Is(err, catalog.ErrNotFound) {
			err = fmt.Errorf("signage schedule %q is not in the catalog; the screens keep what they play", name)
		}
		a.screens.SetError(name, err.Error())
		a.screens.Update() // channels may have moved
		return
	}
	if digest == a.signageDigest {
		a.screens.Update()
		return
	}
	b, err := a.catalog.Playlist(ctx, name, policy.MaxPlaylistBytes)
	if err != nil {
		a.screens.SetError(name, "signage schedule not read: "+err.Error())
		return
	}
	p, loc, err := a.parseSchedule(b)
	if err != nil {
		a.log.Warn("signage schedule refused; the one in force stays", "schedule", name, "err", err)
		a.screens.SetError(name, "refused: "+err.Error())
		return
	}
	sb, _ := json.Marshal(savedSignage{Name: name, Digest: digest, Doc: string(b)})
	if err := writeFileAtomic(a.signageFile(), sb); err != nil {
		a.log.Warn("cannot save the signage schedule", "err", err)
	}
	a.signageDigest = digest
	a.log.Info("signage schedule in force", "schedule", name, "screens", len(p.Screens()), "timezone", loc.String())
	a.screens.SetSchedule(name, p, loc)
}

// Screens is the players' handler (/screens/...), nil when the agent
// follows no signage schedule. The media server mounts it.
func (a *Agent) Screens() *Screens { return a.screens }

// agentContent answers Screens from the agent's catalog and state.
type agentContent struct{ a *Agent }

func (c agentContent) Resolve(ref policy.ContentRef) (release.Ref, error) {
	if ref.Channel == "" {
		return release.Ref{Name: ref.Name, Version: ref.Version}, nil
	}
	rels, err := c.a.catalog.Releases()
	if err != nil {
		return release.Ref{}, fmt.Errorf("channel %s:%s: %w", ref.Name, ref.Channel, err)
	}
	rel, err := catalog.ResolveRelease(rels, ref.Name, ref.Channel, "")
	if err != nil {
		return release.Ref{}, err
	}
	return rel.Ref, nil
}

func (c agentContent) Verified(ref release.Ref) (string, error) {
	rec, ok, err := c.a.state.Get(ref.String())
	switch {
	case err != nil:
		return "", err
	case !ok:
		return "", fmt.Errorf("%s is not held by this agent (subscribe to it)", ref)
	case rec.Phase != PhaseVerified && rec.Phase != PhaseActive:
		why := string(rec.Phase)
		if rec.Size > 0 {
			why = fmt.Sprintf("%s, %d%% complete", why, rec.Completed*100/rec.Size)
		}
		return "", fmt.Errorf("%s is not verified yet (%s)", ref, why)
	}
	return c.a.cache.releaseDir(ref.Name, ref.Version), nil
}

// signageStatus is the status part, nil without signage.
func (a *Agent) signageStatus() *SignageStatus {
	if a.screens == nil {
		return nil
	}
	st := a.screens.Status()
	return &st
}

// screensReport adds the screens to a report within its limits.
func screensReport(r *report.Report, st *SignageStatus) {
	if st == nil {
		return
	}
	for _, s := range st.Screens {
		if len(r.Screens) == report.MaxScreens {
			break
		}
		out := report.Screen{Screen: s.Screen, Playing: report.Trim(s.Playing, report.MaxText)}
		if s.AtRisk != nil {
			out.AtRisk, out.Since = true, s.AtRisk.Since
			out.Wanted, out.Reason = report.Trim(s.AtRisk.Wanted, report.MaxText), report.Trim(s.AtRisk.Reason, report.MaxText)
		}
		r.Screens = append(r.Screens, out)
	}
}
