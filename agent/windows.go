package agent

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/fielderr"
	"github.com/swarmship/swarmship/policy"
)

// DeadlineConfig is what the operator lets the agent do when a release
// would miss its deliver-by time inside its download windows (config key
// `deadline`). Both default to off: download windows rule.
type DeadlineConfig struct {
	policy.DeadlineLimits `yaml:",inline"`
}

// validate checks max_profile against the rate profiles.
func (c DeadlineConfig) validate(rates RatesConfig) error {
	if c.MaxProfile == "" {
		return nil
	}
	for _, p := range rates.Profiles {
		if p.Name == c.MaxProfile {
			return nil
		}
	}
	return fielderr.New("max_profile", "no rate profile named %q in rates.profiles", c.MaxProfile)
}

// DeadlineStatus is a release's delivery against its deliver-by time, in
// status and reports.
type DeadlineStatus struct {
	DeliverBy time.Time `json:"deliver_by"`
	// Rate is the measured download rate (bytes/s, smoothed); 0 unknown.
	Rate   float64 `json:"rate"`
	AtRisk bool    `json:"at_risk"`
	// Action is what the agent does about it ("starting outside the
	// download windows", "raising rate profile to fast") or why it waits.
	Action string `json:"action,omitempty"`
}

// deadlineTrack measures one download's rate for its deadline.
type deadlineTrack struct {
	status    DeadlineStatus
	lastBytes int64
	lastAt    time.Time
	plan      policy.DeadlinePlan
}

// rateSmoothing weighs a new rate sample against the running estimate: a
// pass is a second, so the estimate follows changes over tens of seconds.
const rateSmoothing = 0.1

// deliverBy is the earlier of the subscription's and the release's
// deliver-by times (zero when neither is set).
func deliverBy(sub Subscription) time.Time {
	d := sub.DeliverBy
	if e := sub.entry.DeliverBy; !e.IsZero() && (d.IsZero() || e.Before(d)) {
		d = e
	}
	return d
}

// deadlineSub applies the deadline to a subscription before mayDownload
// reads it: it measures the download's rate, projects the delivery and,
// within the operator's limits, drops the download windows (start early);
// applyPolicy reads the plan to raise the rate profile. An urgent release
// (signed in the catalog) counts as an urgent subscription.
func (a *Agent) deadlineSub(sub Subscription, d *download, now time.Time) (Subscription, policy.DeadlinePlan) {
	sub.Urgent = sub.Urgent || sub.entry.Urgent
	deliver := deliverBy(sub)
	if deliver.IsZero() {
		return sub, policy.DeadlinePlan{}
	}
	plan := a.trackDeadline(d, deliver, !d.pausedNow(), now)
	if plan.StartEarly {
		sub.Windows = nil
	}
	return sub, plan
}

// withDeadline puts a deadline at risk in front of mayDownload's reason.
func withDeadline(why string, plan policy.DeadlinePlan) string {
	switch {
	case !plan.AtRisk:
		return why
	case why == "":
		return plan.Reason
	}
	return plan.Reason + "; " + why
}

// trackDeadline updates d's rate estimate and deadline plan, logs when the
// plan changes, and returns it.
func (a *Agent) trackDeadline(d *download, deliver time.Time, running bool, now time.Time) policy.DeadlinePlan {
	key := d.ref.String()
	done := d.t.BytesCompleted()
	a.mu.Lock()
	tr := a.deadlines[key]
	if tr == nil {
		tr = &deadlineTrack{lastBytes: done, lastAt: now}
		a.deadlines[key] = tr
	}
	if dt := now.Sub(tr.lastAt); dt >= time.Second {
		// Only passes where the download ran say anything about its rate.
		if running && done >= tr.lastBytes {
			sample := float64(done-tr.lastBytes) / dt.Seconds()
			if tr.status.Rate == 0 {
				tr.status.Rate = sample
			} else {
				tr.status.Rate += rateSmoothing * (sample - tr.status.Rate)
			}
			if tr.status.Rate > 0 {
				a.lastDownRate = tr.status.Rate
			}
		}
		tr.lastBytes, tr.lastAt = done, now
	}
	limit := float64(0)
	if l := a.down; l != nil && l.Limit() > 0 && l.Limit() != rate.Inf {
		limit = float64(l.Limit())
	}
	measured := tr.status.Rate
	if measured == 0 {
		// Not run yet (outside its windows, say): what this agent last
		// achieved is the best guess; without one, the profile's limit.
		measured = a.lastDownRate
	}
	a.mu.Unlock()

	plan := policy.PlanDeadline(policy.Deadline{
		Deliver: deliver, Remaining: d.size() - done, Rate: measured, Limit: limit,
		Windows: a.subWindows(d.ref.Name), Location: a.loc,
	}, a.cfg.Deadline.DeadlineLimits, now)

	a.mu.Lock()
	changed := plan.AtRisk != tr.plan.AtRisk || plan.StartEarly != tr.plan.StartEarly || plan.RaiseProfile != tr.plan.RaiseProfile
	tr.plan = plan
	tr.status.DeliverBy, tr.status.AtRisk, tr.status.Action = deliver, plan.AtRisk, plan.Reason
	a.mu.Unlock()
	if changed {
		if plan.AtRisk {
			a.log.Warn("release may miss its deliver-by time", "release", d.ref.Name, "version", d.ref.Version,
				"deliver_by", deliver, "rate", int64(measured), "start_early", plan.StartEarly, "raise_profile", plan.RaiseProfile, "reason", plan.Reason)
		} else {
			a.log.Info("release on track for its deliver-by time", "release", d.ref.Name, "version", d.ref.Version, "deliver_by", deliver)
		}
	}
	return plan
}

// pausedNow reports whether the policy holds d (windows, battery).
func (d *download) pausedNow() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.paused || d.fault != ""
}

// subWindows returns the download windows of the subscription to name.
func (a *Agent) subWindows(name string) []policy.Window {
	for _, s := range a.cfg.Subscriptions {
		if s.Name == name {
			return s.Windows
		}
	}
	return nil
}

// deadlineProfile is the rate profile a deadline at risk asks for, if the
// operator allows one and it is faster than the scheduled profile.
func (a *Agent) deadlineProfile(scheduled policy.RateProfile) (policy.RateProfile, bool) {
	name := a.cfg.Deadline.MaxProfile
	if name == "" {
		return scheduled, false
	}
	a.mu.Lock()
	raise := false
	for _, tr := range a.deadlines {
		raise = raise || tr.plan.RaiseProfile
	}
	a.mu.Unlock()
	if !raise {
		return scheduled, false
	}
	for _, p := range a.cfg.Rates.Profiles {
		if p.Name == name && faster(p.Down, scheduled.Down) {
			return p, true
		}
	}
	return scheduled, false
}

// faster reports whether download rate x exceeds y (0 is unlimited).
func faster(x, y policy.Rate) bool {
	switch {
	case y == policy.Unlimited:
		return false
	case x == policy.Unlimited:
		return true
	}
	return x > y
}

// forgetDeadline drops a release's deadline tracking once its bytes are in.
func (a *Agent) forgetDeadline(key string) {
	a.mu.Lock()
	delete(a.deadlines, key)
	a.mu.Unlock()
}

// deadlineStatus returns the tracked deadline of key; a.mu is held.
func (a *Agent) deadlineStatusLocked(key string) *DeadlineStatus {
	if tr := a.deadlines[key]; tr != nil {
		s := tr.status
		return &s
	}
	return nil
}

// gateTiming is what the freeze and window gates know of a release: its
// subscription (with the release's signed timing), noted by step each pass.
type gateTiming struct {
	sub Subscription
}

// noteGateTiming records sub for ref's activation gates (a.mu taken).
func (a *Agent) noteGateTiming(ref string, sub Subscription) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gateTimings == nil {
		a.gateTimings = map[string]gateTiming{}
	}
	a.gateTimings[ref] = gateTiming{sub: sub}
}

func (a *Agent) gateTimingOf(rec *ReleaseState) gateTiming {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gateTimings[rec.Key()]
}

// freezeGate holds a release during a catalog freeze unless the release
// is urgent by its signed timing (a local `urgent` does not lift a
// fleet-wide freeze). First in activationGates.
func (a *Agent) freezeGate(_ context.Context, rec *ReleaseState, now time.Time) (bool, string) {
	freezes, err := a.catalog.Freezes()
	if err != nil {
		// A signed freeze list that does not decode holds every
		// non-urgent activation: a freeze might be in it.
		freezes = []catalog.Freeze{{ID: "(unreadable)", To: now.Add(time.Minute), Reason: err.Error()}}
	}
	gt := a.gateTimingOf(rec)
	ok, why, _ := policy.ActivationAllowed(policy.Activation{Location: a.loc, Urgent: gt.sub.entry.Urgent, Freezes: toPolicyFreezes(freezes)}, now)
	a.noteGate(rec, ok, why)
	return ok, why
}

// windowGate applies activate_at and the activation windows, the
// release's (signed) and the subscription's: both must allow the switch.
// Passes run every second, so a release due at activate_at switches
// within about a second of it. After the wave gate in activationGates.
func (a *Agent) windowGate(_ context.Context, rec *ReleaseState, now time.Time) (bool, string) {
	sub := a.gateTimingOf(rec).sub
	entryWindows, err := parseWindows(sub.entry.Activate)
	if err != nil {
		return false, fmt.Sprintf("release's activation windows: %v", err)
	}
	for _, g := range []policy.Activation{
		{Windows: entryWindows, At: sub.entry.ActivateAt, Location: a.loc},
		{Windows: sub.Activate, At: sub.ActivateAt, Location: a.loc},
	} {
		if ok, why, _ := policy.ActivationAllowed(g, now); !ok {
			a.noteGate(rec, false, why)
			return false, why
		}
	}
	return true, ""
}

// noteGate logs an activation that waits (once per reason) or goes
// through a gate with a note (an urgent release during a freeze).
func (a *Agent) noteGate(rec *ReleaseState, ok bool, why string) {
	switch {
	case ok && why != "":
		a.log.Info("activating despite a gate", "release", rec.Name, "version", rec.Version, "reason", why)
	case !ok && rec.Reason != why:
		a.log.Info("activation waits", "release", rec.Name, "version", rec.Version, "reason", why)
	}
}

func parseWindows(ss []string) ([]policy.Window, error) {
	var out []policy.Window
	for _, s := range ss {
		w, err := policy.ParseWindow(s)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

func toPolicyFreezes(fs []catalog.Freeze) []policy.Freeze {
	out := make([]policy.Freeze, 0, len(fs))
	for _, f := range fs {
		out = append(out, policy.Freeze{ID: f.ID, From: f.From, To: f.To, Reason: f.Reason})
	}
	return out
}
