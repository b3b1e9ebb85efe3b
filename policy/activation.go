package policy

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Freeze is a catalog-wide blackout: from From (inclusive) to To
// (exclusive) no release activates unless it is urgent.
type Freeze struct {
	ID     string    `json:"id"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Reason string    `json:"reason,omitempty"`
}

// Validate checks that the freeze has an end after its start.
func (f Freeze) Validate() error {
	if f.From.IsZero() || f.To.IsZero() {
		return errors.New("freeze needs both from and to")
	}
	if !f.To.After(f.From) {
		return fmt.Errorf("freeze ends (%s) at or before it starts (%s)", f.To.Format(time.RFC3339), f.From.Format(time.RFC3339))
	}
	return nil
}

// FrozenUntil returns the end of the freeze that holds at now, extended
// through any freezes that overlap or touch it (so waiting for the end
// does not land inside the next one), and the freeze that holds at now.
// ok is false when no freeze holds at now.
func FrozenUntil(freezes []Freeze, now time.Time) (until time.Time, f Freeze, ok bool) {
	for _, x := range freezes {
		if !now.Before(x.From) && now.Before(x.To) {
			if !ok || x.To.After(until) {
				until, f, ok = x.To, x, true
			}
		}
	}
	for grew := ok; grew; {
		grew = false
		for _, x := range freezes {
			if !until.Before(x.From) && x.To.After(until) {
				until, grew = x.To, true
			}
		}
	}
	return until, f, ok
}

// Activation is when a downloaded, verified release may become the active
// one: the release's own timing (signed in the catalog), the
// subscription's (agent.yaml) and the catalog's freezes.
type Activation struct {
	// Windows are weekly times the switch may happen, on Location's wall
	// clock (e.g. "Sun 02:00-04:00"); empty means any time.
	Windows []Window
	// At is the instant the release goes live (signage content that must
	// go on air at a set time); zero means none. Windows still apply after it.
	At       time.Time
	Location *time.Location
	// Urgent releases ignore freezes.
	Urgent  bool
	Freezes []Freeze
}

// ActivationAllowed says whether a verified release may activate at now and, when
// it may not, why and the earliest instant the answer may change (the
// caller re-checks then; zero means not within the schedule's horizon).
// The gates, in order: freeze (unless urgent), activate_at, windows.
func ActivationAllowed(a Activation, now time.Time) (ok bool, reason string, next time.Time) {
	loc := orUTC(a.Location)
	var notes []string
	if until, f, frozen := FrozenUntil(a.Freezes, now); frozen {
		why := "catalog freeze " + f.ID
		if f.Reason != "" {
			why += " (" + f.Reason + ")"
		}
		if !a.Urgent {
			return false, "waiting for the end of " + why + " at " + until.In(loc).Format(timeFormat), until
		}
		notes = append(notes, "urgent despite "+why)
	}
	if !a.At.IsZero() && now.Before(a.At) {
		return false, "waiting to activate at " + a.At.In(loc).Format(time.RFC3339), a.At
	}
	if len(a.Windows) > 0 {
		s := Schedule{Location: a.Location}
		names := make([]string, 0, len(a.Windows))
		for _, w := range a.Windows {
			s.Rules = append(s.Rules, Rule{Window: w, Name: "open"})
			names = append(names, w.String())
		}
		if _, open := s.At(now); !open {
			opens := s.NextChange(now)
			when := "does not open in the next 15 days"
			if !opens.IsZero() {
				when = "opens at " + opens.Format(timeFormat)
			}
			return false, "waiting for activation window " + strings.Join(names, " or ") + " (" + when + ")", opens
		}
	}
	return true, strings.Join(notes, "; "), time.Time{}
}

// OpenTime is how long the windows are open between from and to; no
// windows means always open.
func OpenTime(windows []Window, loc *time.Location, from, to time.Time) time.Duration {
	if !to.After(from) {
		return 0
	}
	if len(windows) == 0 {
		return to.Sub(from)
	}
	s := Schedule{Location: loc}
	for _, w := range windows {
		s.Rules = append(s.Rules, Rule{Window: w, Name: "open"})
	}
	var open time.Duration
	for x := from; x.Before(to); {
		_, isOpen := s.At(x)
		next := s.NextChange(x)
		if next.IsZero() || next.After(to) {
			next = to
		}
		if isOpen {
			open += next.Sub(x)
		}
		x = next
	}
	return open
}

// DeadlineLimits are what the operator lets an agent do to meet a
// deliver-by time it would miss inside its download windows.
type DeadlineLimits struct {
	// MayStartEarly lets the download run outside its windows.
	MayStartEarly bool `yaml:"may_start_early"`
	// MaxProfile is the rate profile the agent may raise itself to
	// (a name from rates.profiles); empty means it keeps its profile.
	MaxProfile string `yaml:"max_profile"`
}

// Deadline is one release's delivery against its deliver-by time.
type Deadline struct {
	Deliver   time.Time // zero: no deadline
	Remaining int64     // bytes still to download
	// Rate is the download rate the agent achieves (bytes/s, smoothed); 0
	// means unknown yet, and then only the profile's limit counts.
	Rate float64
	// Limit is the rate profile's download limit now (bytes/s, 0 unlimited).
	Limit   float64
	Windows []Window
	// Location is the site's time zone; nil means UTC.
	Location *time.Location
}

// DeadlinePlan is what PlanDeadline decided.
type DeadlinePlan struct {
	// AtRisk: at the current rate, the open window time left before the
	// deadline is too short for the remaining bytes.
	AtRisk bool
	// StartEarly: download now, outside the windows (limits allow it).
	StartEarly bool
	// RaiseProfile: switch to the limits' MaxProfile while this lasts.
	RaiseProfile bool
	// Needed is the time the remaining bytes take at the current rate
	// (0 when the rate is unknown).
	Needed time.Duration
	Reason string
}

// expectedRate is the rate a projection uses: what the agent achieves,
// capped by the profile's limit when one applies.
func (d Deadline) expectedRate() float64 {
	r := d.Rate
	if d.Limit > 0 && (r == 0 || r > d.Limit) {
		r = d.Limit
	}
	return r
}

// PlanDeadline projects whether the remaining bytes arrive by the deadline
// at the current rate, using only the time the download windows are open,
// and what the limits allow to catch up: first raise the profile (the
// windows still rule), then start early. With no rate known yet it
// assumes nothing is at risk: a projection needs a measurement.
func PlanDeadline(d Deadline, l DeadlineLimits, now time.Time) DeadlinePlan {
	var p DeadlinePlan
	if d.Deliver.IsZero() || d.Remaining <= 0 {
		return p
	}
	rate := d.expectedRate()
	loc := orUTC(d.Location)
	by := d.Deliver.In(loc).Format(timeFormat)
	if !now.Before(d.Deliver) {
		p.AtRisk, p.StartEarly, p.RaiseProfile = true, l.MayStartEarly, l.MaxProfile != ""
		p.Reason = "deliver-by time " + by + " has passed"
		return p
	}
	open := OpenTime(d.Windows, d.Location, now, d.Deliver)
	if rate <= 0 {
		if open > 0 {
			return p // a projection needs a rate
		}
		// No window opens before the deadline: any rate misses it.
		p.AtRisk = true
		p.Reason = "would miss deliver-by " + by + ": no download window opens before it"
		if l.MayStartEarly {
			p.StartEarly = true
			p.Reason += "; starting outside the download windows"
		}
		return p
	}
	p.Needed = time.Duration(float64(d.Remaining) / rate * float64(time.Second))
	if p.Needed <= open {
		return p
	}
	p.AtRisk = true
	p.Reason = fmt.Sprintf("would miss deliver-by %s: needs %s at the current rate, windows give %s",
		by, p.Needed.Round(time.Second), open.Round(time.Second))
	if l.MaxProfile != "" {
		p.RaiseProfile = true
		p.Reason += "; raising rate profile to " + l.MaxProfile
	}
	if l.MayStartEarly && len(d.Windows) > 0 {
		p.StartEarly = true
		p.Reason += "; starting outside the download windows"
	}
	return p
}

// WillMiss is the origin's projection from an agent's report: at rate
// bytes/s the remaining bytes arrive after deliver (windows unknown to
// the origin: the agent's own AtRisk flag covers them). A zero rate with
// bytes remaining and the deadline within horizon counts as a miss: a
// stalled download will not make it.
func WillMiss(remaining int64, rate float64, deliver, now time.Time, horizon time.Duration) bool {
	if deliver.IsZero() || remaining <= 0 {
		return false
	}
	if !now.Before(deliver) {
		return true
	}
	if rate <= 0 {
		return deliver.Sub(now) <= horizon
	}
	eta := now.Add(time.Duration(float64(remaining) / rate * float64(time.Second)))
	return eta.After(deliver)
}
